"""Run files (outputs, logs, images, uploads) and the run's source snapshot: list and download."""

from __future__ import annotations

import mimetypes
from pathlib import PurePosixPath
from typing import Annotated, Any, BinaryIO, Iterator
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import StreamingResponse
from pydantic import AfterValidator
from starlette.convertors import Convertor, register_url_convertor

from runlab.core.errors import FileNotFoundInRunError, NotFoundError, RunlabError
from runlab.core.layout import LOG_PREFIXES
from runlab.execution.snapshot import SnapshotStore
from runlab.server import models, views
from runlab.server.state import StudioState, get_state
from runlab.store.artifacts import check_file_name, open_with_size


def no_nul(value: Any) -> Any:
    """``value`` (a str, or None) unless it holds a NUL character, which PostgreSQL stores in no text
    (SQLite would): refused on every store alike, as a 422 that says so."""
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("holds a NUL character (\\x00), which no name, id or value can hold: remove it")
    return value


class _AnyPath(Convertor[str]):
    """Starlette's ``path`` (any characters, ``/`` too) that also matches a newline: a script may name
    a file ``a\nb.txt``, and the listing that shows it must lead to it."""

    regex = "(?s:.*)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("anypath", _AnyPath())

router = APIRouter(tags=["files"], responses=models.ERROR_RESPONSES)
State = Annotated[StudioState, Depends(get_state)]
RunId = Annotated[str, Path(min_length=1, max_length=320, description="the run's id"), AfterValidator(no_nul)]
FileName = Annotated[str, Path(min_length=1, max_length=1024, description="the file's name in the run, "
                               "for example outputs/model.pkl")]
Download = Annotated[bool, Query(description="ask the browser to save the file instead of showing it")]

TEXT_SUFFIXES = {".log", ".txt", ".out", ".err", ".py", ".yaml", ".yml", ".toml", ".cfg", ".ini", ".md", ".sh",
                 ".csv", ".tsv", ".json", ".jsonl", ".ipynb", ".r", ".sql", ".rst", ".env"}
BLOCK = 1 << 16
# run files are user content: never let a page among them script the studio's origin
FILE_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"}


def content_type_of(name: str) -> str:
    """The content type to serve a file with: text types carry charset=utf-8; logs are text."""
    suffix = PurePosixPath(name).suffix.lower()
    guessed, _ = mimetypes.guess_type(name)
    if suffix == ".json":
        return "application/json"
    if suffix in TEXT_SUFFIXES or name.startswith(LOG_PREFIXES) and not guessed:
        return "text/plain; charset=utf-8" if suffix not in (".csv",) else "text/csv; charset=utf-8"
    if guessed is None:
        return "application/octet-stream"
    if guessed.startswith("text/"):
        return f"{guessed}; charset=utf-8"
    return guessed


def _iterate(stream: BinaryIO, length: int | None = None) -> Iterator[bytes]:
    """The stream's bytes, at most ``length`` of them: a response declares its Content-Length from a
    size read before, and a log that grew meanwhile (appended to, or a part added in S3) must not send
    more than declared (h11 refuses it, and the client sees a broken response)."""
    try:
        left = length
        while left is None or left > 0:
            block = stream.read(BLOCK if left is None else min(BLOCK, left))
            if not block:
                break
            if left is not None:
                left -= len(block)
            yield block
    finally:
        stream.close()


def _file_response(stream: BinaryIO, name: str, size: int, download: bool) -> StreamingResponse:
    base = PurePosixPath(name).name or "file"
    disposition = "attachment" if download else "inline"
    headers = {
        **FILE_HEADERS,
        "Content-Length": str(size),
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(base)}",
    }
    return StreamingResponse(_iterate(stream, size), media_type=content_type_of(name), headers=headers)


FILE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"description": "the file's bytes, with its content type", "content": {"application/octet-stream": {}}},
}


@router.get("/runs/{run_id}/files", response_model=list[models.FileInfo], summary="A run's files")
def list_files(
    state: State,
    run_id: RunId,
    prefix: Annotated[str, Query(max_length=1024, description="only names that start with this")] = "",
) -> list[models.FileInfo]:
    state.store.get_run(run_id)  # 404 for an unknown run
    return [models.FileInfo(name=name, size=size, content_type=content_type_of(name))
            for name, size in files_with_sizes(state, run_id, prefix)]


