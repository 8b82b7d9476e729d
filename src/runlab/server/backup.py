"""Back up and restore a workspace: its database and its files, with a manifest that proves them.

A backup is a folder::

    DEST/manifest.json           every file with its size and sha256, the database dump's too, the
                                 schema revision, the workspace's name and id, runlab's version
    DEST/database.sqlite         an SQLite store, copied with SQLite's online backup API (safe while
                                 runs write), or
    DEST/database.pgdump         a PostgreSQL store, dumped by ``pg_dump --format=custom``
    DEST/artifacts/...           the workspace folder's files (workspace.json, files/, journal/...)

Files are hard-linked into the backup when it is on the same file system (files are written
through a temp file and a rename, so a link keeps the bytes of the moment), except the files of
runs still active, which may be appended to in place: those are copied. Temp files
(``.runlab-tmp-*``, ``.upload-*``), agents' pid files and runs' working folders are left out.

:func:`restore` checks every sha256 of the manifest before it replaces anything, and refuses a
target that is not empty unless ``force``.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable

from runlab.core.errors import RunlabError
from runlab.core.status import ACTIVE_STATUSES
from runlab.store.folder import MARKER, WorkspaceFolder
from runlab.store.hosted import HostedWorkspace, check_store_url, redacted

__all__ = ["BACKUP_FORMAT", "BackupError", "BackupReport", "Progress", "RestoreReport", "backup", "find_pg_tool",
           "restore"]

BACKUP_FORMAT = 1
MANIFEST = "manifest.json"
ARTIFACTS = "artifacts"
SQLITE_DUMP = "database.sqlite"
PG_DUMP = "database.pgdump"
TEMP_PREFIXES = (".runlab-tmp-", ".upload-", ".runlab-restore-")
SKIPPED_TOP = frozenset({"agents", "work"})  # pid files and locks of live agents; runs' scratch folders
_CHUNK = 1 << 20

Progress = Callable[[str, int, int], None]
"""``progress(phase, done, total)``: phase is "database", "files" or "verify"; done and total count
files (the database is one)."""


class BackupError(RunlabError):
    """A backup or restore that cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class BackupReport:
    dest: Path
    database: str  # "sqlite" or "postgresql"
    schema_revision: str | None
    workspace_name: str
    workspace_id: str
    files: int
    bytes: int
    linked: int  # of ``files``, how many are hard links to the workspace's own
    bucket: str | None = None  # a server whose files are in S3: what the backup lists there (not copied)


@dataclass(frozen=True)
class RestoreReport:
    source: Path
    artifacts: Path
    store: str  # where the database went: a redacted URL, or the SQLite file
    database: str
    schema_revision: str | None
    workspace_name: str
    workspace_id: str
    files: int
    bytes: int


def _no_progress(_phase: str, _done: int, _total: int) -> None:
    return None


# -- helpers ------------------------------------------------------------------------------------------


def _is_temp(name: str) -> bool:
    return name.startswith(TEMP_PREFIXES)


