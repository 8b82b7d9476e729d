"""Model: registered, versioned model files, named and shaped as Azure ML v1's ``azureml.core.Model``.

``run.register_model('net', 'outputs/model.pt')`` registers files of a run, ``Model.register(ws,
'model.pt', 'net')`` files of this machine; each registration is the next version of the name. A
version records the run it came from, its files (sizes and sha256, the bytes stored once by content:
see :mod:`runlab.store.models`), its tags, properties and the datasets it was made with. runlab does
not deploy web services: ``deploy``, ``package`` and ``profile`` raise :class:`NotSupportedError`.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from runlab.core.assets import ModelDatasetRecord, ModelRecord
from runlab.core.errors import InvalidValueError, ModelNotFoundError, NotSupportedError, UserError
from runlab.core.names import check_model_name, shown, storable_text
from runlab.core.settings import RUNLAB_SERVER, RUNLAB_WORKSPACE, load_settings
from runlab.store import models as files

if TYPE_CHECKING:
    from runlab.sdk.run import Run
    from runlab.sdk.workspace import Workspace

MODEL_CACHE = "azureml-models"  # where get_model_path puts models in a run's folder, as Azure ML does


class Model:
    """A registered model version. ``Model(ws, 'net')`` is the latest version, ``Model(ws, 'net', version=1)``
    or ``Model(ws, id='net:1')`` a given one; ``tags=``/``properties=`` pick the latest version that has
    them. Raises :class:`ModelNotFoundError` (naming the versions there are) when there is none."""

    class Framework:
        """Azure ML's framework names, for ``model_framework=``."""

        CUSTOM = "Custom"
        MULTI = "Multi"
        ONNX = "Onnx"
        PYTORCH = "PyTorch"
        SCIKITLEARN = "ScikitLearn"
        TENSORFLOW = "TensorFlow"

    def __init__(self, workspace: "Workspace", name: str | None = None, id: str | None = None,
                 tags: Any = None, properties: Any = None, version: int | None = None,
                 run_id: str | None = None, _record: ModelRecord | None = None, **_azure: Any) -> None:
        self._workspace = workspace
        if _record is None:
            _record = _find(workspace, name, id, version, tags, properties, run_id)
        self._record = _record

    # -- what it is ------------------------------------------------------------------------------------

    @property
    def workspace(self) -> "Workspace":
        return self._workspace

    @property
    def name(self) -> str:
        return self._record.name

    @property
    def version(self) -> int:
        return self._record.version

    @property
    def id(self) -> str:
        """``name:version``, as Azure ML forms model ids."""
        return self._record.model_id

    @property
    def run_id(self) -> str | None:
        """The run whose files these are (None for files registered from this machine)."""
        return self._record.run_id

    @property
    def run(self) -> "Run | None":
        return None if self._record.run_id is None else self._workspace.get_run(self._record.run_id)

    @property
    def created_time(self) -> datetime:
        return datetime.fromtimestamp(self._record.created_at, tz=timezone.utc)

    @property
    def tags(self) -> dict[str, str]:
        return dict(self._record.tags)

    @property
    def properties(self) -> dict[str, str]:
        return dict(self._record.properties)

    @property
    def description(self) -> str:
        return self._record.description

    @property
    def model_framework(self) -> str | None:
        return self._record.framework

    @property
    def model_framework_version(self) -> str | None:
        return self._record.framework_version

    @property
    def datasets(self) -> dict[str, list[Any]]:
        """Datasets by scenario (``{"training data": [Dataset]}``); one that was not registered is None."""
        from runlab.sdk.dataset import Dataset

        out: dict[str, list[Any]] = {}
        for d in self._record.datasets:
            value = Dataset.get_by_id(self._workspace, d.dataset_id) if d.dataset_id else None
            out.setdefault(d.scenario, []).append(value)
        return out

    @property
    def url(self) -> str:
        """The version's row on the studio's models page."""
        return f"{load_settings().studio_url}/models#{self.id}"

    @property
    def record(self) -> ModelRecord:
        return self._record

    def get_files(self) -> list[Any]:
        """The version's files (``path`` inside the model, ``size``, ``sha256``, ``source``)."""
        return list(self._store.get_model_files(self.name, self.version))

    def __repr__(self) -> str:
        return (f"Model(workspace={self._workspace.name!r}, name={self.name!r}, id={self.id!r}, version={self.version}, "
                f"tags={self.tags!r}, properties={self.properties!r})")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Model) and other._workspace == self._workspace and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def _store(self) -> Any:
        return self._workspace.folder.store

    # -- registering -----------------------------------------------------------------------------------

    @staticmethod
    def register(workspace: "Workspace", model_path: str | os.PathLike[str], model_name: str,
                 tags: Mapping[str, Any] | None = None, properties: Mapping[str, Any] | None = None,
                 description: str | None = None, datasets: Sequence[Any] | None = None,
                 model_framework: str | None = None, model_framework_version: str | None = None,
                 child_paths: Any = None, sample_input_dataset: Any = None, sample_output_dataset: Any = None,
                 resource_configuration: Any = None, **_azure: Any) -> "Model":
        """Register a file or folder of this machine as the next version of ``model_name``.

        Inside a folder, links that lead out of it (and broken links, links to folders, special files) are
        left out, and one line on stderr names them. Raises :class:`ModelPathError` for a path that is
        missing or an empty folder, :class:`InvalidNameError` for a bad name."""
        check_model_name(model_name)
        if child_paths is not None:
            raise NotSupportedError("Model.register(child_paths=...): runlab registers the whole file or folder "
                                    "model_path names; put the files you want in one folder")
        fields = _fields(tags, properties, description, datasets, model_framework, model_framework_version,
                         sample_input_dataset, sample_output_dataset, resource_configuration)
        root, sources, skipped = files.local_sources(model_path)
        if skipped:
            print(f"runlab: model {model_name} left out {', '.join(skipped[:5])}"
                  + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""), file=sys.stderr)
        record, _stored = files.store_model(workspace.folder, model_name, root=root,
                                            source=os.path.abspath(os.fspath(model_path)), sources=sources, **fields)
        return Model(workspace, _record=record)

    @staticmethod
    def _register_from_run(run: "Run", model_name: str, model_path: str | None, **kwargs: Any) -> "Model":
        from runlab.sdk.workspace import Workspace

        check_model_name(model_name)
        path = model_name if model_path is None else model_path
        if not isinstance(path, str):
            raise InvalidValueError(f"model_path must be a str naming run files ('outputs/model.pt'), "
                                    f"got {type(path).__name__}")
        fields = _fields(**kwargs)
        folder = run.workspace_folder
        _upload_pending_outputs(run, path)
        root, sources = files.run_sources(folder, run.id, path)
        record, _stored = files.store_model(folder, model_name, root=root, source=path, sources=sources,
                                            run_id=run.id, **fields)
        return Model(Workspace(_folder=folder), _record=record)

    # -- finding ---------------------------------------------------------------------------------------

    @staticmethod
    def list(workspace: "Workspace", name: str | None = None, tags: Any = None, properties: Any = None,
             run_id: str | None = None, latest: bool = False, **_azure: Any) -> list["Model"]:
        """Registered versions, by name and newest version first. ``tags``/``properties``: Azure's
        ``[["key", "value"], "key2"]`` (or a dict; ``None`` as a value: the key is set); ``latest``: the
        newest version of each name (of those that match)."""
        store = workspace.folder.store
        records = store.list_models(name=name, run_id=run_id)
        records = [r for r in records if _matches(r.tags, tags, "tags") and _matches(r.properties, properties, "properties")]
        if latest:
            newest: dict[str, ModelRecord] = {}
            for r in records:
                newest.setdefault(r.name, r)
            records = list(newest.values())
        return [Model(workspace, _record=r) for r in records]

    @staticmethod
    def get_model_path(model_name: str, version: int | None = None, _workspace: "Workspace | None" = None) -> str:
        """The path of a registered model on this machine: in ``./azureml-models/<name>/<version>/`` (as
        Azure ML does), downloaded there on first use. Without ``_workspace``: the workspace of the submitted
        run this code runs in, else the one of config.json."""
        from runlab.sdk.workspace import Workspace
        from runlab.store.folder import WorkspaceFolder

        workspace = _workspace
        if workspace is None:
            in_run = RUNLAB_WORKSPACE.read()
            server = RUNLAB_SERVER.read()
            if in_run and server:  # a submitted run of a runlab server: its workspace, with the run's token
                from runlab.store.remote.workspace import RemoteWorkspace

                workspace = Workspace(_folder=RemoteWorkspace(server, workspace_id=in_run))  # type: ignore[arg-type]
            elif in_run:
                workspace = Workspace(_folder=WorkspaceFolder(in_run))
            else:
                try:
                    workspace = Workspace.from_config()
                except UserError as exc:
                    raise UserError(f"Model.get_model_path({model_name!r}): this is not a submitted run and no "
                                    "config.json was found; pass _workspace=ws") from exc
        record = Model(workspace, model_name, version=version).record
        return str(files.download_once(workspace.folder, record, Path.cwd() / MODEL_CACHE))

    # -- files -----------------------------------------------------------------------------------------

    def download(self, target_dir: str | os.PathLike[str] = ".", exist_ok: bool = False,
                 exists_ok: bool | None = None) -> str:
        """Copy the version's files into ``target_dir`` (each checked against its sha256); the path of the
        model there (``target_dir/model.pt``, or the folder). Raises :class:`UserError` when it exists
        unless ``exist_ok=True``."""
        ok = exist_ok if exists_ok is None else exists_ok  # Azure's older spelling
        return str(files.download_model(self._workspace.folder, self._record, target_dir, exist_ok=ok))

    # -- changing what it says of itself -----------------------------------------------------------------

    def add_tags(self, tags: Mapping[str, Any]) -> None:
        """Add or change tags."""
        self._update(add_tags=_string_map(tags, "tag"))

    def remove_tags(self, tags: str | Iterable[str]) -> None:
        """Remove tags by key (keys that are not there are ignored)."""
        keys = [tags] if isinstance(tags, str) else [str(k) for k in tags]
        self._update(remove_tags=keys)

    def add_properties(self, properties: Mapping[str, Any]) -> None:
        """Add properties; they are add-only (:class:`PropertyConflictError` for a changed value)."""
        self._update(add_properties=_string_map(properties, "property"))

    def update(self, tags: Mapping[str, Any] | None = None, description: str | None = None,
               sample_input_dataset: Any = None, sample_output_dataset: Any = None,
               resource_configuration: Any = None, **_azure: Any) -> None:
        """Replace the description and (when given) all the tags."""
        if description is not None:
            _check_text(description, "description")
        self._update(description=description, tags=None if tags is None else _string_map(tags, "tag"))

    def update_tags_properties(self, add_tags: Mapping[str, Any] | None = None,
                               remove_tags: Iterable[str] | None = None,
                               add_properties: Mapping[str, Any] | None = None,
                               remove_properties: Iterable[str] | None = None) -> None:
        if remove_properties:
            raise UserError("properties are add-only: use tags for what changes")
        self._update(add_tags=_string_map(add_tags or {}, "tag"), remove_tags=list(remove_tags or []),
                     add_properties=_string_map(add_properties or {}, "property"))

    def _update(self, **changes: Any) -> None:
        self._record = self._store.update_model(self.name, self.version, **changes)

    def delete(self) -> None:
        """Delete this version (its number is not given again); contents no other version holds are removed."""
        files.delete_model(self._workspace.folder, self.name, self.version)

    # -- what runlab does not do -----------------------------------------------------------------------

    @staticmethod
    def deploy(*_args: Any, **_kwargs: Any) -> Any:
        raise _no_services("Model.deploy")

    @staticmethod
    def package(*_args: Any, **_kwargs: Any) -> Any:
        raise _no_services("Model.package")

    @staticmethod
    def profile(*_args: Any, **_kwargs: Any) -> Any:
        raise _no_services("Model.profile")


