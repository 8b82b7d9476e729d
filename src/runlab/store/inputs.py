"""A run's dataset inputs as its definition records them, and the files each stands for.

``dataset.as_named_input('input').as_mount()`` in a ``ScriptRunConfig`` becomes an :class:`InputSpec`
in the run's definition (``inputDatasets``): the input's name and mode, the dataset's definition,
and, for a registered version (or a dataset derived from one), the version whose recorded files it
reads. The agent turns each file input into a folder (:mod:`runlab.store.datacache`) with
:func:`input_files`; a tabular input reaches the script as its dataset.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Mapping

from runlab.core.assets import DatasetFile
from runlab.core.errors import UserError
from runlab.core.names import shown
from runlab.store.base import Store
from runlab.store.datasets import FILE, DatasetDefinition, OpenDatastore, apply_file_steps, resolve_files

MOUNT, DOWNLOAD, DIRECT = "mount", "download", "direct"
MODES = (MOUNT, DOWNLOAD, DIRECT)
INPUT_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# the run's environment keeps these: an input named like one of them gets no variable of that name
RESERVED_VARIABLES = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "PWD", "LANG", "TMPDIR", "TERM", "PYTHONPATH", "PYTHONHOME",
    "PYTHONUNBUFFERED", "VIRTUAL_ENV", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
})
RESERVED_PREFIXES = ("RUNLAB_", "AZUREML_", "LD_", "PYTHON")


def check_input_name(name: object) -> str:
    """An input name: ``^[a-zA-Z_][a-zA-Z0-9_]*$`` (it becomes an environment variable), up to 255 characters."""
    if not isinstance(name, str) or not INPUT_NAME.match(name) or len(name) > 255:
        raise UserError(f"invalid input name {shown(name)}: use letters, digits and '_', not starting with a "
                        "digit (it names an environment variable of the run), for example 'training_data'", name=name)
    return name


def variable_allowed(name: str) -> bool:
    """Whether the run gets an environment variable named as input ``name`` (not one it needs itself)."""
    return name not in RESERVED_VARIABLES and not name.upper().startswith(RESERVED_PREFIXES)


@dataclass(frozen=True)
class InputSpec:
    """One named input of a run. ``origin_id`` is the registered version whose recorded files the
    dataset reads (its first ``pinned_steps`` steps are already in them); ``registered``: the dataset
    is that version itself (not one derived from it with ``take``, ``skip``...)."""

    name: str
    mode: str
    kind: str
    definition: Mapping[str, Any]
    path_on_compute: str | None = None
    origin_id: str | None = None
    origin_name: str | None = None
    origin_version: int | None = None
    origin_files_hash: str | None = None
    pinned_steps: int = 0
    registered: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "mode": self.mode, "kind": self.kind, "definition": dict(self.definition),
                "pathOnCompute": self.path_on_compute,
                "dataset": ({"id": self.origin_id, "name": self.origin_name, "version": self.origin_version,
                             "filesHash": self.origin_files_hash, "pinnedSteps": self.pinned_steps,
                             "registered": self.registered} if self.origin_id else None)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "InputSpec":
        try:
            origin = data.get("dataset") or {}
            spec = cls(
                name=check_input_name(data["name"]), mode=str(data["mode"]), kind=str(data["kind"]),
                definition=dict(data["definition"]), path_on_compute=data.get("pathOnCompute"),
                origin_id=origin.get("id"), origin_name=origin.get("name"), origin_version=origin.get("version"),
                origin_files_hash=origin.get("filesHash"), pinned_steps=int(origin.get("pinnedSteps") or 0),
                registered=bool(origin.get("registered")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UserError(f"a run input is malformed ({type(exc).__name__}: {exc}): {shown(dict(data))}") from exc
        if spec.mode not in MODES:
            raise UserError(f"run input {spec.name!r} has mode {spec.mode!r}; runlab knows {', '.join(MODES)}")
        return spec

    @property
    def dataset_definition(self) -> DatasetDefinition:
        return DatasetDefinition.from_dict(self.definition)

    @property
    def view_key(self) -> str | None:
        """The data cache's name for this input's files when it can be known without listing them
        (a registered version as recorded); None otherwise."""
        if not self.registered or not self.origin_files_hash:
            return None
        return hashlib.sha256(f"runlab-registered-view 1\n{self.origin_files_hash}".encode()).hexdigest()


def input_files(spec: InputSpec, store: Store, opener: OpenDatastore | None) -> list[DatasetFile]:
    """The files input ``spec`` stands for now: a registered version's recorded files (after the
    steps added since), else its definition resolved (listing its datastores)."""
    definition = spec.dataset_definition
    if spec.origin_id is None:
        return resolve_files(definition, opener, validate=True)
    files = store.get_dataset_files(spec.origin_id)
    if definition.kind == FILE:
        files = apply_file_steps(files, definition.steps[spec.pinned_steps:])
    return files
