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

**A workspace of a runlab server** (a remote folder) keeps the contents in the server's store, reached
through :class:`~runlab.store.remote.blobs.HttpBlobStore`: a client sends the files of this machine the
server lacks (each checked against its sha256 before it appears), and has the server copy run files
into its store itself. The lock is then the server's: it records a registration
(:func:`record_model`) only once every content named is there, and deletes (:func:`delete_version`)
under the same lock.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from runlab.core.assets import ModelDatasetRecord, ModelFile, ModelRecord
from runlab.core.errors import ModelPathError, StoreError, UserError
from runlab.core.names import check_model_name, shown
from runlab.store.blobs import BlobStore, Changed
from runlab.store.folder import WorkspaceFolder
from runlab.store.objects.local import SMALL_FILE, _temp_name, fill_then_rename
from runlab.store.paths import check_relative_name

if TYPE_CHECKING:
    from runlab.store.remote.blobs import HttpBlobStore

__all__ = ["ModelSource", "blobs_of", "copy_run_files", "delete_model", "delete_version", "download_model", "local_sources",
           "model_blobs", "record_model", "run_sources", "store_model"]

COPY_THREADS = 2  # large files at once: the kernel copies while another thread hashes (2 cores here)
_LISTED = 20  # run files named in the error for a model path that names none


@dataclass(frozen=True)
class ModelSource:
    """One file to register: its name inside the model, where it is recorded as coming from, and how
    to open it (a file descriptor, checked: never through a link that leads out of its folder)."""

    path: str
    source: str
    open: Callable[[], int]
    run_file: tuple[str, str] | None = None  # (run id, file name) for a run's file: a server copies it itself


def _is_remote(folder: WorkspaceFolder) -> bool:
    return bool(getattr(folder, "remote", False))


def _models_root(folder: WorkspaceFolder) -> Path:
    if _is_remote(folder):
        from runlab.core.errors import NotSupportedError

        raise NotSupportedError("the model files of a runlab server's workspace are the server's: this machine "
                                "reaches them over HTTP (blobs_of), not as a folder")
    return Path(folder.path) / "files" / "models"


def model_blobs(folder: WorkspaceFolder) -> BlobStore:
    """The content store of a workspace folder of this machine (a server's own, too: its folder or its bucket)."""
    _models_root(folder)  # refuses a client's view of a server's workspace
    return folder.content_blobs()


def blobs_of(folder: WorkspaceFolder) -> "BlobStore | HttpBlobStore":
    """Where the workspace's model contents are: its folder here, or its server's store over HTTP."""
    if _is_remote(folder):
        from runlab.store.remote.blobs import HttpBlobStore

        return HttpBlobStore(folder.client)  # type: ignore[attr-defined]
    return model_blobs(folder)


def _lock(folder: WorkspaceFolder) -> Any:
    if _is_remote(folder):
        return nullcontext()  # the server's: it records and deletes under its own lock (record_model, delete_version)
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

    return root, [ModelSource(path=p, source=f"run:{run_id}/{n}", open=_run_opener(folder, run_id, n),
                              run_file=(run_id, n)) for p, n in picked]


def _run_opener(folder: WorkspaceFolder, run_id: str, name: str) -> Callable[[], int]:
    def open_file() -> int:
        artifacts = folder.artifacts
        if getattr(artifacts, "kind", "local") != "local":  # a server's bucket: a local copy to hash and store
            import tempfile

            with tempfile.TemporaryFile(prefix="runlab-model-") as spool, artifacts.open(run_id, name) as f:
                shutil.copyfileobj(f, spool, 1 << 20)
                spool.flush()
                return os.dup(spool.fileno())
        with artifacts.open(run_id, name) as f:  # checked: no link leading out of the run's folder
            return os.dup(f.fileno())
    return open_file


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
    if not _is_remote(folder) or not any(s.run_file for s in sources):
        return _store_opened(folder, sources)
    # a server's run files: the server copies them into its store itself (nothing comes here and back)
    from runlab.store.remote.blobs import HttpBlobStore

    blobs = HttpBlobStore(folder.client)  # type: ignore[attr-defined]
    by_run: dict[str, list[str]] = {}
    for s in sources:
        if s.run_file is not None:
            by_run.setdefault(s.run_file[0], []).append(s.run_file[1])
    copied: dict[tuple[str, str], ModelFile] = {}
    new_files = new_bytes = 0
    for run_id, names in by_run.items():
        files, n, size = blobs.copy_run_files(run_id, names)
        copied.update({(run_id, name): f for name, f in files.items()})
        new_files, new_bytes = new_files + n, new_bytes + size
    local = _store_opened(folder, [s for s in sources if s.run_file is None])
    others = iter(local.files)
    out: list[ModelFile] = []
    for s in sources:
        if s.run_file is None:
            out.append(next(others))
        else:
            f = copied[s.run_file]
            out.append(ModelFile(path=s.path, size=f.size, sha256=f.sha256, source=s.source,
                                 source_etag=f.source_etag))
    return StoredFiles(out, new_files + local.new_files, new_bytes + local.new_bytes)


def copy_run_files(folder: WorkspaceFolder, run_id: str, names: Sequence[str]) -> StoredFiles:
    """On a server: store run ``run_id``'s files ``names`` (checked names) in the workspace's model
    store; each :class:`ModelFile` is named by its run file name."""
    folder.store.get_run(run_id)  # RunNotFoundError for a run that is not there
    return _store_opened(folder, [ModelSource(path=n, source=f"run:{run_id}/{n}", open=_run_opener(folder, run_id, n))
                                  for n in names])


def _store_opened(folder: WorkspaceFolder, sources: Sequence[ModelSource]) -> StoredFiles:
    if not sources:
        return StoredFiles([], 0, 0)
    blobs = blobs_of(folder)
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
    if _is_remote(folder):
        return len(folder.store.delete_model(name, version))  # the server removes them (delete_version)
    return len(delete_version(folder, name, version))


def delete_version(folder: WorkspaceFolder, name: str, version: int) -> list[str]:
    """Of a workspace folder here (a server's own too): delete one version and, under the lock, the
    contents no other version holds; their sha256s."""
    blobs = model_blobs(folder)
    with _lock(folder):
        unused = folder.store.delete_model(name, version)
        for sha256 in unused:
            blobs.delete(sha256)
    return unused


def record_model(folder: WorkspaceFolder, name: str, **fields: Any) -> ModelRecord:
    """On a server, what a client's ``register_model`` does: under the lock deletes take, check that
    every file named is a sane name whose content the store holds with its size, then record the
    version (the files' hash is computed here, not taken from the client)."""
    files = fields.get("files")
    if not isinstance(files, list) or not all(isinstance(f, ModelFile) for f in files):
        raise UserError("register_model: files must be a list of model files")
    check_relative_name(fields.get("path"), "model name on disk", "the model")
    for f in files:
        check_relative_name(f.path, "model file name", "the model")
    fields["files_hash"] = files_hash(files)
    blobs = model_blobs(folder)
    with _lock(folder):
        missing = [f.path for f in files if not blobs.has(f.sha256, f.size)]
        if missing:
            raise UserError(f"model {name!r}: the server holds no content for {', '.join(missing[:5])}"
                            + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
                            + " (send the files first, or register the model again): nothing was registered",
                            name=name, missing=missing[:20])
        return folder.store.register_model(name, **fields)


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
    blobs = blobs_of(folder)
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
