"""Registered datastores: their kinds, where each keeps its files, and the object store over them.

A datastore is a record in the workspace's SQL store (name, kind, config: never credentials) and an
:class:`~runlab.store.objects.ObjectStore` built from it here, by :func:`open_object_store`:

=================  ===========================================================  ================
kind               where the files are                                          config
=================  ===========================================================  ================
``workspaceblob``  ``<workspace>/files/datastores/<name>/`` (the workspace's own)  ``{}``
``local``          a folder on this machine                                     ``{"path": ...}``
``s3``             an S3-compatible bucket, credentials from the environment    ``{"bucket", "prefix", "endpoint_url", "region"}``
=================  ===========================================================  ================

Every workspace has ``workspaceblobstore`` (registered on first use) and it is the default until
another datastore is made the default (the workspace setting ``default_datastore``). The SDK facade
(:mod:`runlab.sdk.datastore`), the agent and datasets all open datastores through this module.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, TypeAlias, runtime_checkable

from runlab.core.assets import DatastoreFileRecord, DatastoreRecord
from runlab.core.errors import DatastoreNotFoundError, UserError
from runlab.core.names import check_datastore_name, shown
from runlab.store.base import Store
from runlab.store.objects import ObjectInfo, ObjectStore, check_object_name, check_prefix, file_sha256

__all__ = [
    "DEFAULT_DATASTORE",
    "DEFAULT_DATASTORE_KEY",
    "DatastoresDir",
    "KINDS",
    "LOCAL",
    "S3",
    "WORKSPACE_BLOB",
    "ServedDatastores",
    "datastore_location",
    "datastore_opener",
    "default_datastore_name",
    "ensure_workspace_blobstore",
    "file_infos",
    "get_datastore",
    "local_config",
    "open_object_store",
    "s3_config",
    "set_default_datastore",
]

WORKSPACE_BLOB = "workspaceblob"
LOCAL = "local"
S3 = "s3"
KINDS = (WORKSPACE_BLOB, LOCAL, S3)
DEFAULT_DATASTORE = "workspaceblobstore"
DEFAULT_DATASTORE_KEY = "default_datastore"  # the workspace setting naming the default datastore


def local_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The config of a local datastore on folder ``path`` (made absolute, links resolved)."""
    try:
        text = os.fspath(path)
        if not text or "\x00" in text:
            raise ValueError("an empty path, or one with a NUL character")
        folder = os.path.realpath(os.path.expanduser(text))
    except (TypeError, ValueError) as exc:
        raise UserError(f"invalid datastore folder {shown(path)}: {exc}; pass a folder path", path=path) from exc
    return {"path": folder}


def s3_config(bucket: str, prefix: str | None = None, endpoint_url: str | None = None,
              region: str | None = None) -> dict[str, Any]:
    """The config of an S3 datastore, checked (no credentials: those stay in the environment)."""
    from runlab.store.objects.s3 import S3ObjectStore

    store = S3ObjectStore(bucket, prefix, endpoint_url, region)  # checks every value; connects to nothing
    return {"bucket": store.bucket, "prefix": store.prefix or None, "endpoint_url": store.endpoint_url,
            "region": store.region}


@runtime_checkable
class ServedDatastores(Protocol):
    """The workspace's own datastores of a ``runlab server``, seen from a client
    (:class:`runlab.store.remote.objects.RemoteDatastores`): opened by name, over HTTP."""

    def open_datastore(self, name: str) -> ObjectStore: ...


DatastoresDir: TypeAlias = "Path | ServedDatastores | None"
"""Where a workspace's ``workspaceblob`` datastores are: its ``files/datastores`` folder; for a client of
``runlab server``, the server (:class:`ServedDatastores`); None where they cannot be reached."""


def open_object_store(record: DatastoreRecord, datastores_dir: DatastoresDir) -> ObjectStore:
    """The object store of datastore ``record``; ``datastores_dir`` is the workspace's
    ``files/datastores`` folder (where ``workspaceblob`` datastores keep their files), or, for a workspace
    of runlab server seen from a client, the server's datastores (:class:`ServedDatastores`)."""
    config: Mapping[str, Any] = record.config
    if record.kind == WORKSPACE_BLOB:
        from runlab.store.objects.local import LocalObjectStore

        if isinstance(datastores_dir, ServedDatastores):
            return datastores_dir.open_datastore(check_datastore_name(record.name))
        if datastores_dir is None:
            from runlab.core.errors import NotSupportedError

            raise NotSupportedError(
                f"datastore {record.name!r} is the server's own folder, which clients of runlab server cannot reach in "
                "this version: register an S3 datastore (Datastore.register_s3), which clients and runs reach "
                "directly, or upload from the server's machine", name=record.name)

        return LocalObjectStore(Path(datastores_dir) / check_datastore_name(record.name))
    if record.kind == LOCAL:
        from runlab.store.objects.local import LocalObjectStore

        return LocalObjectStore(str(config["path"]))
    if record.kind == S3:
        from runlab.store.objects.s3 import S3ObjectStore

        return S3ObjectStore(str(config["bucket"]), config.get("prefix"), config.get("endpoint_url"),
                             config.get("region"))
    raise UserError(f"datastore {record.name!r} has kind {record.kind!r}, which this runlab does not know "
                    f"(it knows {', '.join(KINDS)}): upgrade runlab", name=record.name)


