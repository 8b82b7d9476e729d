"""Hostile requests against the file browser and the zip download (``/api/runs/ID/files``,
``/api/runs/ID/files/NAME?max_bytes=``, ``/api/runs/ID/zip?folder=``): traversal however it is spelled,
links that lead out, names that are not UTF-8 or hold a newline, 50,000 files, a file that grows while
it is zipped. Never a 500, never a byte from outside the run, never a broken archive."""

from __future__ import annotations

import io
import os
import threading
import time
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from studio_fixtures import LiveServer, add_run

import runlab
from runlab.server.api.files import SKIPPED_NAME

SECRET = b"top secret outside the workspace"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_bytes(SECRET)
    return folder


@pytest.fixture
def planted(ws: runlab.Workspace, outside: Path) -> Path:
    """Run r1 with outputs/a.txt, links out (a file, a folder), a name that is not UTF-8 and one with a newline,
    as a script writing into outputs/ leaves them."""
    add_run(ws.folder, "exp", "r1")
    runlab.Run(ws.folder, "r1").upload_file("outputs/a.txt", io.BytesIO(b"hello"))
    out = ws.folder.artifacts.root / "r1" / "outputs"
    os.symlink(outside / "secret.txt", out / "secret-link.txt")
    os.symlink(outside, out / "outside-dir")
    os.symlink("/", out / "root")
    (out / "new\nline.txt").write_bytes(b"nl")
    with open(os.fsencode(out) + b"/bad\xff\xfe.txt", "wb") as f:
        f.write(b"bad")
    return out


def _zip(response: Any) -> zipfile.ZipFile:
    assert response.status_code == 200, response.text[:300]
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.testzip() is None
    return archive


def test_names_that_are_not_utf8_or_hold_a_newline_are_listed_served_and_zipped(planted: Path, client: Any) -> None:
    listing = client.get("/api/runs/r1/files")
    assert listing.status_code == 200, listing.text[:300]
    names = {f["name"] for f in listing.json()}
    assert names == {"outputs/a.txt", "outputs/new\nline.txt", "outputs/bad\ufffd\ufffd.txt"}
    assert client.get("/api/runs/r1").status_code == 200
    assert client.get("/api/runs/r1/files/outputs/new%0Aline.txt").content == b"nl"
    archive = _zip(client.get("/api/runs/r1/zip"))
    assert sorted(archive.namelist()) == sorted(names)
    assert archive.read("outputs/bad\ufffd\ufffd.txt") == b"bad"
    assert SECRET not in b"".join(archive.read(n) for n in archive.namelist())
    assert sorted(_zip(client.get("/api/runs/r1/zip", params={"folder": "/"})).namelist()) == sorted(names)  # the run's
    # a log with such a name does not break the run page either
    logs = planted.parent / "azureml-logs"
    logs.mkdir()
    with open(os.fsencode(logs) + b"/driver\xff.txt", "wb") as f:
        f.write(b"log")
    assert client.get("/api/runs/r1").status_code == 200
    assert "azureml-logs/driver\ufffd.txt" in client.get("/api/runs/r1").json()["log_files"]


TRAVERSALS = ["..", "../..", "../../..", "/etc", "outputs/../..", "outputs/../../..", "outputs\\..\\..", "%2e%2e",
              "..%2f..", "%2e%2e%2f%2e%2e", "....//....", "outputs/outside-dir", "outputs/root", "outputs/root/etc",
              "outputs/secret-link.txt", "\x00", "outputs\x00", "~", "~root", "outputs/./..", "./..", "C:\\Windows"]


@pytest.mark.parametrize("folder", TRAVERSALS)
def test_a_zip_folder_never_leaves_the_run(planted: Path, client: Any, folder: str) -> None:
    r = client.get("/api/runs/r1/zip", params={"folder": folder})
    assert r.status_code in (400, 404, 422), (folder, r.status_code, r.text[:300])
    assert r.json()["error"]["message"]
    assert SECRET not in r.content


@pytest.mark.parametrize("name", ["../../../etc/passwd", "%2e%2e/%2e%2e/%2e%2e/etc/passwd", "outputs/%2e%2e/%2e%2e/x",
                                  "%2fetc%2fpasswd", "/etc/passwd", "outputs/secret-link.txt",
                                  "outputs/outside-dir/secret.txt", "outputs/root/etc/passwd", "outputs/a.txt%00",
                                  "outputs%5c..%5c..%5cx", "outputs/..%252f..%252fx"])
