"""Snapshots of a run's source folder: content-addressed files, ignore rules, limits, git info.

Every submit snapshots its ``source_directory`` so that the run can be reproduced from exactly the
files it ran with. A :class:`SnapshotStore` keeps snapshots under a root folder::

    <root>/objects/ab/cdef0123...   a file's content, named by its sha256: stored once, however
                                    many snapshots hold it
    <root>/manifests/<id>.json      what one snapshot holds (see below)

The snapshot id is the sha256 of the canonical file list (each file's path, sha256 and mode), so the
same tree always gets the same id and one manifest. A manifest records::

    {"format": 1, "snapshot_id": ..., "created": ISO time, "source": absolute folder,
     "ignore_file": ".amlignore" | null, "file_count": ..., "total_bytes": ...,
     "git": {"commit": ..., "branch": ..., "dirty": ...} | null,
     "files": [{"path": "pkg/train.py", "sha256": ..., "size": ..., "mode": "644" | "755"}, ...],
     "skipped": [{"path": ..., "reason": ...}, ...]}

``created``, ``source`` and ``git`` are those of the first take of that tree; the :class:`Snapshot`
that :meth:`SnapshotStore.take` returns carries the git state of *this* take, for the caller to record
on its run. Empty folders are not recorded.

Which files: everything under the folder except what the first ignore file found at its top says
(``.runlabignore``, else ``.amlignore``, else ``.gitignore``; gitignore syntax), and except the
defaults that always apply (:data:`DEFAULT_IGNORE_PATTERNS`, and any folder holding a virtual or conda
environment). Ignored folders are not walked at all. A symbolic link to a file inside the folder is stored
as the file it points to. A link whose target is outside the folder is skipped (it could take any file of
the machine, ``~/.ssh/id_rsa``, into the workspace), and so are links to folders, broken links and special
files: each is listed in ``skipped`` with its reason, and :meth:`Snapshot.skipped_line` is the one line
that ``submit`` prints about them.

Every file in the store is written to a temporary file in its final folder, flushed to disk and then
renamed with ``os.replace``: a crash never leaves a partial object or manifest, and two processes that
snapshot at once at worst both write the same bytes. Objects are written before the manifest that
names them.

The same layout can live elsewhere: a :class:`SnapshotStore` takes a folder (a
:class:`FolderSnapshotStorage` over it) or any :class:`SnapshotStorage`; ``runlab server --artifacts
s3://...`` gives it the bucket's (:class:`runlab.store.s3_artifacts.S3SnapshotStorage`, under
``<prefix>/snapshots/``). Whatever the storage, an object is named by the hash of the bytes actually
stored, and :meth:`SnapshotStore.restore` checks each file's sha256 as it copies it out: a content
changed in the store is refused, never restored.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import stat
import subprocess
import tempfile
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import IO, Any, BinaryIO, Callable, NamedTuple, Protocol, Sequence, Union

import pathspec

from runlab.core.errors import NotFoundError, StoreError, UserError

__all__ = [
    "DEFAULT_IGNORE_PATTERNS",
    "DEFAULT_SNAPSHOT_MAX_BYTES",
    "DEFAULT_SNAPSHOT_MAX_FILES",
    "IGNORE_FILE_NAMES",
    "FolderSnapshotStorage",
    "FolderUsage",
    "GitInfo",
    "Snapshot",
    "SnapshotLimits",
    "SnapshotStorage",
    "SnapshotStore",
    "SnapshotStoreStats",
    "SnapshotTooLargeError",
    "SourceFile",
    "list_files",
    "read_git_info",
]

DEFAULT_SNAPSHOT_MAX_BYTES = 300 * 1024 * 1024
DEFAULT_SNAPSHOT_MAX_FILES = 2000

IGNORE_FILE_NAMES = (".runlabignore", ".amlignore", ".gitignore")
"""Ignore files looked for at the top of the source folder, in order; only the first found applies."""

DEFAULT_IGNORE_PATTERNS = (
    ".git",
    "__pycache__/",
    "*.pyc",
    ".ipynb_checkpoints/",
    "node_modules/",
    ".runlab/",
    "/outputs/",
    "/logs/",
)
"""Always ignored (gitignore syntax), on top of the ignore file. ``outputs`` and ``logs`` only at the top:
a run writes them and they are uploaded with the run, not with its snapshot."""

# a folder holding one of these is a Python virtual environment or a conda environment
_ENVIRONMENT_MARKERS = ("pyvenv.cfg", "conda-meta")

_BLOCK_SIZE = 1024 * 1024
_GIT_TIMEOUT_S = 10.0
_MANIFEST_FORMAT = 1
_ID_PREFIX = b"runlab-snapshot-v1\n"
_TEMP_PREFIX = ".tmp-"
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_LARGEST_SHOWN = 5
_SKIPPED_SHOWN = 5  # entries named in Snapshot.skipped_line
_OUTSIDE_LINK = "symbolic link to a file outside the source folder"
# when one subfolder holds this share of its parent, name the subfolder: "src/data", not "src"
_DRILL_DOWN_SHARE = 0.8

PathLike = Union[str, "os.PathLike[str]"]
ProgressCallback = Callable[[int, int], None]
"""Called after each file with (bytes done, bytes in total)."""


@dataclass(frozen=True)
class SnapshotLimits:
    """The most a snapshot may hold; configurable per workspace and per submit."""

    max_bytes: int = DEFAULT_SNAPSHOT_MAX_BYTES
    max_files: int = DEFAULT_SNAPSHOT_MAX_FILES

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_files"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise UserError(f"snapshot limit {name} must be a positive integer, not {value!r}",
                                limit_name=name, value=value)


class SourceFile(NamedTuple):
    """A file that a snapshot of a folder would hold."""

    path: str
    """Relative to the source folder, with ``/`` separators."""
    size: int


class FolderUsage(NamedTuple):
    """How much of a source folder one of its folders holds (``"."``: the files at its top)."""

    path: str
    bytes: int
    files: int


@dataclass(frozen=True)
class GitInfo:
    """Git state of a source folder. Fields are None when git could not tell (no ``git`` command,
    a timeout, a repository git refuses to read); ``commit`` is None before the first commit and
    ``branch`` on a detached HEAD. ``dirty`` counts changed and untracked, not ignored, files of the
    whole repository."""

    commit: str | None
    branch: str | None
    dirty: bool | None

    def to_dict(self) -> dict[str, Any]:
        return {"commit": self.commit, "branch": self.branch, "dirty": self.dirty}


@dataclass(frozen=True)
class Snapshot:
    """The result of :meth:`SnapshotStore.take`."""

    snapshot_id: str
    source_dir: Path
    file_count: int
    total_bytes: int
    git: GitInfo | None
    """Git state at this take; None when the folder is not in a git repository."""
    manifest_path: Path | str
    """The manifest's file, or its place in a bucket."""
    skipped: tuple[str, ...] = ()
    """Links to folders or to files outside the folder, broken links and special files that were left out."""
    skipped_reasons: tuple[str, ...] = ()
    """Why each entry of ``skipped`` was left out, in the same order."""
    new_files: int = 0
    """Files whose content was not yet in the store."""
    new_bytes: int = 0

    def skipped_line(self) -> str | None:
        """One line naming what was left out and why (the first few), or None when nothing was."""
        if not self.skipped:
            return None
        pairs = list(itertools.zip_longest(self.skipped, self.skipped_reasons, fillvalue="left out"))
        named = ", ".join(f"{path!r} ({reason})" for path, reason in pairs[:_SKIPPED_SHOWN])
        more = len(pairs) - _SKIPPED_SHOWN
        rest = f" and {more} more (see 'skipped' in {self.manifest_path})" if more > 0 else ""
        return f"runlab: the snapshot of {self.source_dir} left out {named}{rest}"


