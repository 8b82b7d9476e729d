"""The REST API under hostile run ids and file names (issue 13, item 8): runlab's own error as a
400 or 404 JSON body, never a 500, never a byte from outside the run."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytest

import runlab
from runlab.core.status import RunStatus, RunType
from tests_support import plant_run


def short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 30 else f"{text[:24]}...{len(text)}"


pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

SECRET = b"root:x:0:0:root:/root:/bin/bash\n"


def error_of(response: Any, *statuses: int) -> dict[str, Any]:
    assert response.status_code in statuses, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and body["error"]["message"] and body["error"]["type"]
    assert b"root:x:0:0" not in response.content
    return dict(body["error"])


@pytest.fixture
def run_with_files(ws: runlab.Workspace) -> runlab.Run:
    run = runlab.Experiment(ws, "exp").start_logging()
    run.upload_file("azureml-logs/70_driver_log.txt", io.BytesIO(b"epoch 1\n"))
    run.upload_file("outputs/model.json", io.BytesIO(b"{}"))
    run.complete()
    return run


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "passwd").write_bytes(SECRET)
    return folder


LONG = "n" * 300


@pytest.mark.parametrize("name", [
    LONG,
    f"outputs/{LONG}",
    f"outputs/{LONG}/model.json",
    "outputs/" + "%C3%A9" * 130,  # 260 bytes once decoded
    "outputs/a%00b.txt",
    "outputs/%ED%A0%80.txt",  # the UTF-8 bytes of a lone surrogate
    "..%2F..%2F..%2Fworkspace.json",
    "%2E%2E/%2E%2E/%2E%2E/workspace.json",
    "outputs/..%2F..%2F..%2F..%2Foutside%2Fpasswd",
    "%2Fetc%2Fpasswd",
    "..%5C..%5Cworkspace.json",
    "%2E",
], ids=short)
def test_a_hostile_file_name_is_a_400_or_404(run_with_files: runlab.Run, client: Any, outside: Path,
                                              name: str) -> None:
    run_id = run_with_files.id
    error = error_of(client.get(f"/api/runs/{run_id}/files/{name}"), 400, 404)
    assert error["type"] != "InternalError"


@pytest.mark.parametrize("endpoint", ["tail", "stream"])
@pytest.mark.parametrize("name", [
    f"azureml-logs/{LONG}",
    LONG,
    "azureml-logs/" + "é" * 130,
    "azureml-logs/a\x00b.txt",
    "azureml-logs/\ud800.txt",
    "../../../outside/passwd",
    "/etc/passwd",
    "azureml-logs/../../../../outside/passwd",
    ".",
], ids=short)
def test_a_hostile_log_name_is_a_400_or_404(run_with_files: runlab.Run, client: Any, outside: Path,
                                             endpoint: str, name: str) -> None:
    url = f"/api/runs/{run_with_files.id}/logs/{endpoint}"
    # a lone surrogate cannot be sent as text: send the bytes a hostile client would
    params = {"name": name} if "\ud800" not in name else None
    response = client.get(url + "?name=azureml-logs%2F%ED%A0%80.txt") if params is None else client.get(url, params=params)
    if endpoint == "stream" and response.status_code == 200:
        # the surrogate's bytes decode to U+FFFD: a valid name of a log not written, whose stream ends empty
        assert params is None and "event: log" not in response.text and "event: end" in response.text
        return
    error = error_of(response, 400, 404)
    assert error["type"] != "InternalError"


def test_a_too_long_name_says_so(run_with_files: runlab.Run, client: Any) -> None:
    message = error_of(client.get(f"/api/runs/{run_with_files.id}/files/outputs/{LONG}"), 400)["message"]
    assert "255" in message
    message = error_of(client.get(f"/api/runs/{run_with_files.id}/logs/tail",
                                  params={"name": f"azureml-logs/{LONG}"}), 400)["message"]
    assert "255" in message
    message = error_of(client.get(f"/api/runs/{run_with_files.id}/files/outputs/a%00b"), 400)["message"]
    assert "NUL" in message


@pytest.mark.parametrize("run_id", ["..", ".", "../../../outside", "a/b", "/etc", "a\\b"])
def test_a_hostile_run_id_already_in_the_database_is_not_followed(ws: runlab.Workspace, client: Any,
                                                                 run_with_files: runlab.Run, outside: Path,
                                                                 run_id: str) -> None:
    """Ids written by an older runlab (or by hand) reach the API percent-encoded; none is followed."""
    plant_run(ws, run_id)
    encoded = "".join(c if c.isalnum() else f"%{ord(c):02X}" for c in run_id)
    for path in (f"/api/runs/{encoded}", f"/api/runs/{encoded}/files", f"/api/runs/{encoded}/logs",
                 f"/api/runs/{encoded}/files/passwd", f"/api/runs/{encoded}/files/{run_with_files.id}/outputs/model.json",
                 f"/api/runs/{encoded}/logs/tail?name=passwd", f"/api/runs/{encoded}/logs/stream?name=passwd"):
        response = client.get(path)
        assert response.status_code in (400, 404), (path, response.status_code, response.text[:300])
        assert b"root:x:0:0" not in response.content and b"{}" != response.content
        if not path.endswith(run_with_files.id + "/outputs/model.json"):
            assert run_with_files.id not in response.text  # no other run's files listed through '.' or '..'


def test_the_run_page_of_a_planted_dot_run_lists_no_files(ws: runlab.Workspace, client: Any,
                                                         run_with_files: runlab.Run) -> None:
    plant_run(ws, ".")
    response = client.get("/api/runs/%2E/files")
    assert response.status_code in (400, 404)
    assert "outputs/model.json" not in response.text


@pytest.mark.parametrize("run_id", ["x" * 10_000, "..%2F..%2Fetc", "%ED%A0%80", "%00", "a%0Ab"], ids=short)
def test_a_hostile_run_id_in_the_url_is_a_4xx(run_with_files: runlab.Run, client: Any, run_id: str) -> None:
    for path in (f"/api/runs/{run_id}", f"/api/runs/{run_id}/files", f"/api/runs/{run_id}/files/outputs/model.json",
                 f"/api/runs/{run_id}/logs/tail?name=azureml-logs/70_driver_log.txt"):
        response = client.get(path)
        assert 400 <= response.status_code < 500, (path[:80], response.status_code, response.text[:300])
        assert response.json()["error"]["message"]


def test_a_run_folder_linked_outside_serves_nothing(ws: runlab.Workspace, client: Any, outside: Path) -> None:
    run = runlab.Experiment(ws, "exp").start_logging()
    run.complete()
    os.symlink(outside, ws.path / "files" / "runs" / run.id, target_is_directory=True)
    assert client.get(f"/api/runs/{run.id}/files").json() == []
    error_of(client.get(f"/api/runs/{run.id}/files/passwd"), 404)
    error_of(client.get(f"/api/runs/{run.id}/logs/tail", params={"name": "passwd"}), 404)
    assert client.get(f"/api/runs/{run.id}").json()["run_id"] == run.id  # the run page still works


def test_a_link_in_a_run_folder_that_leads_out_serves_nothing(ws: runlab.Workspace, client: Any,
                                                              run_with_files: runlab.Run, outside: Path) -> None:
    run_dir = ws.path / "files" / "runs" / run_with_files.id
    os.symlink(outside / "passwd", run_dir / "azureml-logs" / "passwd.txt")
    os.symlink(outside, run_dir / "etc", target_is_directory=True)
    names = {f["name"] for f in client.get(f"/api/runs/{run_with_files.id}/files").json()}
    assert names == {"azureml-logs/70_driver_log.txt", "outputs/model.json"}
    for name in ("azureml-logs/passwd.txt", "etc/passwd"):
        error_of(client.get(f"/api/runs/{run_with_files.id}/files/{name}"), 404)
        error_of(client.get(f"/api/runs/{run_with_files.id}/logs/tail", params={"name": name}), 404)
    logs = {f["name"] for f in client.get(f"/api/runs/{run_with_files.id}/logs").json()}
    assert logs == {"azureml-logs/70_driver_log.txt"}


def test_a_damaged_snapshot_manifest_serves_nothing_outside(ws: runlab.Workspace, client: Any, tmp_path: Path,
                                                            outside: Path) -> None:
    """The snapshot file endpoint builds a path from the manifest's sha256: only a sha256 is taken."""
    import json

    from runlab.execution.snapshot import SnapshotStore

    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text("print('hi')\n")
    store = SnapshotStore(ws.folder.snapshots_dir)
    snap = store.take(source)
    manifest = json.loads(snap.manifest_path.read_text())
    manifest["files"][0]["sha256"] = ".." + str(outside / "passwd")  # objects/.. / '/…/passwd'
    snap.manifest_path.chmod(0o644)
    snap.manifest_path.write_text(json.dumps(manifest))
    ws.folder.store.create_run("sub_1", "exp", run_type=RunType.SUBMITTED, status=RunStatus.COMPLETED,
                               definition={"snapshotId": snap.snapshot_id})
    response = client.get("/api/runs/sub_1/snapshot/train.py")
    assert response.status_code >= 400 and b"root:x:0:0" not in response.content
    assert response.json()["error"]["message"]
