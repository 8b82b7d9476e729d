"""Datastore and DataPath: where a workspace's data lives, named as in Azure ML v1.

``ws.get_default_datastore()`` is ``workspaceblobstore``, a folder of the workspace
(``files/datastores/workspaceblobstore``); ``Datastore.register_local(ws, name, path)`` registers a
folder of this machine and ``Datastore.register_s3(ws, name, bucket, ...)`` an S3-compatible bucket,
with credentials from the usual AWS variables or profile (never stored). ``upload`` copies the
contents of a folder, ``upload_files`` a list of files, ``download`` brings files back: see
:mod:`runlab.store.transfer` for what is skipped, recorded and refused.
"""

from __future__ import annotations

import builtins
import os
from typing import TYPE_CHECKING, Any, Callable, Iterable, NoReturn

from runlab.core.assets import DatastoreRecord
from runlab.core.errors import RunlabError, UserError
from runlab.core.names import check_datastore_name
from runlab.store import datastores as stores
from runlab.store import transfer
from runlab.store.objects import ObjectInfo, ObjectStore, check_prefix

if TYPE_CHECKING:
    from runlab.sdk.workspace import Workspace

__all__ = ["DataPath", "Datastore"]

# Azure ML's datastore_type for each kind ("AzureBlob" keeps code that checks for it working)
DATASTORE_TYPES = {stores.WORKSPACE_BLOB: "AzureBlob", stores.LOCAL: "Local", stores.S3: "S3"}


class DataPath:
    """A path on a datastore: ``datastore.path('datasets/cifar10')``. ``path_on_datastore`` is relative
    to the datastore's root ("" is the root)."""

    def __init__(self, datastore: "Datastore | None" = None, path_on_datastore: str | None = None,
                 name: str | None = None) -> None:
        self.datastore = datastore
        where = f"datastore {datastore.name!r}" if datastore is not None else "the datastore"
        self.path_on_datastore = transfer.target_prefix(path_on_datastore, where)
        self.name = name

    @property
    def datastore_name(self) -> str | None:
        return self.datastore.name if self.datastore is not None else None

    def __repr__(self) -> str:
        return f"DataPath(datastore={self.datastore_name!r}, path_on_datastore={self.path_on_datastore!r})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, DataPath) and other.datastore == self.datastore
                and other.path_on_datastore == self.path_on_datastore)

    def __hash__(self) -> int:
        return hash((self.datastore_name, self.path_on_datastore))


def _azure_only(call: str, what: str) -> Callable[..., NoReturn]:
    def register(workspace: Any = None, datastore_name: str | None = None, *args: Any, **kwargs: Any) -> NoReturn:
        from runlab.core.errors import NotSupportedError

        given = ", ".join(f"{k}={v!r}" for k, v in kwargs.items() if k in _AZURE_NAMES and v is not None)
        raise NotSupportedError(
            f"Datastore.{call}({given}): {what} cannot be reached from runlab. Copy the files to a folder and "
            f"register it with Datastore.register_local(ws, {datastore_name or 'name'!r}, path), or to an "
            f"S3-compatible bucket (AWS, MinIO...) registered with Datastore.register_s3(ws, "
            f"{datastore_name or 'name'!r}, bucket, endpoint_url=...); then the same datastore name works "
            "in Dataset.File.from_files((datastore, 'path')) and Dataset.Tabular...", call=call)

    register.__name__ = register.__qualname__ = call
    register.__doc__ = f"Azure ML v1's ``Datastore.{call}``: raises NotSupportedError naming what to use instead."
    return register


_AZURE_NAMES = ("container_name", "account_name", "share_name", "filesystem", "store_name", "server_name",
                "database_name")