def _no_services(call: str) -> NotSupportedError:
    from runlab.core.errors import WebserviceException

    return WebserviceException(
        f"{call}(): runlab does not deploy web services (no ACI, AKS or managed endpoints). Download the model with "
        "Model(ws, name).download() or Model.get_model_path(name) and serve it with the tool of your choice",
        call=call)


# -- helpers -------------------------------------------------------------------------------------------


def _find(workspace: "Workspace", name: str | None, model_id: str | None, version: int | None, tags: Any,
          properties: Any, run_id: str | None) -> ModelRecord:
    if model_id is not None:
        if not isinstance(model_id, str) or ":" not in model_id:
            raise UserError(f"model id {shown(model_id)} is not name:version (for example 'net:2')")
        id_name, _, id_version = model_id.rpartition(":")
        if not id_version.isdigit():
            raise UserError(f"model id {shown(model_id)} is not name:version (for example 'net:2')")
        if name is not None and name != id_name:
            raise UserError(f"Model(name={name!r}, id={model_id!r}): the id names another model")
        name, version = id_name, int(id_version)
    if name is None:
        raise UserError("Model(ws, ...) needs a name or an id ('net' or id='net:2')")
    check_model_name(name)
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
        raise InvalidValueError(f"model version must be a positive int, got {shown(version)}")
    store = workspace.folder.store
    if tags is None and properties is None and run_id is None:
        return store.get_model(name, version)
    record = store.get_model(name, version)  # ModelNotFoundError for a name or version that is not there
    for r in store.list_models(name=name, run_id=run_id):
        if (version is None or r.version == version) and _matches(r.tags, tags, "tags") \
                and _matches(r.properties, properties, "properties"):
            return r
    raise ModelNotFoundError(f"no version of model {name!r} has tags {tags!r}, properties {properties!r}"
                             + (f" and run {run_id}" if run_id else "") + f" (its latest is {record.version})",
                             name=name)