def datastore_location(record: DatastoreRecord, datastores_dir: DatastoresDir) -> str:
    """Where datastore ``record`` keeps its files, in words (no connection made)."""
    return open_object_store(record, datastores_dir).description


def ensure_workspace_blobstore(store: Store) -> DatastoreRecord:
    """The workspace's own ``workspaceblobstore``, registered now if it is not yet."""
    try:
        return store.get_datastore(DEFAULT_DATASTORE)
    except DatastoreNotFoundError:
        return store.register_datastore(DEFAULT_DATASTORE, WORKSPACE_BLOB, {})


def get_datastore(store: Store, name: str) -> DatastoreRecord:
    """Registered datastore ``name`` (``workspaceblobstore`` is always there); ``InvalidNameError`` for a
    name no datastore can have, ``DatastoreNotFoundError`` naming those there are."""
    check_datastore_name(name)
    if name == DEFAULT_DATASTORE:
        return ensure_workspace_blobstore(store)
    try:
        return store.get_datastore(name)
    except DatastoreNotFoundError:
        ensure_workspace_blobstore(store)  # so that the error lists it too
        return store.get_datastore(name)


def default_datastore_name(store: Store) -> str:
    """The name of the workspace's default datastore (``workspaceblobstore`` unless set)."""
    return store.get_meta(DEFAULT_DATASTORE_KEY) or DEFAULT_DATASTORE


def set_default_datastore(store: Store, name: str) -> DatastoreRecord:
    """Make datastore ``name`` (registered: else ``DatastoreNotFoundError``) the workspace's default."""
    record = get_datastore(store, name)
    store.set_meta(DEFAULT_DATASTORE_KEY, name)
    return record


def file_infos(objects: ObjectStore, store: Store, name: str, prefix: str = "", *,
               checksums: bool = False) -> list[ObjectInfo]:
    """The files of datastore ``name`` under ``prefix`` (text prefix; see ``ObjectStore.list``), with the
    sha256 of each that the file index knows and that has not changed since (same size and etag).

    ``checksums=True`` fills in every missing sha256: from the object store where it keeps them
    (S3 metadata), else by reading the file; what is computed is added to the index, so it is read
    once. Raises what ``ObjectStore.list`` raises.
    """
    prefix = check_prefix(prefix, objects.description)
    known = store.get_datastore_files(name, prefix)
    out: list[ObjectInfo] = []
    learned: list[DatastoreFileRecord] = []
    for info in objects.list(prefix):
        row = known.get(info.name)
        sha256 = info.sha256
        if sha256 is None and row is not None and row.size == info.size and row.etag == info.etag:
            sha256 = row.sha256
        if sha256 is None and checksums:
            sha256 = _sha256_of(objects, info)
            learned.append(DatastoreFileRecord(path=info.name, size=info.size, sha256=sha256, etag=info.etag,
                                               uploaded_at=time.time()))
        out.append(ObjectInfo(name=info.name, size=info.size, sha256=sha256, etag=info.etag,
                              modified_at=info.modified_at))
    store.record_datastore_files(name, learned)
    return out


def _sha256_of(objects: ObjectStore, info: ObjectInfo) -> str:
    local = objects.local_path(check_object_name(info.name))
    if local is not None:
        return file_sha256(local)[1]
    stat = objects.stat(info.name)
    if stat.sha256 is not None and stat.etag == info.etag:
        return stat.sha256
    import hashlib

    digest = hashlib.sha256()
    with objects.open(info.name) as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def datastore_opener(store: Store, datastores_dir: DatastoresDir) -> "Callable[[str], ObjectStore]":
    """Datastore name -> its object store, each opened once (``DatastoreNotFoundError`` for a name
    that is not registered); what the agent reads datasets through."""
    opened: dict[str, ObjectStore] = {}

    def open_datastore(name: str) -> ObjectStore:
        if name not in opened:
            opened[name] = open_object_store(get_datastore(store, name), datastores_dir)
        return opened[name]

    return open_datastore
