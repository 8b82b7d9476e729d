"""The files of registered models: which files a model path names, storing them once, copying them out.

A model version is made of files of a run (``outputs/model.pt``, or every file under ``outputs/``) or
of this machine. :func:`run_sources` and :func:`local_sources` say which, and under which names inside
the model: a file keeps its base name (``model.pt``), a folder its own name and what is under it
(``outputs/weights/a.bin``). :func:`store_model` copies the bytes into the workspace's content-addressed
file store (``files/models/objects/``, :class:`~runlab.store.blobs.BlobStore`) and records the version.

**Unchanged files are not read again.** Each file recorded keeps where it came from (``run:<run
id>/<name>`` or its path) and that file's identity then (inode, mtime, ctime and size). A later
registration of the same file with the same identity takes its sha256 from that record, once its
content is found in the store with its size: registering an unchanged 1 GB folder again stores
nothing and reads no byte. A file whose identity differs is copied and hashed in one pass.

Registrations and deletes of one workspace take turns (a file lock): a delete removes the contents
no version holds any more, and must not remove one that a registration is about to record.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Mapping, Sequence

from runlab.core.entities import ModelDatasetRecord, ModelFile, ModelRecord
from runlab.core.errors import ModelPathError, StoreError, UserError
from runlab.core.names import check_model_name, shown
from runlab.store.blobs import BlobStore, Changed
from runlab.store.folder import WorkspaceFolder
from runlab.store.objects.local import SMALL_FILE, _temp_name, fill_then_rename
from runlab.store.paths import check_relative_name

__all__ = ["ModelSource", "delete_model", "download_model", "local_sources", "model_blobs", "run_sources",
           "store_model"]

COPY_THREADS = 2  # large files at once: the kernel copies while another thread hashes (2 cores here)
_LISTED = 20  # run files named in the error for a model path that names none


@dataclass(frozen=True)
class ModelSource:
    """One file to register: its name inside the model, where it is recorded as coming from, and how
    to open it (a file descriptor, checked: never through a link that leads out of its folder)."""

    path: str
    source: str
    open: Callable[[], int]


def _models_root(folder: WorkspaceFolder) -> Path:
    if getattr(folder, "remote", False):
        from runlab.core.errors import NotSupportedError

        raise NotSupportedError(
            "registered models of a runlab server's workspace are not reachable over HTTP in this version: "
            "keep the model as a run output (run.upload_file / ./outputs) and download it with run.download_file")
    return Path(folder.path) / "files" / "models"


def model_blobs(folder: WorkspaceFolder) -> BlobStore:
    return BlobStore(_models_root(folder) / "objects")


def _lock(folder: WorkspaceFolder) -> Any:
    from filelock import FileLock

    root = _models_root(folder)
    root.mkdir(parents=True, exist_ok=True)
    return FileLock(str(root / ".lock"))


# -- which files -------------------------------------------------------------------------------------


def run_sources(folder: WorkspaceFolder, run_id: str, model_path: str) -> tuple[str, list[ModelSource]]:
    """The run files ``model_path`` names (a file, or a folder of the run's files): (the model's name
    on disk, its files). :class:`ModelPathError` listing the run's files when it names none."""
    rel = check_relative_name(model_path, "model path", "the run", "for example 'outputs/model.pt' or 'outputs'")
    artifacts = folder.artifacts
    names = artifacts.list(run_id)
    root = PurePosixPath(rel).name
    if rel in names:
        picked = [(root, rel)]
    else:
        under = rel + "/"
        picked = [(root + "/" + n[len(under):], n) for n in names if n.startswith(under)]
    if not picked:
        if names:
            listed = ", ".join(names[:_LISTED]) + (f" and {len(names) - _LISTED} more" if len(names) > _LISTED else "")
            there = f"its files are: {listed}"
        else:
            there = ("it has no files yet (a submitted run's ./outputs are uploaded when its script ends; "
                     "run.upload_file('outputs/model.pt', 'model.pt') stores one now)")
        raise ModelPathError(f"model path {shown(model_path)} is neither a file nor a folder of run {run_id}: "
                             f"{there}", run_id=run_id, model_path=model_path, files=names)

    def opener(name: str) -> Callable[[], int]:
        def open_file() -> int:
            with artifacts.open(run_id, name) as f:  # checked: no link leading out of the run's folder
                return os.dup(f.fileno())
        return open_file

    return root, [ModelSource(path=p, source=f"run:{run_id}/{n}", open=opener(n)) for p, n in picked]