def _non_empty(path: Path) -> bool:
    try:
        return any(p.name != "lost+found" for p in path.iterdir())
    except FileNotFoundError:
        return False
    except NotADirectoryError:
        return True


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _copy_hashing(src: BinaryIO, dest: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(dest, "wb") as out:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _disk_full(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


def find_pg_tool(name: str) -> str:
    """``pg_dump`` or ``pg_restore``: on PATH, else the newest under /usr/lib/postgresql/*/bin."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda p: [int(x) if x.isdigit() else 0 for x in Path(p).parts[-3].split(".")])
    if candidates:
        return candidates[-1]
    raise BackupError(f"{name} is not installed (it is needed to back up and restore a PostgreSQL store): "
                      "install it with `apt-get install postgresql-client` (the same major version as the server, "
                      "or newer)")


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """A libpq connection URI without the password, and the environment that carries it (PGPASSWORD:
    never on a command line, where other users can read it)."""
    import sqlalchemy as sa

    parsed = sa.engine.make_url(url)
    env = dict(os.environ)
    if parsed.password is not None:
        env["PGPASSWORD"] = str(parsed.password)
    plain = parsed.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _run_pg_tool(args: list[str], env: dict[str, str], doing: str) -> None:
    try:
        done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise BackupError(f"cannot run {args[0]} ({exc}): install it with `apt-get install postgresql-client`") from exc
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise BackupError(f"{doing} failed ({Path(args[0]).name} exited with {done.returncode}): "
                          + (" / ".join(detail[-5:]) or "no message"))


def _sqlite_path(url: str) -> Path:
    import sqlalchemy as sa

    database = sa.engine.make_url(url).database
    if not database or database == ":memory:":
        raise BackupError(f"the store {redacted(url)} is an in-memory SQLite database: there is nothing to back up")
    return Path(database)


def _sqlite_copy(src: Path, dest: Path) -> None:
    """``src`` into ``dest`` with SQLite's online backup API: a consistent copy while others write."""
    if not src.is_file():
        raise BackupError(f"the SQLite database {src} does not exist")
    source = sqlite3.connect(src, timeout=30)
    try:
        target = sqlite3.connect(dest)
        try:
            source.backup(target)
            target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        finally:
            target.close()
    finally:
        source.close()


def _revision(folder: WorkspaceFolder) -> str | None:
    from runlab.store.sql.migrate import current_revision

    return current_revision(folder.store.engine)


def _active_runs(folder: WorkspaceFolder) -> set[str]:
    """Runs that may still append to their files (their logs are written in place)."""
    import sqlalchemy as sa

    from runlab.store.sql import schema as t

    with folder.store.engine.connect() as conn:
        rows = conn.execute(sa.select(t.runs.c.run_id).where(t.runs.c.status.in_([s.value for s in ACTIVE_STATUSES])))
        return {str(r[0]) for r in rows}


def _version() -> str:
    from runlab import __version__

    return __version__


# -- backup -------------------------------------------------------------------------------------------


def _files_to_back_up(root: Path, skip: set[Path]) -> list[Path]:
    """The workspace folder's files (relative), without the database, temp files, links and live state."""
    found = []
    for dirpath, dirs, files in os.walk(root):
        here = Path(dirpath)
        if here == root:
            dirs[:] = [d for d in dirs if d not in SKIPPED_TOP]
        dirs[:] = sorted(d for d in dirs if not _is_temp(d) and not (here / d).is_symlink())
        for name in sorted(files):
            path = here / name
            if _is_temp(name) or path in skip or path.is_symlink() or not path.is_file():
                continue
            found.append(path.relative_to(root))
    return found


def backup(folder: WorkspaceFolder, dest: Path, *, progress: Progress | None = None,
           link: bool = True) -> BackupReport:
    """Back up the workspace in ``folder`` (embedded, or a :class:`HostedWorkspace`) into ``dest``,
    a new or empty folder. ``link=False`` copies every file instead of hard-linking."""
    report = progress or _no_progress
    dest = Path(dest).expanduser().absolute()
    if dest.exists() and (not dest.is_dir() or _non_empty(dest)):
        raise BackupError(f"the backup folder {dest} exists and is not empty: give a new or empty folder")
    created = not dest.exists()
    hosted = isinstance(folder, HostedWorkspace)
    url = folder.store_url if isinstance(folder, HostedWorkspace) else None
    kind = "postgresql" if url is not None and url.startswith("postgresql") else "sqlite"
    if kind == "postgresql":
        pg_dump = find_pg_tool("pg_dump")  # before anything is written: a clear error, no partial backup
    root = folder.path
    if dest == root or dest.is_relative_to(root):
        raise BackupError(f"the backup folder {dest} is inside the workspace folder {root}: give a folder outside it")
    db_file = _sqlite_path(url) if url is not None and kind == "sqlite" else (None if hosted else folder.db_path)
    skip: set[Path] = set()
    if db_file is not None:
        db_file = db_file.absolute()
        skip = {Path(str(db_file) + suffix) for suffix in ("", "-wal", "-shm", "-journal", ".migrate.lock")}
    try:
        dest.mkdir(parents=True, exist_ok=True)
        revision = _revision(folder)
        active = _active_runs(folder)

        # the database first: every file it refers to was written before it, so the files copied after it
        # are all there
        report("database", 0, 1)
        dump = dest / (PG_DUMP if kind == "postgresql" else SQLITE_DUMP)
        if kind == "postgresql":
            assert url is not None
            conninfo, env = _libpq(url)
            _run_pg_tool([pg_dump, "--format=custom", "--no-password", f"--file={dump}", f"--dbname={conninfo}"],
                         env, f"pg_dump of {redacted(url)}")
        else:
            assert db_file is not None
            _sqlite_copy(db_file, dump)
        database = {"kind": kind, "file": dump.name, "size": dump.stat().st_size, "sha256": _sha256_file(dump),
                    "schema_revision": revision}
        report("database", 1, 1)

        files = _files_to_back_up(root, skip)
        out_root = dest / ARTIFACTS
        out_root.mkdir()
        listed: list[dict[str, Any]] = []
        total_bytes = linked = 0
        can_link = link
        for i, rel in enumerate(files):
            src = root / rel
            out = out_root / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            parts = rel.parts
            live = len(parts) > 2 and parts[0] == "files" and parts[1] == "runs" and parts[2] in active
            try:
                if can_link and not live:
                    try:
                        os.link(src, out, follow_symlinks=False)
                        size, digest = out.stat().st_size, _sha256_file(out)
                        linked += 1
                    except OSError as exc:
                        if exc.errno in (errno.ENOENT,):
                            raise
                        if exc.errno in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                            can_link = False  # another file system (or one without links): copy from now on
                        elif _disk_full(exc):
                            raise
                        with open(src, "rb") as f:
                            size, digest = _copy_hashing(f, out)
                else:
                    with open(src, "rb") as f:
                        size, digest = _copy_hashing(f, out)
            except FileNotFoundError:  # deleted while we walked (a run deleted): not part of the backup
                out.unlink(missing_ok=True)
                continue
            listed.append({"path": rel.as_posix(), "size": size, "sha256": digest})
            total_bytes += size
            report("files", i + 1, len(files))

        manifest = {
            "format": BACKUP_FORMAT, "created_at": time.time(), "runlab_version": _version(),
            "workspace": {"name": folder.name, "id": folder.workspace_id, "hosted": hosted},
            "database": database, "files": listed,
        }
        bucket = _bucket_listing(folder)
        if bucket is not None:
            manifest["s3"] = bucket
        tmp = dest / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=1) + "\n")
        os.replace(tmp, dest / MANIFEST)
    except BaseException as exc:
        _remove_partial(dest, created)
        if isinstance(exc, OSError) and _disk_full(exc):
            raise BackupError(f"the disk of {dest} is full ({exc.strerror}): the partial backup was removed; "
                              "free some space or back up to another disk") from exc
        if isinstance(exc, OSError) and not isinstance(exc, RunlabError):
            raise BackupError(f"cannot write the backup into {dest}: {exc}; the partial backup was removed") from exc
        raise
    described = None
    if bucket is not None:
        described = (f"{bucket['objects']:,} objects ({bucket['bytes']:,} bytes) in {bucket['where']} are listed in the "
                     "manifest, not copied: back the bucket up with its own tools (versioning, replication, "
                     "`aws s3 sync`)")
    return BackupReport(dest=dest, database=kind, schema_revision=revision, workspace_name=folder.name,
                        workspace_id=folder.workspace_id, files=len(listed), bytes=total_bytes, linked=linked,
                        bucket=described)