def _matches(have: Mapping[str, str], wanted: Any, what: str) -> bool:
    if wanted is None:
        return True
    pairs: list[tuple[str, str | None]] = []
    if isinstance(wanted, Mapping):
        pairs = [(str(k), None if v is None else str(v)) for k, v in wanted.items()]
    elif isinstance(wanted, str):
        pairs = [(wanted, None)]
    else:
        for item in wanted:
            if isinstance(item, str):
                pairs.append((item, None))
            elif isinstance(item, (list, tuple)) and len(item) == 2:
                pairs.append((str(item[0]), None if item[1] is None else str(item[1])))
            else:
                raise InvalidValueError(f"{what} filters are keys or [key, value] pairs, got {shown(item)}")
    return all(k in have and (v is None or have[k] == v) for k, v in pairs)


def _check_text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidValueError(f"a model {what} must be a str, got {type(value).__name__}")
    if not storable_text(value):
        raise InvalidValueError(f"model {what} {shown(value)} holds a NUL character or a lone surrogate: pass clean text")
    return value


def _string_map(values: Mapping[str, Any], what: str) -> dict[str, str]:
    if not isinstance(values, Mapping):
        raise InvalidValueError(f"model {what}s are a dict of str -> value, got {type(values).__name__}")
    out = {}
    for key, value in values.items():
        if not isinstance(key, str) or not key or len(key) > 255:
            raise InvalidValueError(f"model {what} names are non-empty str of at most 255 characters, got {shown(key)}")
        text = value if isinstance(value, str) else str(value)
        _check_text(key, f"{what} name")
        _check_text(text, f"{what} value")
        out[key] = text
    return out


