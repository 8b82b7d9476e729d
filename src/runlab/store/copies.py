"""Copies of a dataset's files on this machine: a download, a mount's folder, the files a table is read from.

:func:`fetch_files` copies resolved files (:func:`runlab.store.datasets.resolve_files`, or the files a
registered version recorded) to ``<root>/<name in the dataset>``, a few at once: datastore files through
their object store's ``get`` (which hashes what it writes), files of this machine with the local store's
kernel copy and hash. Each file is written under a temporary name, checked against its recorded size
and sha256 when asked (a registered version's bytes must be the ones it recorded:
:class:`~runlab.core.errors.DatasetChangedError` otherwise) and renamed, so that an interrupted or
refused copy leaves nothing under the file's name. :func:`local_paths` gives a path to read for each
file: its own where it lies on this machine, else a copy.
"""

from __future__ import annotations

import os
import stat
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from runlab.core.assets import DatasetFile
from runlab.core.errors import DatasetChangedError, DatasetPathError, ObjectNotFoundError, UserError
from runlab.store.datasets import OpenDatastore, describe_file, local_path
from runlab.store.objects.local import copy_and_hash, write_local_file

DOWNLOAD_THREADS = 8


def fetch_files(files: Sequence[DatasetFile], opener: OpenDatastore | None, root: Path, *, overwrite: bool,
                verify: bool, read_only: bool = False) -> list[Path]:
    """Copy ``files`` to ``root/<name>``, a few at once. Each is written under a temporary name, checked
    (``verify``: against its recorded size and sha256) and renamed, so that an interrupted or refused
    copy leaves no file under the final name."""
    targets = [root / f.name for f in files]
    if not overwrite:
        existing = [str(t) for t in targets if t.exists()]
        if existing:
            shown_files = ", ".join(existing[:3]) + (f" and {len(existing) - 3} more" if len(existing) > 3 else "")
            raise UserError(f"{shown_files} already exist{'s' if len(existing) == 1 else ''}: pass overwrite=True "
                            "or choose another target_path", path=existing)
    root.mkdir(parents=True, exist_ok=True)

    def fetch(pair: tuple[DatasetFile, Path]) -> Path:
        file, target = pair
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".runlab-download-{uuid.uuid4().hex}"
        try:
            try:
                size, digest = copy_file_to(file, opener, tmp)
            except (ObjectNotFoundError, DatasetPathError) as exc:
                if not verify:
                    raise
                raise DatasetChangedError(f"{describe_file(file)} is gone since its dataset version was registered: "
                                          "register the data as it is now with create_new_version=True",
                                          path=file.path) from exc
            if verify and (size != file.size or (file.sha256 is not None and digest != file.sha256)):
                why = f"{size:,} bytes, {file.size:,} recorded" if size != file.size else "its sha256 differs"
                raise DatasetChangedError(f"{describe_file(file)} changed since its dataset version was "
                                          f"registered ({why}): register the data as it is now with "
                                          "create_new_version=True", path=file.path)
            if read_only:
                tmp.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return target

    if not files:
        return []
    with ThreadPoolExecutor(max_workers=min(DOWNLOAD_THREADS, len(files))) as pool:
        return list(pool.map(fetch, zip(files, targets)))


def copy_file_to(file: DatasetFile, opener: OpenDatastore | None, dest: Path) -> tuple[int, str]:
    """Write ``file``'s bytes to ``dest``: (size, sha256) of what was written."""
    if file.datastore is not None:
        if opener is None:
            raise UserError(f"{describe_file(file)} is on a datastore, and this dataset has no workspace")
        info = opener(file.datastore).get(file.path, dest)
        return info.size, info.sha256 or ""
    try:
        src = os.open(file.path, os.O_RDONLY)
    except OSError as exc:
        raise DatasetPathError(f"cannot read {file.path}: {exc.strerror or exc}", path=file.path) from exc
    try:
        size = os.fstat(src).st_size
        return write_local_file(dest, lambda fd: copy_and_hash(src, fd, size))
    finally:
        os.close(src)


def local_paths(files: Sequence[DatasetFile], opener: OpenDatastore | None, scratch: Path) -> list[Path]:
    """A path on this machine for each file: its own for local files and folder datastores, else a
    copy in ``scratch`` (fetched in parallel)."""
    paths: list[Path | None] = [local_path(f, opener) for f in files]
    missing = [i for i, p in enumerate(paths) if p is None]
    if missing:
        copies = fetch_files([replace(files[i], name=f"{n:06d}") for n, i in enumerate(missing)], opener, scratch,
                             overwrite=True, verify=False)
        for i, path in zip(missing, copies):
            paths[i] = path
    return [p for p in paths if p is not None]