def local_sources(model_path: str | os.PathLike[str]) -> tuple[str, list[ModelSource], list[str]]:
    """The files of this machine ``model_path`` names (a file, or every file under a folder): (the model's
    name on disk, its files, what was left out and why). Inside a folder, a link to a file inside it is
    taken as that file; links that lead out of it, broken links, links to folders and special files
    are left out."""
    given = os.fspath(model_path)
    try:
        st = os.stat(given)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ModelPathError(f"model path {shown(given)} cannot be read: {reason} (it is a path of this machine, "
                             f"relative to {os.getcwd()})", model_path=given) from exc
    path = os.path.abspath(given)
    root = os.path.basename(path.rstrip(os.sep)) or "model"
    if stat.S_ISREG(st.st_mode):
        return root, [ModelSource(path=root, source=path, open=_open_local(path))], []
    if not stat.S_ISDIR(st.st_mode):
        raise ModelPathError(f"model path {shown(given)} is neither a file nor a folder", model_path=given)
    real_root = os.path.realpath(path)
    inside = real_root + os.sep
    files: list[ModelSource] = []
    skipped: list[str] = []
    for dirpath, dirs, names in os.walk(path):  # links to folders are listed in dirs, not walked
        rel_dir = os.path.relpath(dirpath, path)
        for name in sorted(names) + sorted(d for d in dirs if os.path.islink(os.path.join(dirpath, d))):
            full = os.path.join(dirpath, name)
            rel = name if rel_dir == "." else f"{rel_dir}/{name}".replace(os.sep, "/")
            try:
                target = os.stat(full)
            except OSError:
                skipped.append(f"{rel} (broken link)")
                continue
            if stat.S_ISDIR(target.st_mode):
                skipped.append(f"{rel} (link to a folder)")
            elif not stat.S_ISREG(target.st_mode):
                skipped.append(f"{rel} (not a regular file)")
            elif os.path.islink(full) and not os.path.realpath(full).startswith(inside):
                skipped.append(f"{rel} (link to a file outside {path})")
            else:
                files.append(ModelSource(path=f"{root}/{rel}", source=full, open=_open_local(full)))
    if not files:
        why = f"; left out: {', '.join(skipped[:5])}" if skipped else ""
        raise ModelPathError(f"model folder {path} holds no files{why}: save the model into it first",
                             model_path=given, skipped=skipped)
    files.sort(key=lambda f: f.path)
    return root, files, skipped


def _open_local(path: str) -> Callable[[], int]:
    def open_file() -> int:
        try:
            return os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise ModelPathError(f"cannot read {path}: {exc.strerror or exc}", model_path=path) from exc
    return open_file


# -- storing -----------------------------------------------------------------------------------------


def _etag(st: os.stat_result) -> str:
    return f"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_ctime_ns:x}-{st.st_size:x}"