@dataclass(frozen=True)
class SnapshotStoreStats:
    snapshots: int
    objects: int
    object_bytes: int


class SnapshotTooLargeError(UserError):
    """A source folder is over the snapshot limits; nothing was copied.

    Context: ``source_dir``, ``limit`` and ``total`` (in ``unit``: ``"bytes"`` or ``"files"``, the
    first limit exceeded), ``total_bytes``, ``file_count``, ``largest`` (the largest folders, as
    :class:`FolderUsage`) and ``ignore_file`` (the ignore file in use, or None).
    """

    source_dir: Path
    limit: int
    total: int
    unit: str
    total_bytes: int
    file_count: int
    largest: tuple[FolderUsage, ...]
    ignore_file: str | None

    def __init__(self, source_dir: Path, limits: SnapshotLimits, files: list[SourceFile],
                 ignore_file: str | None) -> None:
        total_bytes = sum(f.size for f in files)
        over_bytes = total_bytes > limits.max_bytes
        unit = "bytes" if over_bytes else "files"
        largest = tuple(_largest_folders(files, unit))
        message = _too_large_message(source_dir, limits, files, total_bytes, largest, ignore_file)
        super().__init__(
            message, source_dir=source_dir, limit=limits.max_bytes if over_bytes else limits.max_files,
            total=total_bytes if over_bytes else len(files), unit=unit, total_bytes=total_bytes,
            file_count=len(files), largest=largest, ignore_file=ignore_file)


# ---------------------------------------------------------------------------------------------------
# which files


@dataclass(frozen=True)
class _Entry:
    path: str
    abs_path: str
    size: int
    executable: bool


@dataclass(frozen=True)
class _Scan:
    root: Path
    files: list[_Entry]
    skipped: list[tuple[str, str]]
    ignore_file: str | None


_DEFAULT_SPEC = pathspec.GitIgnoreSpec.from_lines(DEFAULT_IGNORE_PATTERNS)