def _bucket_listing(folder: WorkspaceFolder) -> dict[str, Any] | None:
    """A server whose files are in S3: every object there (name, size, ETag), for a later check."""
    s3 = getattr(folder, "_s3", None)
    if s3 is None:
        return None
    objects = s3.objects.list("")
    return {"where": s3.description, "url": s3.url, "endpoint_url": s3.endpoint_url, "objects": len(objects),
            "bytes": sum(o.size for o in objects),
            "listing": [{"name": o.name, "size": o.size, "etag": o.etag} for o in objects]}


def _remove_partial(dest: Path, created: bool) -> None:
    if created:
        shutil.rmtree(dest, ignore_errors=True)
        return
    for child in list(dest.iterdir()) if dest.is_dir() else []:
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


# -- restore ------------------------------------------------------------------------------------------


def _read_manifest(source: Path) -> dict[str, Any]:
    path = source / MANIFEST
    if not path.is_file():
        raise BackupError(f"{source} is not a runlab backup (it has no {MANIFEST})")
    try:
        manifest = json.loads(path.read_text())
        if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list) or \
                not isinstance(manifest.get("database"), dict) or not isinstance(manifest.get("workspace"), dict):
            raise ValueError("it lacks 'files', 'database' or 'workspace'")
    except ValueError as exc:
        raise BackupError(f"the backup's {path} is malformed ({exc}): the backup is damaged") from exc
    if manifest.get("format") != BACKUP_FORMAT:
        raise BackupError(f"the backup {source} has format {manifest.get('format')!r}; this runlab reads format "
                          f"{BACKUP_FORMAT}: restore it with the runlab version that made it "
                          f"({manifest.get('runlab_version', 'unknown')})")
    return manifest