def _fields(tags: Mapping[str, Any] | None = None, properties: Mapping[str, Any] | None = None,
            description: str | None = None, datasets: Sequence[Any] | None = None,
            model_framework: str | None = None, model_framework_version: str | None = None,
            sample_input_dataset: Any = None, sample_output_dataset: Any = None,
            resource_configuration: Any = None) -> dict[str, Any]:
    """The store's arguments from Azure's, checked."""
    details: dict[str, Any] = {}
    for key, value in (("sample_input_dataset", sample_input_dataset), ("sample_output_dataset", sample_output_dataset)):
        if value is not None:
            details[key] = _dataset_ref(value)
    if resource_configuration is not None:
        details["resource_configuration"] = {k: v for k, v in vars(resource_configuration).items()
                                             if isinstance(v, (int, float, str, bool, type(None)))} \
            if hasattr(resource_configuration, "__dict__") else str(resource_configuration)
    return {
        "description": _check_text(description, "description") if description is not None else "",
        "tags": _string_map(tags or {}, "tag"),
        "properties": _string_map(properties or {}, "property"),
        "datasets": _datasets(datasets),
        "framework": _check_text(model_framework, "framework") if model_framework is not None else None,
        "framework_version": (_check_text(str(model_framework_version), "framework version")
                              if model_framework_version is not None else None),
        "details": details,
    }