def _source_root(source_dir: PathLike) -> Path:
    path = Path(source_dir).expanduser()
    where = "" if path.is_absolute() else f" (relative to the current folder {os.getcwd()})"
    if not path.exists():
        raise UserError(
            f"source_directory {str(path)!r} does not exist{where}. Pass the folder that holds your "
            "training script, for example ScriptRunConfig(source_directory='./src', script='train.py').",
            path=path)
    if not path.is_dir():
        raise UserError(
            f"source_directory {str(path)!r} is not a folder{where}. Pass the folder and the script "
            f"separately, for example ScriptRunConfig(source_directory={str(path.parent)!r}, "
            f"script={path.name!r}).", path=path)
    return path.resolve()


def _load_ignore_spec(root: Path) -> tuple[pathspec.GitIgnoreSpec | None, str | None]:
    for name in IGNORE_FILE_NAMES:
        candidate = root / name
        if candidate.is_file():
            try:
                lines = candidate.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError as exc:
                raise UserError(f"cannot read the ignore file {candidate}: {exc.strerror}",
                                path=candidate) from exc
            return pathspec.GitIgnoreSpec.from_lines(lines), name
    return None, None


def _holds_environment(folder: str) -> bool:
    return any(os.path.exists(os.path.join(folder, marker)) for marker in _ENVIRONMENT_MARKERS)


def _scan(source_dir: PathLike) -> _Scan:
    root = _source_root(source_dir)
    inside = os.path.join(str(root), "")  # what the real path of a link kept must start with
    user_spec, ignore_file = _load_ignore_spec(root)

    def ignored(rel: str) -> bool:
        return _DEFAULT_SPEC.match_file(rel) or (user_spec is not None and user_spec.match_file(rel))

    files: list[_Entry] = []
    skipped: list[tuple[str, str]] = []
    pending: list[tuple[str, str]] = [("", str(root))]  # (relative prefix, absolute folder)
    while pending:
        prefix, folder = pending.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as exc:
            raise UserError(f"cannot read folder {folder} of the snapshot: {exc.strerror}. Fix its "
                            "permissions or add it to .runlabignore.", path=Path(folder)) from exc
        for entry in entries:
            rel = prefix + entry.name
            is_link = entry.is_symlink()
            if not is_link and entry.is_dir(follow_symlinks=False):
                # pruned here, so an ignored folder (a venv of 10,000 files) is never walked
                if not ignored(rel + "/") and not _holds_environment(entry.path):
                    pending.append((rel + "/", entry.path))
                continue
            if ignored(rel):
                continue
            try:
                st = os.stat(entry.path)  # follows a link: a linked file is stored as its content
            except OSError:
                if is_link:
                    skipped.append((rel, "broken symbolic link"))
                continue  # removed while we walked
            if stat.S_ISDIR(st.st_mode):
                if not ignored(rel + "/"):
                    skipped.append((rel, "symbolic link to a folder"))
            elif not stat.S_ISREG(st.st_mode):
                skipped.append((rel, "not a regular file"))
            elif is_link and not os.path.realpath(entry.path).startswith(inside):
                skipped.append((rel, _OUTSIDE_LINK))
            else:
                files.append(_Entry(rel, entry.path, st.st_size, bool(st.st_mode & stat.S_IXUSR)))
    files.sort(key=lambda e: e.path)
    skipped.sort()
    return _Scan(root, files, skipped, ignore_file)


def list_files(source_dir: PathLike) -> list[SourceFile]:
    """The files a snapshot of ``source_dir`` would hold, sorted by path, after the ignore rules.

    Raises :class:`UserError` when ``source_dir`` is missing, not a folder or cannot be read.
    """
    return [SourceFile(e.path, e.size) for e in _scan(source_dir).files]


# ---------------------------------------------------------------------------------------------------
# limits


def _human_bytes(size: float) -> str:
    if size < 1024:
        return f"{int(size)} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        size /= 1024
        if size < 1024 or unit == "TiB":
            break
    return f"{size:.1f} {unit}"


def _count_files(count: int) -> str:
    return f"{count:,} file" if count == 1 else f"{count:,} files"


def _largest_folders(files: list[SourceFile], unit: str,
                     count: int = _LARGEST_SHOWN) -> list[FolderUsage]:
    """The top folders by ``unit``, each drilled down while one subfolder holds most of it."""
    usage: dict[str, list[int]] = {}
    children: dict[str, set[str]] = {}
    for f in files:
        parts = f.path.split("/")[:-1]
        folders = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)] or ["."]
        parent = ""
        for folder in folders:
            totals = usage.setdefault(folder, [0, 0])
            totals[0] += f.size
            totals[1] += 1
            children.setdefault(parent, set()).add(folder)
            parent = folder
    index = 0 if unit == "bytes" else 1

    def amount(folder: str) -> int:
        return usage[folder][index]

    picked: list[str] = []
    for folder in children.get("", set()):
        while children.get(folder):
            biggest = max(children[folder], key=lambda child: (amount(child), child))
            if amount(biggest) < _DRILL_DOWN_SHARE * amount(folder):
                break
            folder = biggest
        picked.append(folder)
    picked.sort(key=lambda folder: (-amount(folder), folder))
    return [FolderUsage(folder, *usage[folder]) for folder in picked[:count]]