def _safe_rel(name: object) -> Path:
    if not isinstance(name, str) or not name or name.startswith("/") or "\\" in name or "\x00" in name:
        raise BackupError(f"the backup's manifest lists a bad file name {name!r}: the backup is damaged")
    rel = Path(name)
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise BackupError(f"the backup's manifest lists a bad file name {name!r}: the backup is damaged")
    return rel


def _check_revision(revision: object) -> None:
    from runlab.store.sql.schema import SCHEMA_REVISION

    if revision is None or revision == SCHEMA_REVISION:
        return
    from alembic.script import ScriptDirectory

    from runlab.store.sql.migrate import alembic_config

    try:
        known = ScriptDirectory.from_config(alembic_config()).get_revision(str(revision))  # type: ignore[arg-type]
    except Exception:  # noqa: BLE001 - alembic raises several kinds for an unknown revision
        known = None
    if known is None:
        raise BackupError(f"the backup's schema revision {revision!r} is unknown to this runlab ({_version()}, schema "
                          f"{SCHEMA_REVISION}): it was made by a newer runlab; restore it with that version")


def _pg_has_tables(url: str) -> bool:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return bool(sa.inspect(conn).get_table_names())
    except sa.exc.SQLAlchemyError as exc:
        raise BackupError(f"cannot reach the store {redacted(url)}: {exc.__class__.__name__}: "
                          f"{str(exc).splitlines()[0]}") from exc
    finally:
        engine.dispose()