def files_hash(files: Sequence[ModelFile]) -> str:
    """The sha256 of a version's file list (names, sizes, contents): equal lists, equal hashes."""
    digest = hashlib.sha256(b"runlab-model-files-v1\n")
    for f in sorted(files, key=lambda f: f.path):
        digest.update(f"{f.path}\0{f.size}\0{f.sha256}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


@dataclass(frozen=True)
class StoredFiles:
    files: list[ModelFile]
    new_files: int
    new_bytes: int


def _store_files(folder: WorkspaceFolder, sources: Sequence[ModelSource]) -> StoredFiles:
    blobs = model_blobs(folder)
    store = folder.store
    opened: list[tuple[ModelSource, int, os.stat_result]] = []
    try:
        for source in sources:
            fd = source.open()
            opened.append((source, fd, os.fstat(fd)))
        known = store.known_model_files([s.source for s, _fd, _st in opened])
        results: list[ModelFile | None] = [None] * len(opened)
        todo: list[int] = []
        for i, (source, _fd, st) in enumerate(opened):
            etag = _etag(st)
            hit = known.get((source.source, etag))
            if hit is not None and hit[1] == st.st_size and blobs.has(hit[0], st.st_size):
                results[i] = ModelFile(path=source.path, size=st.st_size, sha256=hit[0], source=source.source,
                                       source_etag=etag)
            else:
                todo.append(i)
        new_files = new_bytes = 0

        def copy(i: int) -> tuple[ModelFile, bool]:
            source, fd, before = opened[i]
            try:
                sha256, size, new = blobs.put_fd(fd, before.st_size)
            except Changed:
                raise _changed(source) from None
            after = os.fstat(fd)
            if _etag(after) != _etag(before):
                raise _changed(source)
            return ModelFile(path=source.path, size=size, sha256=sha256, source=source.source,
                             source_etag=_etag(before)), new

        large = [i for i in todo if opened[i][2].st_size >= SMALL_FILE]
        small = [i for i in todo if opened[i][2].st_size < SMALL_FILE]
        with ThreadPoolExecutor(max_workers=COPY_THREADS) as pool:
            done = list(zip(large, pool.map(copy, large)))
        done += [(i, copy(i)) for i in small]  # one thread copies small files fastest
        for i, (file, new) in done:
            results[i] = file
            if new:
                new_files += 1
                new_bytes += file.size
        return StoredFiles([f for f in results if f is not None], new_files, new_bytes)
    finally:
        for _source, fd, _st in opened:
            os.close(fd)


def _changed(source: ModelSource) -> UserError:
    where = source.source[4:] if source.source.startswith("run:") else source.source
    return UserError(f"{where} changed while runlab copied it (is the script still writing it?): nothing was "
                     "registered; register it again once the file is complete", path=where)


def store_model(
    folder: WorkspaceFolder,
    name: str,
    *,
    root: str,
    source: str,
    sources: Sequence[ModelSource],
    run_id: str | None = None,
    description: str = "",
    tags: Mapping[str, str] | None = None,
    properties: Mapping[str, str] | None = None,
    datasets: Sequence[ModelDatasetRecord] = (),
    framework: str | None = None,
    framework_version: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> tuple[ModelRecord, StoredFiles]:
    """Store the bytes of ``sources`` (those not there yet) and record the next version of ``name``."""
    check_model_name(name)
    with _lock(folder):
        stored = _store_files(folder, sources)
        record = folder.store.register_model(
            name, path=root, source=source, files=stored.files, files_hash=files_hash(stored.files), run_id=run_id,
            description=description, tags=tags, properties=properties, datasets=datasets, framework=framework,
            framework_version=framework_version, details=details)
    return record, stored


def delete_model(folder: WorkspaceFolder, name: str, version: int) -> int:
    """Delete one version and the contents no other version holds; how many contents were removed."""
    blobs = model_blobs(folder)
    with _lock(folder):
        unused = folder.store.delete_model(name, version)
        for sha256 in unused:
            blobs.delete(sha256)
    return len(unused)


# -- copying out -------------------------------------------------------------------------------------


def download_model(folder: WorkspaceFolder, record: ModelRecord, target_dir: str | os.PathLike[str], *,
                   exist_ok: bool = False) -> Path:
    """Write the version's files under ``target_dir`` (``target_dir/model.pt``, or ``target_dir/outputs/...``
    for a folder); the path of the model there. Each file is checked against its recorded sha256 while it
    is copied and written under a temporary name, so a damaged store or an interruption leaves no file
    under a model file's name. ``exist_ok=False`` refuses a target that exists."""
    target_root = Path(target_dir)
    model_path = target_root / check_relative_name(record.path, "model name on disk", "the target folder")
    if not exist_ok and os.path.lexists(model_path):
        raise UserError(f"{model_path} already exists: pass exist_ok=True to overwrite it, or another target_dir",
                        path=str(model_path))
    files = folder.store.get_model_files(record.name, record.version)
    blobs = model_blobs(folder)
    real_root = os.path.realpath(target_root)

    def fetch(file: ModelFile) -> None:
        rel = check_relative_name(file.path, "model file name", "the model")
        dest = target_root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        real_parent = os.path.realpath(dest.parent)
        if real_parent != real_root and not real_parent.startswith(real_root + os.sep):
            raise UserError(f"cannot write {dest}: a link on the way leads out of {target_root}", path=str(dest))
        tmp = dest.parent / _temp_name()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o644)
        fill_then_rename(fd, str(tmp), str(dest), lambda out: blobs.copy_to(file.sha256, file.size, out))

    try:
        target_root.mkdir(parents=True, exist_ok=True)
        large = [f for f in files if f.size >= SMALL_FILE]
        with ThreadPoolExecutor(max_workers=COPY_THREADS) as pool:
            list(pool.map(fetch, large))
        for f in files:
            if f.size < SMALL_FILE:
                fetch(f)
    except OSError as exc:
        raise StoreError(f"cannot write model {record.model_id} to {target_root}: {exc.strerror or exc}",
                         path=str(target_root)) from exc
    return model_path


def download_once(folder: WorkspaceFolder, record: ModelRecord, cache_dir: Path) -> Path:
    """The model's path under ``cache_dir`` (``<cache_dir>/<name>/<version>/``), downloaded there first unless
    a complete copy is there: a copy is written to a temporary folder and renamed into place."""
    version_dir = cache_dir / record.name / str(record.version)
    model_path = version_dir / record.path
    if version_dir.is_dir():
        return model_path
    version_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = version_dir.parent / f".runlab-tmp-{uuid.uuid4().hex}"
    try:
        download_model(folder, record, tmp)
        try:
            os.rename(tmp, version_dir)
        except OSError:
            if not version_dir.is_dir():  # another process put it there meanwhile: use that one
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return model_path
