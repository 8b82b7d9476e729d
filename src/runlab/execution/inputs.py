"""A submitted run's dataset inputs, made available before its script starts.

For each input of the run's definition (``inputDatasets``, see :mod:`runlab.store.inputs`), the agent
calls :func:`prepare_inputs` while the run is Preparing: a file input becomes a read-only folder of
the data cache (:mod:`runlab.store.datacache`: found there when the same files were used before,
else copied in from its datastores), a tabular input becomes the dataset's id (its name when it is
not registered). Once the snapshot is unpacked, :meth:`PreparedInputs.place` links the folders
asked for with ``path_on_compute``; then the arguments are expanded and the variables set. The run
records what it consumed (``run_inputs``: dataset, version, the view's key, files and bytes).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from runlab.core.assets import RunInputRecord
from runlab.core.errors import RunlabError
from runlab.core.settings import load_settings
from runlab.store.datacache import DataCache
from runlab.store.datasets import FILE
from runlab.store.datastores import datastore_opener
from runlab.store.folder import WorkspaceFolder
from runlab.store.inputs import InputSpec, input_files, variable_allowed


@dataclass
class PreparedInputs:
    folder: WorkspaceFolder | None = None
    run_id: str = ""
    specs: dict[str, InputSpec] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)  # what the script receives, by input name
    cache_root: Path | None = None  # the data cache, when a file input is in it
    links: list[Path] = field(default_factory=list)  # absolute path_on_compute links, removed at the run's end

    def place(self, workdir: Path) -> list[str]:
        """Link each input with a ``path_on_compute`` there (relative: in ``workdir``); record the paths."""
        said = []
        for name, spec in self.specs.items():
            if spec.kind != FILE or not spec.path_on_compute:
                continue
            asked = Path(spec.path_on_compute)
            if ".." in asked.parts:  # refused at submit; a definition written by other means is checked here
                raise RunlabError(f"input {name!r}: path_on_compute {spec.path_on_compute!r} has '..'", name=name)
            link = asked if asked.is_absolute() else workdir / asked
            if link.exists() or link.is_symlink():
                raise RunlabError(f"input {name!r}: path_on_compute {spec.path_on_compute} already exists"
                                  f"{' in the run folder (a file of the snapshot?)' if not asked.is_absolute() else ''}"
                                  ": choose another path", name=name)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(self.values[name], target_is_directory=True)
            if asked.is_absolute():
                self.links.append(link)
            said.append(f"input {name!r}: {link} -> {self.values[name]}")
            self.values[name] = str(link)
        if self.folder is not None and self.specs:
            paths = {n: v for n, v in self.values.items() if self.specs[n].kind == FILE}
            self.folder.store.update_definition(self.run_id, {"inputDatasetPaths": paths})
        return said

    def variables(self, env: Mapping[str, str]) -> dict[str, str]:
        """The input's environment variables: ``<name>`` (unless the run needs a variable of that name,
        or it is set already) and ``AZUREML_DATAREFERENCE_<name>``, each the argument's text."""
        out = {}
        for name, value in self.values.items():
            out[f"AZUREML_DATAREFERENCE_{name}"] = value
            if variable_allowed(name) and name not in env:
                out[name] = value
        return out

    def expand(self, definition: Mapping[str, Any]) -> list[str]:
        """The script's arguments, each input placeholder replaced by the input's path or id."""
        arguments = [str(a) for a in definition.get("arguments", [])]
        for index, name in (definition.get("argumentInputs") or {}).items():
            if name not in self.values:
                raise RunlabError(f"argument {index} names input {name!r}, which the run does not have", name=name)
            arguments[int(index)] = self.values[name]
        return arguments

    def protect(self, argv: list[str]) -> list[str]:
        """``argv``, started so that the script cannot write the data cache even as root (see
        :func:`read_only_prefix`)."""
        if self.cache_root is None:
            return argv
        return [*read_only_prefix(self.cache_root), *argv]

    def driver_lines(self) -> list[str]:
        """What the driver log says of each input before the script's output."""
        lines = []
        for name, value in self.values.items():
            spec = self.specs[name]
            if spec.kind == FILE:
                how = "Mounted" if spec.mode == "mount" else "Downloaded"
                lines.append(f"{how} input {name} to {value} as folder (read-only)")
            else:
                lines.append(f"Input {name} is tabular dataset {value}: run.input_datasets[{name!r}]")
        return lines

    def remove_links(self) -> None:
        for link in self.links:
            if link.is_symlink():
                link.unlink()