def restore(source: Path, *, store_url: str | None, artifacts: Path, force: bool = False,
            progress: Progress | None = None) -> RestoreReport:
    """Restore the backup in ``source``: its files into ``artifacts`` (the workspace folder of an
    embedded workspace, or a server's artifacts folder) and its database into ``store_url`` (None:
    ``artifacts/workspace.db``, an embedded workspace). Every sha256 is checked before anything is
    replaced; a target that is not empty is refused unless ``force``."""
    report = progress or _no_progress
    source = Path(source).expanduser().absolute()
    artifacts = Path(artifacts).expanduser().absolute()
    if source == artifacts or source.is_relative_to(artifacts) or artifacts.is_relative_to(source):
        raise BackupError(f"the backup {source} and the target {artifacts} overlap: restore into another folder")
    manifest = _read_manifest(source)
    database = manifest["database"]
    kind = database.get("kind")
    workspace = manifest["workspace"]
    if store_url is not None:
        check_store_url(store_url)
    # where the database goes
    if kind == "postgresql":
        if store_url is None or not store_url.startswith("postgresql"):
            raise BackupError("this backup holds a PostgreSQL store: give --store postgresql+psycopg://user@host:port/db "
                              "(an existing database; its runlab tables are replaced)")
    elif kind == "sqlite":
        if store_url is not None and not store_url.startswith("sqlite:"):
            raise BackupError("this backup holds an SQLite store: give --store sqlite:////absolute/path/workspace.db, "
                              "or no --store to restore an embedded workspace folder")
    else:
        raise BackupError(f"the backup's database kind {kind!r} is unknown: the backup is damaged")
    db_target = (artifacts / "workspace.db") if store_url is None else (
        _sqlite_path(store_url).absolute() if kind == "sqlite" else None)
    _check_revision(database.get("schema_revision"))

    # refuse a target with something in it, before any work
    if not force:
        if artifacts.exists() and _non_empty(artifacts):
            raise BackupError(f"{artifacts} exists and is not empty: restore into a new or empty folder, "
                              "or pass --force to replace what it holds")
        if db_target is not None and not db_target.is_relative_to(artifacts) and db_target.exists() \
                and db_target.stat().st_size > 0:
            raise BackupError(f"the store {db_target} exists: give a new one, or pass --force to replace it")
        if kind == "postgresql" and store_url is not None and _pg_has_tables(store_url):
            raise BackupError(f"the store {redacted(store_url)} is not empty: give an empty database, or pass --force "
                              "to replace its tables")
    elif artifacts.exists() and not artifacts.is_dir():
        raise BackupError(f"--artifacts {artifacts} is a file, not a folder")

    # verify the database dump
    dump = source / str(database.get("file", ""))
    entries = manifest["files"]
    total = len(entries) + 1
    report("verify", 0, total)
    if not dump.is_file() or dump.name not in (SQLITE_DUMP, PG_DUMP):
        raise BackupError(f"the backup's database file {dump} is missing: the backup is incomplete")
    if _sha256_file(dump) != database.get("sha256"):
        raise BackupError(f"the backup's database file {dump} does not match its sha256 in the manifest: "
                          "the backup is damaged; nothing was restored")
    report("verify", 1, total)

    # copy the files into a staging folder inside the target (same file system), checking each sha256
    artifacts.mkdir(parents=True, exist_ok=True)
    staging = artifacts / f".runlab-restore-{uuid.uuid4().hex}"
    staging.mkdir()
    total_bytes = 0
    try:
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise BackupError("the backup's manifest has a bad file entry: the backup is damaged")
            rel = _safe_rel(entry.get("path"))
            src = source / ARTIFACTS / rel
            out = staging / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            try:
                with open(src, "rb") as f:
                    size, digest = _copy_hashing(f, out)
            except FileNotFoundError as exc:
                raise BackupError(f"the backup lacks {rel.as_posix()}, which its manifest lists: the backup is "
                                  "incomplete; nothing was restored") from exc
            if size != entry.get("size") or digest != entry.get("sha256"):
                raise BackupError(f"the backup's file {rel.as_posix()} does not match its sha256 in the manifest: "
                                  "the backup is damaged; nothing was restored")
            total_bytes += size
            report("verify", i + 2, total)
        if not (staging / MARKER).is_file():
            raise BackupError(f"the backup has no {MARKER}: it is incomplete; nothing was restored")
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError) and _disk_full(exc):
            raise BackupError(f"the disk of {artifacts} is full ({exc.strerror}): nothing was restored") from exc
        raise

    # replace: the target's old entries go, the staged ones move in, then the database
    report("database", 0, 1)
    for child in list(artifacts.iterdir()):
        if child == staging or child.name == "lost+found":
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    for child in list(staging.iterdir()):
        os.replace(child, artifacts / child.name)
    staging.rmdir()
    for name in SKIPPED_TOP:  # an embedded folder has them; empty ones cost nothing
        (artifacts / name).mkdir(exist_ok=True)

    if kind == "postgresql":
        assert store_url is not None
        conninfo, env = _libpq(store_url)
        _run_pg_tool([find_pg_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--no-password",
                      "--exit-on-error", f"--dbname={conninfo}", str(dump)], env, f"pg_restore into {redacted(store_url)}")
        where = redacted(store_url)
    else:
        assert db_target is not None
        db_target.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("-wal", "-shm", "-journal"):
            Path(str(db_target) + suffix).unlink(missing_ok=True)
        tmp = db_target.with_name(f".runlab-tmp-{uuid.uuid4().hex}.db")
        try:
            _sqlite_copy(dump, tmp)
            os.replace(tmp, db_target)
        finally:
            tmp.unlink(missing_ok=True)
        where = str(db_target)
    report("database", 1, 1)
    return RestoreReport(source=source, artifacts=artifacts, store=where, database=str(kind),
                         schema_revision=database.get("schema_revision"), workspace_name=str(workspace.get("name")),
                         workspace_id=str(workspace.get("id")), files=len(entries), bytes=total_bytes)