def test_a_file_name_never_leaves_the_run(planted: Path, client: Any, name: str) -> None:
    for suffix in ("", "?max_bytes=5", "?download=true"):
        r = client.get(f"/api/runs/r1/files/{name}{suffix}")
        assert r.status_code in (400, 404, 422), (name, r.status_code, r.text[:300])
        assert SECRET not in r.content and b"root:" not in r.content


def test_max_bytes_previews(planted: Path, client: Any) -> None:
    assert client.get("/api/runs/r1/files/outputs/a.txt", params={"max_bytes": 2}).content == b"he"
    assert client.get("/api/runs/r1/files/outputs/a.txt", params={"max_bytes": 1 << 30}).content == b"hello"
    for bad in (0, -1, (1 << 30) + 1, "abc", "1e3", 2**64):
        r = client.get("/api/runs/r1/files/outputs/a.txt", params={"max_bytes": bad})
        assert r.status_code == 422 and "max_bytes" in r.text, (bad, r.text[:200])


def test_a_zip_of_10000_files_is_streamed(ws: runlab.Workspace, app: Any) -> None:
    add_run(ws.folder, "exp", "many")
    out = ws.folder.artifacts.root / "many" / "outputs"
    for d in range(10):  # 50,000 took 87 s under tracemalloc for the same finding
        sub = out / f"d{d:02d}"
        sub.mkdir(parents=True)
        for i in range(1000):
            (sub / f"f{i:04d}.txt").write_bytes(b"%d %d\n" % (d, i) * 8)
    server = LiveServer(app).start()
    try:
        tracemalloc.start()
        chunks, size = 0, 0
        body = io.BytesIO()
        with httpx.Client(base_url=server.url, timeout=300) as http:
            with http.stream("GET", "/api/runs/many/zip", params={"folder": "outputs"}) as r:
                assert r.status_code == 200
                assert "content-length" not in r.headers  # made as it is sent
                for chunk in r.iter_raw():
                    chunks += 1
                    size += len(chunk)
                    body.write(chunk)
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        server.stop()
    archive = zipfile.ZipFile(body)
    assert len(archive.namelist()) == 10_000 and archive.read("outputs/d09/f0999.txt") == b"9 999\n" * 8
    assert chunks > 10  # sent as it was made, not in one piece
    # bounded: zipfile keeps one entry per file for the central directory, the response a few blocks
    assert peak < size + 64 * 2**20, (peak, size)


def test_a_file_that_grows_while_it_is_zipped(ws: runlab.Workspace, app: Any) -> None:
    add_run(ws.folder, "exp", "growing")
    out = ws.folder.artifacts.root / "growing" / "outputs"
    out.mkdir(parents=True)
    log = out / "a.log"
    log.write_bytes(b"x" * (4 << 20))
    for i in range(20):
        (out / f"b{i:02d}.bin").write_bytes(os.urandom(256 << 10))
    stop = threading.Event()

    def grow() -> None:
        with open(log, "ab") as f:
            while not stop.is_set():
                f.write(b"y" * 65536)
                f.flush()
                time.sleep(0.001)

    writer = threading.Thread(target=grow)
    server = LiveServer(app).start()
    writer.start()
    try:
        with httpx.Client(base_url=server.url, timeout=300) as http:
            archive = _zip(http.get("/api/runs/growing/zip"))
    finally:
        stop.set()
        writer.join()
        server.stop()
    data = archive.read("outputs/a.log")
    assert len(data) >= 4 << 20 and data[: 4 << 20] == b"x" * (4 << 20) and set(data[4 << 20:]) <= {ord("y")}
    assert len(archive.namelist()) == 21


def test_a_file_that_cannot_be_read_is_named_in_the_archive(planted: Path, client: Any, monkeypatch: Any) -> None:
    from runlab.core.errors import StoreError
    from runlab.store.artifacts import LocalArtifactStore

    real_open = LocalArtifactStore.open

    def failing_open(self: Any, run_id: str, name: str, offset: int = 0) -> Any:
        if name == "outputs/a.txt":
            raise StoreError("cannot read run file 'outputs/a.txt' of run r1: [Errno 5] Input/output error")
        return real_open(self, run_id, name, offset)

    monkeypatch.setattr(LocalArtifactStore, "open", failing_open)
    archive = _zip(client.get("/api/runs/r1/zip"))
    assert "outputs/a.txt" not in archive.namelist()
    assert b"outputs/a.txt: cannot read" in archive.read(SKIPPED_NAME)