_READ_ONLY_SCRIPT = ('mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && exec "$@"')
_probe_lock = threading.Lock()
_probed: dict[str, bool] = {}


def read_only_prefix(cache_root: Path) -> list[str]:
    """For a script run as root (whom file permissions do not stop): the command that starts it in a
    mount namespace of its own where the data cache is mounted read-only, so that it cannot change
    what later runs read. Empty when not root, or where this machine cannot (no ``unshare``, or no
    right to make mount namespaces: a container without CAP_SYS_ADMIN)."""
    if os.geteuid() != 0:
        return []
    unshare = shutil.which("unshare")
    if unshare is None:
        return []
    prefix = [unshare, "--mount", "--propagation", "private", "--", "/bin/sh", "-c", _READ_ONLY_SCRIPT,
              str(cache_root)]
    key = str(cache_root)
    with _probe_lock:
        if key not in _probed:
            try:
                done = subprocess.run([*prefix, "true"], capture_output=True, timeout=10)
                _probed[key] = done.returncode == 0
            except (OSError, subprocess.SubprocessError):
                _probed[key] = False
    return prefix if _probed[key] else []


def prepare_inputs(folder: WorkspaceFolder, run_id: str, definition: Mapping[str, Any], *,
                   cancel: threading.Event | None = None, say: Callable[[str], None] = lambda line: None,
                   cache: DataCache | None = None) -> PreparedInputs:
    """Make each input of run ``run_id`` available (see the module's docstring)."""
    specs = [InputSpec.from_dict(item) for item in definition.get("inputDatasets") or ()]
    prepared = PreparedInputs(folder, run_id)
    if not specs:
        return prepared
    store = folder.store
    cache = cache or DataCache(load_settings().data_cache_dir)
    opener = datastore_opener(store, folder.datastores_dir)
    records = []
    for spec in specs:
        prepared.specs[spec.name] = spec
        what = f"dataset {spec.origin_name}:{spec.origin_version}" if spec.registered else (
            f"a dataset derived from {spec.origin_name}:{spec.origin_version}" if spec.origin_id else "a dataset")
        if spec.kind != FILE:
            prepared.values[spec.name] = spec.origin_id if spec.registered and spec.origin_id else spec.name
            say(f"input {spec.name!r}: {what}, tabular: read by the script (run.input_datasets[{spec.name!r}])")
            records.append(RunInputRecord(run_id, spec.name, spec.kind, spec.mode, spec.origin_id, spec.origin_name,
                                          spec.origin_version))
            continue
        found = cache.find(spec.view_key) if spec.view_key else None
        if found is not None and spec.origin_id is not None:
            version = store.get_dataset_by_id(spec.origin_id)
            count, size, key = version.file_count, version.total_size, found.name
            say(f"input {spec.name!r}: {what}, {count:,} files ({size / 1e6:,.1f} MB) found in the data cache")
            path = found
        else:
            files = input_files(spec, store, opener)
            say(f"input {spec.name!r}: {what}, {len(files):,} files: making them available ({spec.mode})")
            view = cache.view(files, opener, verify=spec.origin_id is not None, key=spec.view_key, cancel=cancel,
                              progress=_prefixed(say, f"input {spec.name!r}: "))
            say(f"input {spec.name!r}: {view.describe()}")
            count, size, key, path = view.file_count, view.total_size, view.key, view.path
        prepared.values[spec.name] = os.fspath(path)
        prepared.cache_root = cache.root
        records.append(RunInputRecord(run_id, spec.name, spec.kind, spec.mode, spec.origin_id, spec.origin_name,
                                      spec.origin_version, files_hash=key, file_count=count, total_size=size))
    store.record_run_inputs(run_id, records)
    return prepared


def _prefixed(say: Callable[[str], None], prefix: str) -> Callable[[str], None]:
    return lambda line: say(prefix + line)