def shown_name(name: str) -> str:
    """``name`` as an answer can carry it: a local file whose name is not UTF-8 (a script wrote raw
    bytes) is listed by os.walk with surrogates, which no JSON, header or zip can hold; such bytes
    are shown as U+FFFD."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def files_with_sizes(state: StudioState, run_id: str, prefix: str = "") -> list[tuple[str, int]]:
    """(name, size) of the run's files under ``prefix`` (names as :func:`shown_name` shows them); a
    file removed while listed is left out."""
    out = []
    for name in state.artifacts.list(run_id, prefix):
        try:
            out.append((shown_name(name), state.artifacts.size(run_id, name)))
        except FileNotFoundInRunError:
            continue
    return out


MaxBytes = Annotated[int | None, Query(ge=1, le=1 << 30, description="only the file's first bytes (a preview)")]


@router.get("/runs/{run_id}/files/{name:anypath}", summary="Download a run file", response_class=StreamingResponse,
            responses=FILE_RESPONSE)
def download_file(state: State, run_id: RunId, name: FileName, download: Download = False,
                  max_bytes: MaxBytes = None) -> StreamingResponse:
    state.store.get_run(run_id)
    name = check_file_name(name)
    stream, size = open_with_size(state.artifacts, run_id, name)
    if max_bytes is not None:
        size = min(size, max_bytes)
    return _file_response(stream, name, size, download)


ZIP_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"description": "a zip of the files", "content": {"application/zip": {}}},
}


@router.get("/runs/{run_id}/zip", summary="Download a folder of a run's files as a zip", response_class=StreamingResponse,
            responses=ZIP_RESPONSE)
def download_zip(
    state: State,
    run_id: RunId,
    folder: Annotated[str, Query(max_length=1024, description="a folder of the run's files (outputs, logs/x); "
                                 "empty: all of them")] = "",
) -> StreamingResponse:
    """The run's files under ``folder`` as one zip, streamed as it is made (never held whole), names as in
    the run (``outputs/model.pt``)."""
    state.store.get_run(run_id)
    prefix = check_file_name(folder.strip("/")) + "/" if folder.strip("/") else ""
    names = state.artifacts.list(run_id, prefix)
    if not names:
        raise NotFoundError(f"run {run_id} has no files under {folder!r}: see its Files tab or run.get_file_names()",
                            run_id=run_id, folder=folder)
    label = (prefix.rstrip("/").replace("/", "-") or "files")
    filename = f"{run_id}-{label}.zip"
    headers = {**FILE_HEADERS, "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}"}
    return StreamingResponse(_zip_of(state, run_id, names), media_type="application/zip", headers=headers)


class _Sink:
    """What zipfile writes, kept until the response takes it (zipfile writes data descriptors to a stream it
    cannot seek, so the archive is made in one pass)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.written = 0

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        self.written += len(data)
        return len(data)

    def tell(self) -> int:
        return self.written

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data, self.chunks = b"".join(self.chunks), []
        return data


def _zip_of(state: StudioState, run_id: str, names: list[str]) -> Iterator[bytes]:
    import zipfile

    sink = _Sink()
    skipped: list[str] = []
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:  # type: ignore[call-overload]
        for name in names:
            try:
                src = state.artifacts.open(run_id, name)
            except FileNotFoundInRunError:
                continue  # removed while the archive was made
            except RunlabError as exc:  # unreadable (permissions, a broken store): said in the archive
                skipped.append(f"{shown_name(name)}: {exc.message}")
                continue
            with src, archive.open(zipfile.ZipInfo(shown_name(name)), "w", force_zip64=True) as dst:
                while block := src.read(BLOCK * 16):  # a file that grows meanwhile is read to its end then
                    dst.write(block)
                    if sink.written and len(sink.chunks) > 16:
                        yield sink.take()
            yield sink.take()
        if skipped:
            archive.writestr(SKIPPED_NAME, "files of the run left out of this archive:\n" + "\n".join(skipped) + "\n")
    yield sink.take()


SKIPPED_NAME = "runlab-skipped-files.txt"


# -- snapshot -------------------------------------------------------------------------------------


def _snapshot(state: StudioState, run_id: str) -> tuple[SnapshotStore, dict[str, Any]]:
    record = state.store.get_run(run_id)
    details = views.run_details(record, child_count=0, file_names=[], studio_url="")
    if details.snapshot_id is None:
        raise NotFoundError(
            f"run {run_id} has no snapshot: submitted runs (experiment.submit) snapshot their source folder; "
            "runs started with start_logging() or Run.get_context() do not", run_id=run_id)
    store = SnapshotStore(state.folder.snapshots_dir)
    return store, store.manifest(details.snapshot_id)


@router.get("/runs/{run_id}/snapshot", response_model=models.SnapshotInfo, summary="The run's source snapshot")
def get_snapshot(state: State, run_id: RunId) -> models.SnapshotInfo:
    """The files the run's script ran with (a submitted run's ``source_directory``, after ignore rules)."""
    _store, manifest = _snapshot(state, run_id)
    files = [models.SnapshotFile(path=str(f.get("path")), size=int(f.get("size", 0)), sha256=str(f.get("sha256")))
             for f in manifest.get("files", []) if isinstance(f, dict)]
    return models.SnapshotInfo(
        snapshot_id=str(manifest.get("snapshot_id")), created=manifest.get("created"), source=manifest.get("source"),
        file_count=int(manifest.get("file_count", len(files))), total_bytes=int(manifest.get("total_bytes", 0)),
        git=manifest.get("git"), files=files,
    )


@router.get("/runs/{run_id}/snapshot/{path:path}", summary="Download a file of the run's snapshot",
            response_class=StreamingResponse, responses=FILE_RESPONSE)
def download_snapshot_file(state: State, run_id: RunId, path: FileName, download: Download = False) -> StreamingResponse:
    store, manifest = _snapshot(state, run_id)
    for item in manifest.get("files", []):
        if isinstance(item, dict) and item.get("path") == path:
            try:
                stream, size = store.open_object(item.get("sha256"))  # StoreError for a damaged manifest
            except NotFoundError:
                break
            return _file_response(stream, path, size, download)
    raise NotFoundError(f"the snapshot of run {run_id} has no file {path!r}", run_id=run_id, path=path)