def _too_large_message(root: Path, limits: SnapshotLimits, files: list[SourceFile], total_bytes: int,
                       largest: tuple[FolderUsage, ...], ignore_file: str | None) -> str:
    over_bytes = total_bytes > limits.max_bytes
    over = []
    if over_bytes:
        over.append(f"{_human_bytes(limits.max_bytes)}")
    if len(files) > limits.max_files:
        over.append(f"{limits.max_files:,} files")
    lines = [f"The snapshot of {root} is too large: {_human_bytes(total_bytes)} in "
             f"{_count_files(len(files))}, "
             f"over the limit of {' and '.join(over)}. Nothing was copied."]

    if largest:
        lines.append("Largest folders:")
        names = ["./ (files at the top)" if u.path == "." else u.path + "/" for u in largest]
        width = max(len(name) for name in names)
        for name, u in zip(names, largest):
            lines.append(f"  {name:<{width}}  {_human_bytes(u.bytes):>10}  {_count_files(u.files)}")
    if over_bytes:
        biggest_files = sorted(files, key=lambda f: (-f.size, f.path))[:3]
        width = max(len(f.path) for f in biggest_files)
        lines.append("Largest files:")
        lines.extend(f"  {f.path:<{width}}  {_human_bytes(f.size):>10}" for f in biggest_files)

    # suggest the fewest folders whose removal brings the snapshot under the limits
    suggested: list[str] = []
    left_bytes, left_files = total_bytes, len(files)
    for u in largest:
        if left_bytes <= limits.max_bytes and left_files <= limits.max_files:
            break
        if u.path != ".":
            suggested.append(u.path + "/")
            left_bytes -= u.bytes
            left_files -= u.files
    if ignore_file in (None, ".runlabignore"):
        where = f"{root / '.runlabignore'} (gitignore syntax)"
    elif ignore_file == ".amlignore":
        where = f"{root / '.amlignore'}, the ignore file in use here (a .runlabignore would replace it)"
    else:
        where = (f"{root / '.gitignore'}, or create {root / '.runlabignore'} (it replaces .gitignore "
                 "for snapshots: copy over the rules you need)")
    lines.append(f"To leave folders out of the snapshot, add them to {where}" +
                 (", for example:" if suggested else "."))
    lines.extend(f"  {line}" for line in suggested)
    data = suggested[0].rstrip("/") if suggested else "data"
    lines.extend([
        "Data does not belong in the snapshot: upload it to a datastore once and read it in the run "
        "as a dataset:",
        "  datastore = ws.get_default_datastore()",
        f"  datastore.upload(src_dir={str(root / data)!r}, target_path={data!r})",
        f"  dataset = Dataset.File.from_files(path=(datastore, {data!r}))",
        "Or raise the snapshot limit of the workspace or of this submit "
        f"(now {_human_bytes(limits.max_bytes)} "
        f"and {limits.max_files:,} files).",
    ])
    return "\n".join(lines)


def _check_limits(scan: _Scan, limits: SnapshotLimits) -> None:
    total_bytes = sum(e.size for e in scan.files)
    if total_bytes > limits.max_bytes or len(scan.files) > limits.max_files:
        files = [SourceFile(e.path, e.size) for e in scan.files]
        raise SnapshotTooLargeError(scan.root, limits, files, scan.ignore_file)


# ---------------------------------------------------------------------------------------------------
# git


