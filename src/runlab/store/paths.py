"""Relative names inside a folder or a bucket, and links that lead out of a folder: checked in one place.

Run files (:mod:`runlab.store.artifacts`), object stores (:mod:`runlab.store.objects`) and datastore
transfers (:mod:`runlab.store.transfer`) name files by POSIX paths relative to a root (``outputs/model.pt``,
``datasets/cifar10/data_batch_1``). :func:`check_relative_name` refuses what could leave the root or
that no file system can hold: ``..``, a leading ``/``, a NUL, text that cannot be encoded, a part over
255 bytes. :func:`leads_out` says whether a checked name is reached through a symbolic link whose
target is outside the root, so that callers never read or write through such a link.
"""

from __future__ import annotations

import itertools
import os
import stat
from pathlib import PurePosixPath

from runlab.core.errors import InvalidNameError
from runlab.core.names import shown

MAX_NAME_PART_BYTES = 255  # a file name's limit on Linux and macOS


def check_relative_name(
    name: object,
    what: str = "run file name",
    inside: str = "the run",
    example: str = "for example 'outputs/model.pt'",
) -> str:
    """``name`` as stored (``/`` separators, no ``.`` parts), or :class:`InvalidNameError` saying why.

    ``what`` names the thing in messages ("run file name", "datastore path"), ``inside`` the root it
    must stay in ("the run", "datastore 'x'"), ``example`` is a valid name to suggest.
    """
    if isinstance(name, str) and _is_plain(name):
        return name  # the common case, decided without building a path: an upload names 10,000 files
    if not isinstance(name, str) or not name:
        raise InvalidNameError(f"a {what} must be a non-empty str, got {shown(name)}: {example}", name=name)
    if "\x00" in name:
        raise InvalidNameError(f"{what} {shown(name)} holds a NUL character, which no file name can hold: "
                               f"{example}", name=name)
    try:
        os.fsencode(name)
    except UnicodeEncodeError as exc:
        raise InvalidNameError(f"{what} {shown(name)} cannot be encoded as a file name ({exc.reason}): "
                               f"use text, {example}", name=name) from exc
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or ".." in posix.parts:
        raise InvalidNameError(
            f"{what} {shown(name)} must be relative and stay inside {inside} (no leading '/', no '..'): "
            f"{example}", name=name)
    if not posix.parts:
        raise InvalidNameError(f"{what} {shown(name)} names no file: use a non-empty relative name, {example}",
                               name=name)
    for part in posix.parts:
        size = len(os.fsencode(part))
        if size > MAX_NAME_PART_BYTES:
            raise InvalidNameError(
                f"{what} {shown(name)} has a part of {size:,} bytes ({shown(part)}): each part between "
                f"'/' may have at most {MAX_NAME_PART_BYTES} bytes", name=name)
    return str(posix)


def _is_plain(name: str) -> bool:
    """True for an ASCII name already in its stored form: relative, no empty, ``.`` or ``..`` part, no
    backslash or NUL, no part over the limit (ASCII: one byte per character)."""
    if not name or not name.isascii() or "\x00" in name or "\\" in name or name[0] == "/" or name[-1] == "/":
        return False
    for part in name.split("/"):
        if not part or part == "." or part == ".." or len(part) > MAX_NAME_PART_BYTES:
            return False
    return True


def leads_out(base: str, rel: str = "") -> bool:
    """True when ``rel`` (a checked relative name; "": ``base`` itself) is reached from folder ``base``
    (whose parent is a real path) through a link whose target is not under ``base``.

    One ``lstat`` per part of the name; the whole name is resolved only when a part is a link.
    """
    for path in itertools.accumulate(rel.split("/") if rel else [], os.path.join, initial=base):
        try:
            is_link = stat.S_ISLNK(os.lstat(path).st_mode)
        except OSError:
            return False  # not there (yet): nothing below it is a link; the caller's own call says why
        if is_link:  # rare: resolve the whole name once
            real = os.path.realpath(os.path.join(base, rel) if rel else base)
            return real != base and not real.startswith(base + os.sep)
    return False


def folder_files(root: str | os.PathLike[str]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The regular files under folder ``root`` to upload as a run's files: ``(name, path)`` pairs, the name
    relative to ``root`` with ``/`` separators, in name order; and the links under it that lead outside it,
    as ``(name, target)``. One rule for every folder a run uploads (``Run.upload_folder``, the agent's
    ``./outputs``, a Ray node's): a link to a file inside ``root`` is that file; a link whose target is
    outside ``root`` (a file or a folder) is never followed, so an ``outputs/data -> /mnt/datasets`` does
    not copy a dataset, nor ``outputs/key -> ~/.ssh/id_rsa`` a secret; links to folders inside are not
    walked (their files are listed under their own paths), broken links and special files are left out.
    ``OSError`` when ``root`` cannot be read."""
    base = os.path.abspath(os.fspath(root))
    real_root = os.path.realpath(base)
    files: list[tuple[str, str]] = []
    outside: list[tuple[str, str]] = []

    def walk(folder: str, rel_dir: str) -> None:
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                if entry.is_symlink():
                    real = os.path.realpath(entry.path)
                    if not os.path.exists(real):
                        continue  # broken: nothing to upload, wherever it pointed
                    if real != real_root and not real.startswith(real_root + os.sep):
                        outside.append((rel, real))
                    elif entry.is_file():  # follows the link: a file inside root
                        files.append((rel, entry.path))
                elif entry.is_dir(follow_symlinks=False):
                    walk(entry.path, rel)
                elif entry.is_file(follow_symlinks=False):
                    files.append((rel, entry.path))
            except OSError:
                continue  # gone while it was listed

    walk(base, "")
    return files, outside
