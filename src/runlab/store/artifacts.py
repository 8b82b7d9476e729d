"""Run files (outputs, logs, images, uploads): the artifact store interface and a local folder.

An S3-compatible implementation for server mode has the same methods. Names are POSIX paths
relative to the run (``outputs/model.pt``); ``..`` and absolute names are refused.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol

from runlab.core.errors import FileNotFoundInRunError, StoreUnavailableError, UserError


def check_file_name(name: str) -> str:
    if not isinstance(name, str) or not name:
        raise UserError(f"a run file name must be a non-empty str, got {name!r}")
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or ".." in posix.parts:
        raise UserError(
            f"run file name {name!r} must be relative and stay inside the run (no leading '/', no '..'): "
            "for example 'outputs/model.pt'"
        )
    return str(posix)


class ArtifactStore(Protocol):
    def put_file(self, run_id: str, name: str, source: Path) -> None: ...
    def put_stream(self, run_id: str, name: str, stream: BinaryIO) -> None: ...
    def put_bytes(self, run_id: str, name: str, data: bytes) -> None: ...
    def append_bytes(self, run_id: str, name: str, data: bytes) -> None: ...
    def list(self, run_id: str, prefix: str = "") -> list[str]: ...
    def size(self, run_id: str, name: str) -> int: ...
    def open(self, run_id: str, name: str) -> BinaryIO: ...
    def get_to_path(self, run_id: str, name: str, dest: Path) -> Path: ...


class LocalArtifactStore:
    """Files under ``<root>/<run_id>/<name>``; writes go through a temp file and a rename."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, run_id: str, name: str) -> Path:
        return self.root / run_id / check_file_name(name)

    def _write(self, run_id: str, name: str, fill: "object") -> None:
        dest = self._path(run_id, name)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".upload-")
            try:
                with os.fdopen(fd, "wb") as out:
                    fill(out)  # type: ignore[operator]
                os.replace(tmp, dest)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise StoreUnavailableError(f"cannot write run file {name!r} of run {run_id}: {exc}") from exc

    def local_path(self, run_id: str, name: str) -> Path:
        """Where the file lives on this machine (the agent appends live logs there)."""
        path = self._path(run_id, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def put_file(self, run_id: str, name: str, source: Path) -> None:
        with open(source, "rb") as src:
            self._write(run_id, name, lambda out: shutil.copyfileobj(src, out, 1 << 20))

    def put_stream(self, run_id: str, name: str, stream: BinaryIO) -> None:
        self._write(run_id, name, lambda out: shutil.copyfileobj(stream, out, 1 << 20))

    def put_bytes(self, run_id: str, name: str, data: bytes) -> None:
        self._write(run_id, name, lambda out: out.write(data))

    def append_bytes(self, run_id: str, name: str, data: bytes) -> None:
        dest = self._path(run_id, name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(dest, "ab") as out:
            out.write(data)

    def list(self, run_id: str, prefix: str = "") -> list[str]:
        base = self.root / run_id
        if not base.is_dir():
            return []
        names = []
        for dirpath, _dirs, files in os.walk(base):
            for file in files:
                if file.startswith(".upload-"):
                    continue
                rel = Path(dirpath, file).relative_to(base).as_posix()
                if rel.startswith(prefix):
                    names.append(rel)
        return sorted(names)

    def size(self, run_id: str, name: str) -> int:
        path = self._path(run_id, name)
        if not path.is_file():
            raise FileNotFoundInRunError(f"run {run_id} has no file {name!r}", run_id=run_id, name=name)
        return path.stat().st_size

    def open(self, run_id: str, name: str) -> BinaryIO:
        path = self._path(run_id, name)
        if not path.is_file():
            raise FileNotFoundInRunError(
                f"run {run_id} has no file {name!r}: see run.get_file_names()", run_id=run_id, name=name
            )
        return open(path, "rb")

    def get_to_path(self, run_id: str, name: str, dest: Path) -> Path:
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with self.open(run_id, name) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        return dest