class Datastore:
    """A registered datastore of a workspace. ``Datastore(ws, name)`` or ``Datastore.get(ws, name)``
    gets one (``DatastoreNotFoundError`` listing those registered); ``Datastore(ws)`` the default."""

    def __init__(self, workspace: "Workspace", name: str | None = None) -> None:
        record = _get_record(workspace, name if name is not None else stores.default_datastore_name(_store(workspace)))
        self._init(workspace, record)

    def _init(self, workspace: "Workspace", record: DatastoreRecord) -> None:
        self._workspace = workspace
        self._record = record
        self._objects: ObjectStore | None = None

    @classmethod
    def _from_record(cls, workspace: "Workspace", record: DatastoreRecord) -> "Datastore":
        datastore = cls.__new__(cls)
        datastore._init(workspace, record)
        return datastore

    # -- getting and registering -------------------------------------------------------------------

    @staticmethod
    def get(workspace: "Workspace", datastore_name: str) -> "Datastore":
        """The datastore ``datastore_name``; ``DatastoreNotFoundError`` (naming those there are) when none."""
        return Datastore._from_record(workspace, _get_record(workspace, datastore_name))

    @staticmethod
    def get_default(workspace: "Workspace") -> "Datastore":
        """The workspace's default datastore (``workspaceblobstore`` unless another was set)."""
        return Datastore(workspace)

    @staticmethod
    def list(workspace: "Workspace") -> list["Datastore"]:
        """Every datastore of the workspace, by name (``workspaceblobstore`` among them)."""
        store = _store(workspace)
        stores.ensure_workspace_blobstore(store)
        return [Datastore._from_record(workspace, r) for r in store.list_datastores()]

    @staticmethod
    def register_local(workspace: "Workspace", datastore_name: str, path: str | os.PathLike[str],
                       overwrite: bool = False) -> "Datastore":
        """Register folder ``path`` of this machine (created when missing) as datastore ``datastore_name``.

        Registering the same again returns it; another folder under a taken name raises ``UserError``
        unless ``overwrite=True``. ``StoreUnavailableError`` when the folder cannot be used."""
        _check_new_name(datastore_name)
        config = stores.local_config(path)
        record = DatastoreRecord(datastore_name, stores.LOCAL, config, 0.0)
        return Datastore._register(workspace, record, overwrite)

    @staticmethod
    def register_s3(workspace: "Workspace", datastore_name: str, bucket: str, prefix: str | None = None,
                    endpoint_url: str | None = None, region: str | None = None,
                    overwrite: bool = False) -> "Datastore":
        """Register S3 bucket ``bucket`` (under ``prefix``; at ``endpoint_url``, default AWS; in ``region``)
        as datastore ``datastore_name``. Credentials come from the environment (``AWS_ACCESS_KEY_ID``,
        ``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``...) and are never stored.

        The bucket is reached now: ``StoreUnavailableError`` when the endpoint does not answer,
        ``NotFoundError`` when the bucket does not exist, ``UserError`` for missing or refused
        credentials, each naming the bucket and the endpoint."""
        _check_new_name(datastore_name)
        config = stores.s3_config(bucket, prefix, endpoint_url, region)
        record = DatastoreRecord(datastore_name, stores.S3, config, 0.0)
        return Datastore._register(workspace, record, overwrite)

    # Azure ML v1's Azure-only datastores: each raises NotSupportedError saying what to use instead
    register_azure_blob_container = staticmethod(_azure_only("register_azure_blob_container", "an Azure Blob container"))
    register_azure_file_share = staticmethod(_azure_only("register_azure_file_share", "an Azure file share"))
    register_azure_data_lake = staticmethod(_azure_only("register_azure_data_lake", "Azure Data Lake Gen1"))
    register_azure_data_lake_gen2 = staticmethod(_azure_only("register_azure_data_lake_gen2",
                                                             "Azure Data Lake Gen2"))
    register_azure_sql_database = staticmethod(_azure_only("register_azure_sql_database", "an Azure SQL database"))
    register_azure_postgre_sql = staticmethod(_azure_only("register_azure_postgre_sql",
                                                          "an Azure PostgreSQL database"))
    register_azure_my_sql = staticmethod(_azure_only("register_azure_my_sql", "an Azure MySQL database"))
    register_dbfs = staticmethod(_azure_only("register_dbfs", "Databricks' DBFS"))
    register_hdfs = staticmethod(_azure_only("register_hdfs", "HDFS"))

    @staticmethod
    def _register(workspace: "Workspace", record: DatastoreRecord, overwrite: bool) -> "Datastore":
        objects = stores.open_object_store(record, workspace.folder.datastores_dir)
        try:
            objects.check()
        except RunlabError as exc:
            raise type(exc)(f"cannot register datastore {record.name!r}: {exc.message}", **exc.context) from exc
        registered = _store(workspace).register_datastore(record.name, record.kind, record.config, overwrite=overwrite)
        datastore = Datastore._from_record(workspace, registered)
        datastore._objects = objects
        return datastore

    def set_as_default(self) -> None:
        """Make this datastore the workspace's default."""
        stores.set_default_datastore(_store(self._workspace), self.name)

    # -- what it is ----------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._record.name

    @property
    def kind(self) -> str:
        """``workspaceblob``, ``local`` or ``s3``."""
        return self._record.kind

    @property
    def datastore_type(self) -> str:
        """Azure ML's name of the kind: ``AzureBlob`` (the workspace's own), ``Local`` or ``S3``."""
        return DATASTORE_TYPES.get(self._record.kind, self._record.kind)

    @property
    def workspace(self) -> "Workspace":
        return self._workspace

    @property
    def created_at(self) -> float:
        """When it was registered (unix time)."""
        return self._record.created_at

    @property
    def config(self) -> dict[str, Any]:
        """Where the files are (``path``; or ``bucket``, ``prefix``, ``endpoint_url``, ``region``)."""
        return dict(self._record.config)

    @property
    def bucket(self) -> str | None:
        return self._record.config.get("bucket") if self.kind == stores.S3 else None

    @property
    def object_store(self) -> ObjectStore:
        """The object store holding this datastore's files (put, get, open, list, stat, delete)."""
        if self._objects is None:
            self._objects = stores.open_object_store(self._record, self._workspace.folder.datastores_dir)
        return self._objects

    @property
    def location(self) -> str:
        """Where the files are, in words: ``folder /...`` or ``s3://bucket/prefix at endpoint``."""
        return self.object_store.description

    def path(self, path: str | None = None, data_reference_name: str | None = None) -> DataPath:
        """A :class:`DataPath` to ``path`` on this datastore (None: its root); ``InvalidNameError`` for a
        path with ``..``, a leading ``/`` or a NUL."""
        return DataPath(self, path, name=data_reference_name)

    def list_files(self, prefix: str = "", checksums: bool = False) -> builtins.list[ObjectInfo]:
        """The files whose paths start with ``prefix``, sorted, with size and, where known, sha256
        (``checksums=True``: computed for every file that lacks one, and remembered)."""
        return stores.file_infos(self.object_store, _store(self._workspace), self.name, prefix, checksums=checksums)

    # -- moving files ----------------------------------------------------------------------------------

    def upload(self, src_dir: str | os.PathLike[str], target_path: str | None = None, overwrite: bool = False,
               show_progress: bool = True) -> DataPath:
        """Copy the contents of folder ``src_dir`` under ``target_path`` (None: the root), in parallel.

        Files already there with the same size and sha256 are skipped unless ``overwrite``; each file's
        sha256 is recorded. ``show_progress`` shows a progress bar and prints a summary line.
        Raises ``InvalidNameError`` for a ``target_path`` that leaves the datastore, ``UserError`` for a
        ``src_dir`` that is not a folder or holds a link leading outside it (nothing is copied then)."""
        items, left_out = transfer.folder_items(src_dir, target_path, self._where)
        self._upload(items, left_out, overwrite, show_progress)
        return self.path(target_path)

    def upload_files(self, files: Iterable[str | os.PathLike[str]], relative_root: str | os.PathLike[str] | None = None,
                     target_path: str | None = None, overwrite: bool = False, show_progress: bool = True) -> DataPath:
        """Copy ``files``, each to ``<target_path>/<its path relative to relative_root>`` (default root:
        the files' common folder). Skips, records and raises as :meth:`upload`; ``UserError`` also for
        a path that is not a file or not under ``relative_root``."""
        items, left_out = transfer.file_items(files, relative_root, target_path, self._where)
        self._upload(items, left_out, overwrite, show_progress)
        return self.path(target_path)

    def _upload(self, items: builtins.list[transfer.UploadItem], left_out: builtins.list[transfer.LeftOut],
                overwrite: bool,
                show_progress: bool) -> transfer.TransferResult:
        store = _store(self._workspace)
        known = {} if overwrite else store.get_datastore_files(self.name, transfer.common_folder([i.name for i in items]))
        return transfer.upload(
            self.object_store, items, known=known, overwrite=overwrite, show_progress=show_progress,
            left_out=left_out, record=lambda rows: store.record_datastore_files(self.name, rows))

    def download(self, target_path: str | os.PathLike[str], prefix: str | None = None, overwrite: bool = False,
                 show_progress: bool = True) -> int:
        """Copy the files whose paths start with ``prefix`` (None: all) to ``<target_path>/<their path>``;
        the number of files copied. Local files that already hold the same bytes are skipped unless
        ``overwrite``. ``UserError`` when a file would be written through a link leading out of
        ``target_path``."""
        checked = check_prefix(prefix, self._where)
        known = _store(self._workspace).get_datastore_files(self.name, checked)
        result = transfer.download(self.object_store, target_path, prefix=checked, known=known, overwrite=overwrite,
                                   show_progress=show_progress)
        return len(result.copied)

    @property
    def _where(self) -> str:
        return f"datastore {self.name!r}"

    def __repr__(self) -> str:
        return f"Datastore(name={self.name!r}, datastore_type={self.datastore_type!r}, location={self.location!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Datastore) and other.name == self.name and other._workspace == self._workspace

    def __hash__(self) -> int:
        return hash(self.name)


def _store(workspace: "Workspace") -> Any:
    return workspace.folder.store


def _get_record(workspace: "Workspace", name: str) -> DatastoreRecord:
    return stores.get_datastore(_store(workspace), name)


def _check_new_name(name: str) -> None:
    check_datastore_name(name)
    if name == stores.DEFAULT_DATASTORE:
        raise UserError(f"{name!r} is the workspace's own datastore and cannot be registered again: choose another "
                        "name", name=name)

