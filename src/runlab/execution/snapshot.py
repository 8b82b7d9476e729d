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
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import IO, Any, Callable, NamedTuple, Union

import pathspec

from runlab.core.errors import NotFoundError, StoreError, UserError

__all__ = [
    "DEFAULT_IGNORE_PATTERNS",
    "DEFAULT_SNAPSHOT_MAX_BYTES",
    "DEFAULT_SNAPSHOT_MAX_FILES",
    "IGNORE_FILE_NAMES",
    "FolderUsage",
    "GitInfo",
    "Snapshot",
    "SnapshotLimits",
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
    manifest_path: Path
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


def _copy_hashing(source: io.BufferedIOBase, target: IO[bytes] | None) -> tuple[str, int]:
    digest = hashlib.sha256()
    buffer = bytearray(_BLOCK_SIZE)
    view = memoryview(buffer)
    size = 0
    while True:
        read = source.readinto(buffer)
        if not read:
            break
        digest.update(view[:read])
        if target is not None:
            target.write(view[:read])
        size += read
    return digest.hexdigest(), size


def _has_size(path: Path, size: int) -> bool:
    try:
        return path.stat().st_size == size
    except OSError:
        return False


def _has_any(path: Path) -> bool:
    try:
        return path.is_file()
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


class SnapshotStore:
    """Snapshots kept under ``root`` (the workspace's files area); see the module docstring."""

    def __init__(self, root: PathLike) -> None:
        self.root = Path(root)
        self._objects = self.root / "objects"
        self._manifests = self.root / "manifests"

    def __repr__(self) -> str:
        return f"SnapshotStore({str(self.root)!r})"

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
        manifest_path = self._manifests / f"{snapshot_id}.json"
        if not manifest_path.exists():  # the same tree was snapshotted before: keep its first manifest
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
            data = json.dumps(manifest, indent=1).encode("utf-8")
            try:
                self._write_atomic(manifest_path, lambda out: out.write(data), mode=0o644)
            except OSError as exc:
                raise StoreError(f"cannot write to the snapshot store {self.root}: {exc}",
                                 path=manifest_path) from exc
        return Snapshot(snapshot_id=snapshot_id, source_dir=scan.root, file_count=len(entries),
                        total_bytes=total_bytes, git=git, manifest_path=manifest_path,
                        skipped=tuple(path for path, _ in scan.skipped),
                        skipped_reasons=tuple(reason for _, reason in scan.skipped), new_files=new_files,
                        new_bytes=new_bytes)

    def manifest(self, snapshot_id: str) -> dict[str, Any]:
        """The manifest of a snapshot, as written (see the module docstring).

        Raises :class:`NotFoundError` for an unknown id, :class:`StoreError` for an unreadable manifest.
        """
        path = self._manifests / f"{snapshot_id}.json"
        if not isinstance(snapshot_id, str) or not _SHA256_RE.fullmatch(snapshot_id) or not path.is_file():
            raise NotFoundError(f"snapshot {snapshot_id!r} not found in {self.root}: snapshot ids are "
                                "the 64-character ids that take() returns", snapshot_id=snapshot_id)
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
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
        Returns the paths written, in manifest order.

        Raises :class:`NotFoundError` for an unknown id, :class:`StoreError` when the snapshot is
        damaged or ``dest`` cannot be written.
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
            obj = self._object_path(sha256)
            target = dest_root.joinpath(*rel.parts)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                with open(obj, "rb") as source:
                    self._write_atomic(target, lambda out: shutil.copyfileobj(source, out, _BLOCK_SIZE),
                                       mode=0o755 if item.get("mode") == "755" else 0o644, sync=False)
            except FileNotFoundError as exc:
                if not obj.exists():
                    raise StoreError(f"snapshot {snapshot_id} is damaged: the content of {rel} "
                                     f"({sha256}) is missing from {self._objects}",
                                     snapshot_id=snapshot_id, path=str(rel)) from exc
                raise StoreError(f"cannot restore {rel} of snapshot {snapshot_id} to {target}: {exc}",
                                 snapshot_id=snapshot_id, path=target) from exc
            except OSError as exc:
                raise StoreError(f"cannot restore {rel} of snapshot {snapshot_id} to {target}: {exc}",
                                 snapshot_id=snapshot_id, path=target) from exc
            written.append(target)
        return written

    # -- between stores (a client and runlab server) --------------------------------------------

    def has_object(self, sha256: str) -> bool:
        return _has_any(self.object_path(sha256))

    def import_object(self, source: io.BufferedIOBase, sha256: str) -> None:
        """Store the bytes of ``source`` as object ``sha256``; :class:`UserError` when they are not those bytes."""
        self.object_path(sha256)  # StoreError for anything but a sha256
        expected = sha256
        try:
            got, _size, _new = self._copy_object(source, expected)
        except OSError as exc:
            raise StoreError(f"cannot write to the snapshot store {self.root}: {exc}", path=self.root) from exc
        if got != expected:
            with suppress(OSError):
                os.unlink(self._object_path(got))
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
                obj = self.object_path(item.get("sha256"))
            except StoreError as exc:
                raise UserError(str(exc)) from exc
            if not _has_size(obj, item["size"]):
                raise UserError(f"snapshot object {item['sha256']} ({item['path']}) has not been sent: send it first")
        if _snapshot_id(files) != snapshot_id or manifest.get("snapshot_id") != snapshot_id:
            raise UserError(f"snapshot manifest {snapshot_id} does not match its file list")
        path = self._manifests / f"{snapshot_id}.json"
        if path.exists():
            return
        data = json.dumps(manifest, indent=1).encode("utf-8")
        try:
            self._write_atomic(path, lambda out: out.write(data), mode=0o644)
        except OSError as exc:
            raise StoreError(f"cannot write to the snapshot store {self.root}: {exc}", path=path) from exc

    def stats(self) -> SnapshotStoreStats:
        """How many snapshots and distinct file contents the store holds."""
        snapshots = sum(1 for p in self._manifests.glob("*.json")) if self._manifests.is_dir() else 0
        objects = object_bytes = 0
        if self._objects.is_dir():
            for folder in self._objects.iterdir():
                for obj in folder.iterdir():
                    if not obj.name.startswith(_TEMP_PREFIX):
                        objects += 1
                        object_bytes += obj.stat().st_size
        return SnapshotStoreStats(snapshots=snapshots, objects=objects, object_bytes=object_bytes)

    def object_path(self, sha256: object) -> Path:
        """Where the content with this sha256 is kept (the file may be missing).

        Raises :class:`StoreError` for anything but a sha256: a damaged manifest never names a path.
        """
        if not isinstance(sha256, str) or not _SHA256_RE.fullmatch(sha256):
            raise StoreError(f"{str(sha256)[:80]!r} is not a sha256: the snapshot manifest that names it is damaged",
                             sha256=sha256)
        return self._object_path(sha256)

    # -- internals ------------------------------------------------------------------------------------

    def _object_path(self, sha256: str) -> Path:
        return self._objects / sha256[:2] / sha256[2:]

    def _store_file(self, entry: _Entry) -> tuple[str, int, bool]:
        """Hash one source file and copy it into the store unless its content is there already."""
        try:
            with open(entry.abs_path, "rb") as source:
                sha256, size = _copy_hashing(source, None)
                if _has_size(self._object_path(sha256), size):
                    return sha256, size, False
                source.seek(0)
                try:
                    return self._copy_object(source, sha256)
                except OSError as exc:
                    raise StoreError(f"cannot write to the snapshot store {self.root}: {exc}",
                                     path=self.root) from exc
        except OSError as exc:
            raise UserError(f"cannot read {entry.abs_path} for the snapshot: {exc.strerror}. Fix its "
                            f"permissions or add {entry.path} to .runlabignore.",
                            path=Path(entry.abs_path)) from exc

    def _copy_object(self, source: io.BufferedIOBase, expected: str) -> tuple[str, int, bool]:
        folder = self._object_path(expected).parent
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
            final = self._object_path(sha256)
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

    def _write_atomic(self, path: Path, write: Callable[[IO[bytes]], object], mode: int,
                      sync: bool = True) -> None:
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