def read_git_info(folder: PathLike) -> GitInfo | None:
    """Commit, branch and dirty flag of the git repository that holds ``folder``.

    None when ``folder`` is not in a git repository; a :class:`GitInfo` of Nones when git cannot
    tell (no ``git`` command, a timeout, a repository git refuses to read). Never raises.
    """
    env = {key: value for key, value in os.environ.items()
           if key not in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE")}
    env["GIT_OPTIONAL_LOCKS"] = "0"  # never take the index lock from under the user's own git
    env["LC_ALL"] = "C"
    unknown = GitInfo(commit=None, branch=None, dirty=None)
    try:
        proc = subprocess.run(
            ["git", "status", "--porcelain=v2", "--branch", "--untracked-files=normal"],
            cwd=folder, env=env, stdin=subprocess.DEVNULL, capture_output=True, encoding="utf-8",
            errors="replace", timeout=_GIT_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return unknown
    if proc.returncode != 0:
        return None if "not a git repository" in proc.stderr else unknown
    commit: str | None = None
    branch: str | None = None
    dirty = False
    for line in proc.stdout.splitlines():
        if line.startswith("# branch.oid "):
            value = line.split(" ", 2)[2]
            commit = None if value == "(initial)" else value
        elif line.startswith("# branch.head "):
            value = line.split(" ", 2)[2]
            branch = None if value == "(detached)" else value
        elif line and not line.startswith("#"):
            dirty = True
    return GitInfo(commit=commit, branch=branch, dirty=dirty)


# ---------------------------------------------------------------------------------------------------
# the store


def _copy_hashing(source: IO[bytes], target: IO[bytes] | None) -> tuple[str, int]:
    """Read ``source`` to its end (a file, a request body, an S3 object's stream), hashing it, and write
    it to ``target`` when given: (sha256, size)."""
    digest = hashlib.sha256()
    size = 0
    while block := source.read(_BLOCK_SIZE):
        digest.update(block)
        if target is not None:
            target.write(block)
        size += len(block)
    return digest.hexdigest(), size


def _has_size(path: Path, size: int) -> bool:
    try:
        return path.stat().st_size == size
    except OSError:
        return False



def _snapshot_id(files: list[dict[str, Any]]) -> str:
    canonical = json.dumps([[f["path"], f["sha256"], f["mode"]] for f in files], separators=(",", ":"))
    return hashlib.sha256(_ID_PREFIX + canonical.encode("ascii")).hexdigest()


def _safe_relpath(raw: object) -> PurePosixPath:
    rel = PurePosixPath(raw) if isinstance(raw, str) else None
    if rel is None or not rel.parts or rel.is_absolute() or ".." in rel.parts or "\\" in str(rel):
        raise StoreError(f"snapshot manifest holds an unsafe path {raw!r}", path=raw)
    return rel


def _check_sha256(sha256: object) -> str:
    if not isinstance(sha256, str) or not _SHA256_RE.fullmatch(sha256):
        raise StoreError(f"{str(sha256)[:80]!r} is not a sha256: the snapshot manifest that names it is damaged",
                         sha256=sha256)
    return sha256


def _write_atomic(path: Path, write: Callable[[IO[bytes]], object], mode: int, sync: bool = True) -> None:
    """Write ``path`` through a temporary file in its folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
            if sync:
                out.flush()
                os.fsync(out.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(temp)
        raise


class SnapshotStorage(Protocol):
    """Where a :class:`SnapshotStore` keeps its objects (named by sha256, checked before they get here) and
    manifests: a folder (:class:`FolderSnapshotStorage`) or, for ``runlab server --artifacts s3://...``, a
    bucket (:class:`runlab.store.s3_artifacts.S3SnapshotStorage`). A missing object or manifest is a
    :class:`FileNotFoundError`; other failures an :class:`OSError` or runlab's own errors."""

    description: str
    """Where, for messages."""

    def object_sizes(self, shas: Sequence[str]) -> dict[str, int | None]:
        """The size of each object, None for those not kept."""
        ...

    def store_object(self, source: IO[bytes], expected: str, only_expected: bool) -> tuple[str, int, bool]:
        """Copy ``source`` in, hashed as it is copied and named by the sha256 of the bytes copied (checked
        before the object becomes visible): (sha256, size, whether it was new). ``only_expected``: store
        nothing when the bytes are not those of ``expected``."""
        ...

    def open_object(self, sha256: str) -> tuple[BinaryIO, int]:
        """The object's bytes, streamed, and its size."""
        ...

    def manifest_exists(self, snapshot_id: str) -> bool: ...

    def read_manifest(self, snapshot_id: str) -> bytes: ...

    def write_manifest(self, snapshot_id: str, data: bytes) -> None: ...

    def manifest_location(self, snapshot_id: str) -> Path | str: ...

    def counts(self) -> tuple[int, int, int]:
        """(manifests, objects, bytes of the objects)."""
        ...


class FolderSnapshotStorage:
    """Snapshots in a folder (``objects/ab/cdef...``, ``manifests/<id>.json``): every write goes through a
    temporary file in the final folder, flushed and renamed (see the module docstring)."""

    def __init__(self, root: PathLike) -> None:
        self.root = Path(root)
        self.description = str(self.root)
        self.objects = self.root / "objects"
        self.manifests = self.root / "manifests"

    def object_path(self, sha256: str) -> Path:
        return self.objects / sha256[:2] / sha256[2:]

    def object_sizes(self, shas: Sequence[str]) -> dict[str, int | None]:
        sizes: dict[str, int | None] = {}
        for sha in shas:
            try:
                st = self.object_path(sha).stat()
            except OSError:
                sizes[sha] = None
                continue
            sizes[sha] = st.st_size if stat.S_ISREG(st.st_mode) else None
        return sizes

    def store_object(self, source: IO[bytes], expected: str, only_expected: bool) -> tuple[str, int, bool]:
        folder = self.object_path(expected).parent
        folder.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=folder)
        try:
            with os.fdopen(fd, "wb") as out:
                # hashed again while copying: if the file changed since, the object is named by what
                # was actually copied
                sha256, size = _copy_hashing(source, out)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temp, 0o444)
            final = self.object_path(sha256)
            if sha256 != expected and only_expected:
                os.unlink(temp)
                return sha256, size, False
            if sha256 != expected:
                final.parent.mkdir(parents=True, exist_ok=True)
            if sha256 != expected and _has_size(final, size):
                os.unlink(temp)
                return sha256, size, False
            os.replace(temp, final)
        except BaseException:
            with suppress(OSError):
                os.unlink(temp)
            raise
        return sha256, size, True

    def open_object(self, sha256: str) -> tuple[BinaryIO, int]:
        stream = open(self.object_path(sha256), "rb")
        try:
            return stream, os.fstat(stream.fileno()).st_size
        except BaseException:
            stream.close()
            raise

    def manifest_location(self, snapshot_id: str) -> Path:
        return self.manifests / f"{snapshot_id}.json"

    def manifest_exists(self, snapshot_id: str) -> bool:
        return self.manifest_location(snapshot_id).exists()

    def read_manifest(self, snapshot_id: str) -> bytes:
        path = self.manifest_location(snapshot_id)
        if not path.is_file():
            raise FileNotFoundError(str(path))
        return path.read_bytes()

    def write_manifest(self, snapshot_id: str, data: bytes) -> None:
        _write_atomic(self.manifest_location(snapshot_id), lambda out: out.write(data), mode=0o644)

    def counts(self) -> tuple[int, int, int]:
        snapshots = sum(1 for _ in self.manifests.glob("*.json")) if self.manifests.is_dir() else 0
        objects = object_bytes = 0
        if self.objects.is_dir():
            for folder in self.objects.iterdir():
                for obj in folder.iterdir():
                    if not obj.name.startswith(_TEMP_PREFIX):
                        objects += 1
                        object_bytes += obj.stat().st_size
        return snapshots, objects, object_bytes