def _dataset_ref(dataset: Any) -> dict[str, Any]:
    return {"id": getattr(dataset, "id", None), "name": getattr(dataset, "name", None),
            "version": getattr(dataset, "version", None)}


def _datasets(datasets: Sequence[Any] | None) -> list[ModelDatasetRecord]:
    from runlab.sdk.dataset import Dataset

    out = []
    for item in datasets or []:
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str)):
            raise InvalidValueError(f"datasets= takes (scenario, dataset) pairs, as [('training data', ds)], "
                                    f"got {shown(item)}")
        scenario, dataset = item
        if not isinstance(dataset, Dataset):
            raise InvalidValueError(f"datasets=: {shown(dataset)} for {scenario!r} is not a Dataset "
                                    "(make one with Dataset.File.from_files or Dataset.get_by_name)")
        _check_text(scenario, "dataset scenario")
        out.append(ModelDatasetRecord(scenario=scenario[:255], dataset_id=dataset.id, dataset_name=dataset.name,
                                      dataset_version=dataset.version))
    return out


def _upload_pending_outputs(run: "Run", model_path: str) -> None:
    """Inside the run this process runs in, store what ``./outputs`` holds under ``model_path`` first: a
    submitted run's outputs are uploaded when its script ends, after the script registered its model.
    Links that lead out of the current folder are not followed."""
    from runlab.sdk import run as sdk_run
    from runlab.store.paths import check_relative_name

    if sdk_run._context_run is not run:
        return
    rel = check_relative_name(model_path, "model path", "the run", "for example 'outputs/model.pt'")
    if rel != "outputs" and not rel.startswith("outputs/"):
        return
    cwd = os.path.realpath(os.getcwd())
    local = os.path.join(cwd, rel)
    if not os.path.lexists(local):
        return
    if os.path.isfile(local):
        candidates = [(rel, local)]
    else:
        candidates = []
        for dirpath, _dirs, names in os.walk(local):
            for name in names:
                full = os.path.join(dirpath, name)
                candidates.append((f"{rel}/{os.path.relpath(full, local)}".replace(os.sep, "/"), full))
    for name, full in sorted(candidates):
        real = os.path.realpath(full)
        if not real.startswith(cwd + os.sep) or not os.path.isfile(real):
            continue  # a link out of the run's folder (or a broken one): not a file of the run
        run.upload_file(name, full)