class _Damaged(Exception):
    def __init__(self, sha256: str, size: int) -> None:
        super().__init__(sha256)
        self.sha256, self.size = sha256, size


class SnapshotStore:
    """Snapshots kept under ``root`` (the workspace's files area), or in another :class:`SnapshotStorage`
    (a server's bucket); see the module docstring."""

    def __init__(self, root: PathLike | SnapshotStorage) -> None:
        if isinstance(root, (str, os.PathLike)):
            self.storage: SnapshotStorage = FolderSnapshotStorage(root)
            self.root: Path | None = Path(root)
        else:
            self.storage = root
            self.root = None
        self.where = self.storage.description

    def __repr__(self) -> str:
        return f"SnapshotStore({self.where!r})"

    def take(self, source_dir: PathLike, limits: SnapshotLimits = SnapshotLimits(),
             progress: ProgressCallback | None = None) -> Snapshot:
        """Snapshot ``source_dir`` and return what was stored.

        Files whose content is already in the store are not copied again. ``progress``, when given,
        is called after each file with (bytes done, bytes in total).

        Raises :class:`SnapshotTooLargeError` (before copying anything) when the files after the
        ignore rules are over ``limits``; :class:`UserError` when ``source_dir`` is missing, not a
        folder, or holds a file that cannot be read; :class:`StoreError` when the store cannot be
        written.
        """
        scan = _scan(source_dir)
        _check_limits(scan, limits)
        git = read_git_info(scan.root)
        bytes_total = sum(e.size for e in scan.files)
        bytes_done = new_files = new_bytes = 0
        entries: list[dict[str, Any]] = []
        for entry in scan.files:
            sha256, size, is_new = self._store_file(entry)
            entries.append({"path": entry.path, "sha256": sha256, "size": size,
                            "mode": "755" if entry.executable else "644"})
            if is_new:
                new_files += 1
                new_bytes += size
            bytes_done += entry.size
            if progress is not None:
                progress(bytes_done, bytes_total)

        snapshot_id = _snapshot_id(entries)
        total_bytes = sum(e["size"] for e in entries)
        manifest_path = self.storage.manifest_location(snapshot_id)
        if not self.storage.manifest_exists(snapshot_id):  # the same tree was snapshotted before: keep its first manifest
            manifest = {
                "format": _MANIFEST_FORMAT,
                "snapshot_id": snapshot_id,
                "created": datetime.now(timezone.utc).isoformat(),
                "source": str(scan.root),
                "ignore_file": scan.ignore_file,
                "file_count": len(entries),
                "total_bytes": total_bytes,
                "git": git.to_dict() if git is not None else None,
                "files": entries,
                "skipped": [{"path": path, "reason": reason} for path, reason in scan.skipped],
            }
            self._write_manifest(snapshot_id, json.dumps(manifest, indent=1).encode("utf-8"))
        return Snapshot(snapshot_id=snapshot_id, source_dir=scan.root, file_count=len(entries),
                        total_bytes=total_bytes, git=git, manifest_path=manifest_path,
                        skipped=tuple(path for path, _ in scan.skipped),
                        skipped_reasons=tuple(reason for _, reason in scan.skipped), new_files=new_files,
                        new_bytes=new_bytes)

    def manifest(self, snapshot_id: str) -> dict[str, Any]:
        """The manifest of a snapshot, as written (see the module docstring).

        Raises :class:`NotFoundError` for an unknown id, :class:`StoreError` for an unreadable manifest.
        """
        unknown = NotFoundError(f"snapshot {snapshot_id!r} not found in {self.where}: snapshot ids are "
                                "the 64-character ids that take() returns", snapshot_id=snapshot_id)
        if not isinstance(snapshot_id, str) or not _SHA256_RE.fullmatch(snapshot_id):
            raise unknown
        path = self.storage.manifest_location(snapshot_id)
        try:
            manifest = json.loads(self.storage.read_manifest(snapshot_id).decode("utf-8"))
        except FileNotFoundError:
            raise unknown from None
        except (OSError, ValueError) as exc:
            raise StoreError(f"cannot read the manifest of snapshot {snapshot_id} at {path}: {exc}",
                             snapshot_id=snapshot_id, path=path) from exc
        if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
            raise StoreError(f"the manifest of snapshot {snapshot_id} at {path} is damaged",
                             snapshot_id=snapshot_id, path=path)
        return manifest

    def restore(self, snapshot_id: str, dest: PathLike) -> list[Path]:
        """Write the files of a snapshot under ``dest``, with their executable bits.

        Folders are created and existing files overwritten; other files in ``dest`` are left alone.
        Each file's bytes are checked against the sha256 and size its manifest records as they are
        copied: a content changed in the store is never restored (the run would not run the code that
        was submitted). Returns the paths written, in manifest order.

        Raises :class:`NotFoundError` for an unknown id, :class:`StoreError` when the snapshot is
        damaged (a content missing or changed) or ``dest`` cannot be written.
        """
        manifest = self.manifest(snapshot_id)
        dest_root = Path(dest)
        written: list[Path] = []
        for item in manifest["files"]:
            if not isinstance(item, dict):
                raise StoreError(f"the manifest of snapshot {snapshot_id} is damaged",
                                 snapshot_id=snapshot_id)
            rel = _safe_relpath(item.get("path"))
            sha256 = item.get("sha256")
            if not isinstance(sha256, str) or not _SHA256_RE.fullmatch(sha256):
                raise StoreError(f"the manifest of snapshot {snapshot_id} has a bad sha256 for {rel}",
                                 snapshot_id=snapshot_id, path=str(rel))
            target = dest_root.joinpath(*rel.parts)
            try:
                source, _size = self.storage.open_object(sha256)
            except FileNotFoundError as exc:
                raise StoreError(f"snapshot {snapshot_id} is damaged: the content of {rel} "
                                 f"({sha256}) is missing from {self.where}",
                                 snapshot_id=snapshot_id, path=str(rel)) from exc
            except OSError as exc:
                raise StoreError(f"cannot read {rel} of snapshot {snapshot_id} from {self.where}: {exc}",
                                 snapshot_id=snapshot_id, path=str(rel)) from exc

            def copy(out: IO[bytes], source: BinaryIO = source, sha256: str = sha256) -> None:
                got, size = _copy_hashing(source, out)
                if got != sha256:
                    raise _Damaged(got, size)

            try:
                with source:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    _write_atomic(target, copy, mode=0o755 if item.get("mode") == "755" else 0o644, sync=False)
            except _Damaged as exc:
                raise StoreError(
                    f"snapshot {snapshot_id} is damaged: the content of {rel} in {self.where} has sha256 "
                    f"{exc.sha256} ({exc.size} bytes), not the {sha256} ({item.get('size')} bytes) its manifest "
                    "records: it was changed outside runlab. Not restored, so that nothing runs code other than "
                    "what was submitted: submit the run again to send the files anew",
                    snapshot_id=snapshot_id, path=str(rel)) from None
            except OSError as exc:
                raise StoreError(f"cannot restore {rel} of snapshot {snapshot_id} to {target}: {exc}",
                                 snapshot_id=snapshot_id, path=target) from exc
            written.append(target)
        return written

    # -- between stores (a client and runlab server) --------------------------------------------

    def has_object(self, sha256: str) -> bool:
        sha256 = _check_sha256(sha256)
        return self.storage.object_sizes([sha256]).get(sha256) is not None

    def missing_objects(self, shas: Sequence[str]) -> list[str]:
        """Those of ``shas`` the store does not hold, in their order (:class:`StoreError` for a non-sha256)."""
        checked = [_check_sha256(sha) for sha in shas]
        sizes = self._sizes(checked)
        return [sha for sha in checked if sizes.get(sha) is None]

    def import_object(self, source: IO[bytes], sha256: str) -> None:
        """Store the bytes of ``source`` as object ``sha256``; :class:`UserError` when they are not those
        bytes (then nothing is stored)."""
        expected = _check_sha256(sha256)
        got, _size, _new = self._put(source, expected, only_expected=True)
        if got != expected:
            raise UserError(f"the bytes sent for snapshot object {expected} have sha256 {got}: not stored")

    def import_manifest(self, snapshot_id: str, manifest: object) -> None:
        """Record a manifest another store made. Refused unless its id is the hash of its file list, its
        paths are safe and every object it names is here (send the objects first)."""
        if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
            raise UserError("a snapshot manifest is an object with a 'files' list")
        files = manifest["files"]
        for item in files:
            if not isinstance(item, dict) or item.get("mode") not in ("644", "755") or not isinstance(item.get("size"), int):
                raise UserError(f"snapshot manifest entry {str(item)[:120]!r} is malformed")
            try:
                _safe_relpath(item.get("path"))
                _check_sha256(item.get("sha256"))
            except StoreError as exc:
                raise UserError(str(exc)) from exc
        sizes = self._sizes(sorted({item["sha256"] for item in files}))
        for item in files:
            if sizes.get(item["sha256"]) != item["size"]:
                raise UserError(f"snapshot object {item['sha256']} ({item['path']}) has not been sent: send it first")
        if _snapshot_id(files) != snapshot_id or manifest.get("snapshot_id") != snapshot_id:
            raise UserError(f"snapshot manifest {snapshot_id} does not match its file list")
        if self.storage.manifest_exists(snapshot_id):
            return
        self._write_manifest(snapshot_id, json.dumps(manifest, indent=1).encode("utf-8"))

    def open_object(self, sha256: object) -> tuple[BinaryIO, int]:
        """The bytes of object ``sha256``, streamed, and its size. :class:`StoreError` for anything but a
        sha256, :class:`NotFoundError` when the store does not hold it."""
        sha256 = _check_sha256(sha256)
        try:
            return self.storage.open_object(sha256)
        except FileNotFoundError:
            raise NotFoundError(f"snapshot object {sha256} is missing from {self.where}", sha256=sha256) from None
        except OSError as exc:
            raise StoreError(f"snapshot object {sha256} in {self.where} cannot be read: {exc}",
                             sha256=sha256) from exc

    def stats(self) -> SnapshotStoreStats:
        """How many snapshots and distinct file contents the store holds."""
        snapshots, objects, object_bytes = self.storage.counts()
        return SnapshotStoreStats(snapshots=snapshots, objects=objects, object_bytes=object_bytes)

    def object_path(self, sha256: object) -> Path:
        """Where the content with this sha256 is kept (the file may be missing); only for a store in a
        folder (:meth:`open_object` reads any store).

        Raises :class:`StoreError` for anything but a sha256: a damaged manifest never names a path.
        """
        checked = _check_sha256(sha256)
        if not isinstance(self.storage, FolderSnapshotStorage):
            raise StoreError(f"the snapshot objects of {self.where} are not files on this machine: read them with "
                             "open_object()", sha256=checked)
        return self.storage.object_path(checked)

    # -- internals ------------------------------------------------------------------------------------

    def _sizes(self, shas: Sequence[str]) -> dict[str, int | None]:
        try:
            return self.storage.object_sizes(shas)
        except OSError as exc:
            raise StoreError(f"cannot read the snapshot store {self.where}: {exc}") from exc

    def _put(self, source: IO[bytes], expected: str, only_expected: bool) -> tuple[str, int, bool]:
        try:
            return self.storage.store_object(source, expected, only_expected)
        except OSError as exc:
            raise StoreError(f"cannot write to the snapshot store {self.where}: {exc}", path=self.where) from exc

    def _write_manifest(self, snapshot_id: str, data: bytes) -> None:
        try:
            self.storage.write_manifest(snapshot_id, data)
        except OSError as exc:
            raise StoreError(f"cannot write to the snapshot store {self.where}: {exc}",
                             path=self.storage.manifest_location(snapshot_id)) from exc

    def _store_file(self, entry: _Entry) -> tuple[str, int, bool]:
        """Hash one source file and copy it into the store unless its content is there already."""
        try:
            with open(entry.abs_path, "rb") as source:
                sha256, size = _copy_hashing(source, None)
                if self._sizes([sha256]).get(sha256) == size:
                    return sha256, size, False
                source.seek(0)
                return self._put(source, sha256, only_expected=False)
        except OSError as exc:
            raise UserError(f"cannot read {entry.abs_path} for the snapshot: {exc.strerror}. Fix its "
                            f"permissions or add {entry.path} to .runlabignore.",
                            path=Path(entry.abs_path)) from exc
