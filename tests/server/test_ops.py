"""Operations of a server: /healthz, /readyz (with a PostgreSQL stopped and started again under a
running app), /metrics, request ids and access logs over real HTTP; backup and restore of an
embedded workspace (SQLite) and of a hosted one (PostgreSQL), refusals of damaged backups and of
targets that are not empty."""

from __future__ import annotations

import errno
import glob
import io
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import click
import httpx
import pytest
from click.testing import CliRunner
from studio_fixtures import LiveServer, add_run, free_port

import runlab
from pg_support import drop_database, fresh_database
from runlab.cli.server_ops import backup_command, restore_command
from runlab.server import backup as backup_mod
from runlab.server.app import create_app
from runlab.server.backup import BackupError, backup, restore
from runlab.server.ops import ACCESS_LOGGER
from runlab.store.folder import WorkspaceFolder
from runlab.store.hosted import HostedWorkspace

# -- a PostgreSQL of this module's own, to stop and start -------------------------------------------


class OwnPostgres:
    """A small PostgreSQL (initdb in a temp folder, loopback) that a test can stop and start again on
    the same port; stopped by its own pid."""

    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not bins:
            pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
        self.bin_dir = os.path.dirname(bins[-1])
        self.data = tempfile.mkdtemp(prefix="runlab-pg-ops-", dir="/tmp")
        self.user: str | None = None
        if os.geteuid() == 0:
            shutil.chown(self.data, "postgres", "postgres")
            self.user = "postgres"
        subprocess.run([f"{self.bin_dir}/initdb", "-D", self.data, "-A", "trust", "-U", "runlab", "--no-sync"],
                       user=self.user, check=True, capture_output=True)
        self.port = free_port()
        self.url = f"postgresql+psycopg://runlab@127.0.0.1:{self.port}/postgres"
        self.server: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.server = subprocess.Popen(
            [f"{self.bin_dir}/postgres", "-D", self.data, "-h", "127.0.0.1", "-p", str(self.port), "-k", self.data,
             "-c", "fsync=off", "-c", "full_page_writes=off"],
            user=self.user, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while subprocess.run([f"{self.bin_dir}/pg_isready", "-h", "127.0.0.1", "-p", str(self.port)],
                             capture_output=True).returncode != 0:
            if self.server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL did not start")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.server is None:
            return
        self.server.send_signal(signal.SIGINT)  # fast shutdown: clients are disconnected
        try:
            self.server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait()
        self.server = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.data, ignore_errors=True)


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    pg = OwnPostgres()
    try:
        pg.start()
        yield pg
    finally:
        pg.remove()


@pytest.fixture
def served(ws: runlab.Workspace) -> Iterator[LiveServer]:
    add_run(ws.folder, "mnist", "run_one", metrics={"loss": [1.0, 0.5]})
    server = LiveServer(create_app(ws.folder, poll_interval_s=0.1, stream_max_s=5)).start()
    try:
        yield server
    finally:
        server.stop()


def _access_lines(caplog: pytest.LogCaptureFixture, count: int) -> list[dict[str, Any]]:
    """The JSON access-log lines, once ``count`` of them are there (a line is written just after its
    response is sent)."""
    deadline = time.monotonic() + 10
    while True:
        lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == ACCESS_LOGGER]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.02)


# -- probes, metrics, request ids, logs -------------------------------------------------------------------


def test_healthz_and_readyz(served: LiveServer) -> None:
    health = httpx.get(served.url + "/healthz")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    ready = httpx.get(served.url + "/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ok"}


def test_readyz_follows_the_database_down_and_back(own_postgres: OwnPostgres, tmp_path: Path) -> None:
    folder = HostedWorkspace(own_postgres.url, tmp_path / "artifacts", name="team")
    server = LiveServer(create_app(folder, poll_interval_s=0.1, stream_max_s=5)).start()
    try:
        assert httpx.get(server.url + "/readyz").status_code == 200
        own_postgres.stop()
        down = httpx.get(server.url + "/readyz", timeout=30)
        assert down.status_code == 503
        body = down.json()
        assert body["status"] == "unavailable" and body["reason"]
        assert httpx.get(server.url + "/healthz").status_code == 200  # the process still serves
        metrics = httpx.get(server.url + "/metrics", timeout=30)
        assert metrics.status_code == 200 and "runlab_store_up 0.0" in metrics.text
        own_postgres.start()
        back = httpx.get(server.url + "/readyz", timeout=30)
        assert back.status_code == 200, back.text  # the same app, not restarted
        assert "runlab_store_up 1.0" in httpx.get(server.url + "/metrics").text
    finally:
        server.stop()
        folder.close()


def test_metrics_label_routes_by_template(served: LiveServer) -> None:
    assert httpx.get(served.url + "/api/runs/run_one").status_code == 200
    assert httpx.get(served.url + "/api/runs/no_such_run").status_code == 404
    assert httpx.get(served.url + "/runs/run_one").status_code == 200
    assert httpx.get(served.url + "/static/favicon.svg").status_code == 200
    assert httpx.get(served.url + "/made/up/path").status_code == 404
    response = httpx.get(served.url + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'runlab_http_requests_total{method="GET",route="/api/runs/{run_id}",status="200"} 1.0' in text
    assert 'runlab_http_requests_total{method="GET",route="/api/runs/{run_id}",status="404"} 1.0' in text
    assert 'route="/runs/{run_id}"' in text and 'route="/static/{path}"' in text and 'route="<unmatched>"' in text
    assert "run_one" not in text and "no_such_run" not in text and "made/up" not in text  # bounded labels
    assert 'runlab_http_request_duration_seconds_count{route="/api/runs/{run_id}"} 2.0' in text
    assert "runlab_http_requests_in_flight 1.0" in text  # this scrape itself
    assert 'runlab_runs{status="Completed"} 1.0' in text and 'runlab_runs{status="Failed"} 0.0' in text


def test_metrics_registries_are_per_app(ws: runlab.Workspace) -> None:
    first, second = create_app(ws.folder), create_app(ws.folder)  # no "Duplicated timeseries" error
    assert first.state.metrics_registry is not second.state.metrics_registry


def test_ops_paths_are_not_in_the_openapi_document(served: LiveServer) -> None:
    # the first request builds the schema of every route: seconds on a loaded 2-core machine
    paths = httpx.get(served.url + "/api/openapi.json", timeout=120).json()["paths"]
    assert not {"/healthz", "/readyz", "/metrics"} & set(paths)


def test_request_ids_are_echoed_made_and_replaced(served: LiveServer) -> None:
    echoed = httpx.get(served.url + "/api/runs", headers={"X-Request-Id": "abc.DEF_12-3"})
    assert echoed.headers["x-request-id"] == "abc.DEF_12-3"
    made = httpx.get(served.url + "/api/runs")
    assert len(made.headers["x-request-id"]) == 32 and made.headers["x-request-id"].isalnum()
    for bad in ("has space", "x" * 65, "semi;colon", "quote\"", "é"):
        replaced = httpx.get(served.url + "/healthz", headers=[(b"X-Request-Id", bad.encode("utf-8"))])
        rid = replaced.headers["x-request-id"]
        assert rid != bad and len(rid) == 32, bad
    error = httpx.get(served.url + "/api/runs/no_such_run", headers={"X-Request-Id": "quote-me"})
    assert error.status_code == 404
    assert error.json()["error"]["request_id"] == "quote-me"
    assert error.headers.get_list("x-request-id") == ["quote-me"]  # once, though the error handler sets it too
    invalid = httpx.get(served.url + "/api/runs", params={"limit": "many"}, headers={"X-Request-Id": "v-1"})
    assert invalid.status_code == 422 and invalid.json()["error"]["request_id"] == "v-1"


def test_one_json_access_line_per_request(served: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    httpx.get(served.url + "/api/runs/run_one?token=s3cret&x=1",
              headers={"X-Request-Id": "req-1", "Authorization": "Bearer hunter2"})
    httpx.get(served.url + "/api/runs/no_such_run", headers={"X-Request-Id": "req-2"})
    lines = _access_lines(caplog, 2)
    assert [line["request_id"] for line in lines] == ["req-1", "req-2"]
    first, second = lines
    assert set(first) == {"ts", "request_id", "method", "route", "path", "status", "duration_ms", "bytes"}
    assert first["method"] == "GET" and first["route"] == "/api/runs/{run_id}" and first["path"] == "/api/runs/run_one"
    assert first["status"] == 200 and first["bytes"] > 0 and first["duration_ms"] >= 0
    assert second["status"] == 404
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == ACCESS_LOGGER)
    assert "s3cret" not in logged and "token" not in logged and "hunter2" not in logged and "Bearer" not in logged


# -- backup and restore -------------------------------------------------------------------------------


def _sdk_runs(ws: runlab.Workspace, tmp_path: Path) -> list[str]:
    exp = runlab.Experiment(ws, "train")
    ids = []
    for i in range(2):
        run = exp.start_logging()
        for step in range(5):
            run.log("loss", 1.0 / (step + 1 + i))
        source = tmp_path / f"model-{i}.bin"
        source.write_bytes(bytes(range(256)) * (i + 1))
        run.upload_file(f"outputs/model-{i}.bin", str(source))
        run.upload_file("outputs/notes.txt", io.BytesIO(f"run {i}\n".encode()))
        run.complete()
        ids.append(run.id)
    return ids


def _contents(folder: WorkspaceFolder) -> dict[str, Any]:
    """What a backup must keep: runs and their statuses, metric series, run files and their bytes."""
    store = folder.store
    out: dict[str, Any] = {}
    for record in store.list_runs():
        series = {m.name: list(store.get_metric_series(record.run_id, m.name).values)
                  for m in store.get_metric_summaries(record.run_id)}
        files = {}
        for name in folder.artifacts.list(record.run_id):
            with folder.artifacts.open(record.run_id, name) as f:
                files[name] = f.read()
        out[record.run_id] = {"status": str(record.status), "experiment": record.experiment_name, "series": series,
                              "files": files}
    return out


def test_backup_and_restore_an_embedded_workspace(ws: runlab.Workspace, tmp_path: Path) -> None:
    ids = _sdk_runs(ws, tmp_path)
    (ws.folder.path / "files" / "runs" / ids[0] / ".upload-leftover").write_bytes(b"half")
    before = _contents(ws.folder)
    assert set(before) == set(ids) and before[ids[0]]["series"]["loss"][0] == 1.0
    progress: list[tuple[str, int, int]] = []
    report = backup(ws.folder, tmp_path / "bk", progress=lambda *a: progress.append(a))
    assert report.database == "sqlite" and report.schema_revision and report.files >= 5
    manifest = json.loads((tmp_path / "bk" / "manifest.json").read_text())
    assert manifest["workspace"] == {"name": "test-ws", "id": ws.folder.workspace_id, "hosted": False}
    assert manifest["runlab_version"] == runlab.__version__
    assert manifest["database"]["schema_revision"] == report.schema_revision
    names = {f["path"] for f in manifest["files"]}
    assert f"files/runs/{ids[0]}/outputs/model-0.bin" in names and "workspace.json" in names
    assert not any(".upload-" in n or n.startswith("workspace.db") for n in names)
    assert all(len(f["sha256"]) == 64 and f["size"] >= 0 for f in manifest["files"])
    assert ("files", report.files, report.files) in progress

    restored = restore(tmp_path / "bk", store_url=None, artifacts=tmp_path / "restored")
    assert restored.files == report.files and restored.workspace_id == ws.folder.workspace_id
    again = WorkspaceFolder(tmp_path / "restored")
    try:
        assert again.workspace_id == ws.folder.workspace_id
        assert _contents(again) == before
    finally:
        again.close()


def test_restore_refuses_a_damaged_backup(ws: runlab.Workspace, tmp_path: Path) -> None:
    ids = _sdk_runs(ws, tmp_path)
    backup(ws.folder, tmp_path / "bk")
    victim = tmp_path / "bk" / "artifacts" / "files" / "runs" / ids[1] / "outputs" / "model-1.bin"
    data = bytearray(victim.read_bytes())
    data[100] ^= 0x01
    victim.unlink()  # a new file, not the workspace's (the backup hard-links)
    victim.write_bytes(bytes(data))
    with pytest.raises(BackupError, match="does not match its sha256"):
        restore(tmp_path / "bk", store_url=None, artifacts=tmp_path / "restored")
    assert not (tmp_path / "restored" / "workspace.db").exists()
    assert [p.name for p in (tmp_path / "restored").iterdir()] == []  # nothing replaced, staging removed
    # the workspace's own file is intact
    with ws.folder.artifacts.open(ids[1], "outputs/model-1.bin") as f:
        assert f.read() == bytes(range(256)) * 2

    backup(ws.folder, tmp_path / "bk2", link=False)
    dump = tmp_path / "bk2" / "database.sqlite"
    raw = bytearray(dump.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    dump.write_bytes(bytes(raw))
    with pytest.raises(BackupError, match="database file .* does not match"):
        restore(tmp_path / "bk2", store_url=None, artifacts=tmp_path / "restored2")


def test_backup_refuses_a_non_empty_dest_and_restore_a_non_empty_target(ws: runlab.Workspace, tmp_path: Path) -> None:
    _sdk_runs(ws, tmp_path)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(BackupError, match="exists and is not empty"):
        backup(ws.folder, tmp_path / "full")
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    with pytest.raises(BackupError, match="inside the workspace folder"):
        backup(ws.folder, ws.folder.path / "files" / "bk")
    (tmp_path / "empty").mkdir()
    backup(ws.folder, tmp_path / "empty")  # an empty folder is fine
    with pytest.raises(BackupError, match="not empty.*--force"):
        restore(tmp_path / "empty", store_url=None, artifacts=ws.folder.path)
    restore(tmp_path / "empty", store_url=None, artifacts=tmp_path / "full", force=True)
    assert not (tmp_path / "full" / "keep.txt").exists()
    assert WorkspaceFolder(tmp_path / "full").workspace_id == ws.folder.workspace_id


def test_disk_full_removes_the_partial_backup(ws: runlab.Workspace, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    _sdk_runs(ws, tmp_path)

    def full(*_args: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(backup_mod, "_copy_hashing", full)
    with pytest.raises(BackupError, match="disk .* is full.*partial backup was removed"):
        backup(ws.folder, tmp_path / "bk", link=False)
    assert not (tmp_path / "bk").exists()


def test_pg_dump_missing_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda _name: None)
    monkeypatch.setattr("glob.glob", lambda _pattern: [])
    with pytest.raises(BackupError, match="apt-get install postgresql-client"):
        backup_mod.find_pg_tool("pg_dump")


def test_backup_and_restore_a_hosted_workspace_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    source_url, target_url = fresh_database(postgres_url), fresh_database(postgres_url)
    folder = HostedWorkspace(source_url, tmp_path / "artifacts", name="team")
    again: HostedWorkspace | None = None
    try:
        add_run(folder, "mnist", "run_a", metrics={"loss": [1.0, 0.5, 0.25], "acc": [0.1, 0.9]})
        add_run(folder, "mnist", "run_b", metrics={"loss": [2.0]})
        folder.artifacts.put_bytes("run_a", "outputs/model.pt", b"weights" * 1000)
        folder.artifacts.put_bytes("run_b", "logs/driver.txt", b"hello\n")
        before = _contents(folder)
        report = backup(folder, tmp_path / "bk")
        assert report.database == "postgresql" and (tmp_path / "bk" / "database.pgdump").is_file()
        manifest = json.loads((tmp_path / "bk" / "manifest.json").read_text())
        assert manifest["workspace"]["hosted"] is True and manifest["workspace"]["name"] == "team"

        restored = restore(tmp_path / "bk", store_url=target_url, artifacts=tmp_path / "artifacts2")
        assert "runlab" in restored.store and restored.files == report.files
        again = HostedWorkspace(target_url, tmp_path / "artifacts2", create=False)
        assert again.workspace_id == folder.workspace_id
        assert _contents(again) == before
        again.close()
        again = None
        with pytest.raises(BackupError, match="not empty"):  # the store now holds tables: refused without --force
            restore(tmp_path / "bk", store_url=target_url, artifacts=tmp_path / "artifacts3")
        restore(tmp_path / "bk", store_url=target_url, artifacts=tmp_path / "artifacts2", force=True)
        again = HostedWorkspace(target_url, tmp_path / "artifacts2", create=False)
        assert _contents(again) == before
    finally:
        folder.close()
        if again is not None:
            again.close()
        drop_database(postgres_url, source_url)
        drop_database(postgres_url, target_url)


def test_backup_of_a_hosted_workspace_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    folder = HostedWorkspace(url, tmp_path / "artifacts", name="team")
    try:
        add_run(folder, "e", "run_s", metrics={"loss": [3.0, 2.0]})
        folder.artifacts.put_bytes("run_s", "outputs/a.txt", b"a")
        before = _contents(folder)
        backup(folder, tmp_path / "bk")
    finally:
        folder.close()
    target = f"sqlite:///{tmp_path / 'restored.db'}"
    restore(tmp_path / "bk", store_url=target, artifacts=tmp_path / "artifacts2")
    again = HostedWorkspace(target, tmp_path / "artifacts2", create=False)
    try:
        assert _contents(again) == before
    finally:
        again.close()
    with pytest.raises(BackupError, match="PostgreSQL|SQLite"):
        restore(tmp_path / "bk", store_url="postgresql+psycopg://u@127.0.0.1:1/db", artifacts=tmp_path / "a3")


def test_cli_backup_and_restore(ws: runlab.Workspace, tmp_path: Path) -> None:
    ids = _sdk_runs(ws, tmp_path)
    runner = CliRunner()
    done = runner.invoke(backup_command, [str(tmp_path / "bk"), "-w", str(ws.folder.path)])
    assert done.exit_code == 0, done.output
    assert "backed up workspace 'test-ws'" in done.output
    refused = runner.invoke(backup_command, [str(tmp_path / "bk"), "-w", str(ws.folder.path)])
    assert refused.exit_code == 1 and "error:" in refused.output and "not empty" in refused.output
    partial = runner.invoke(backup_command, [str(tmp_path / "bk3"), "--store", "sqlite:////x.db"])
    assert partial.exit_code == 2 and "--artifacts" in partial.output
    restored = runner.invoke(restore_command, [str(tmp_path / "bk"), "--artifacts", str(tmp_path / "r")])
    assert restored.exit_code == 0, restored.output
    restored_folder = WorkspaceFolder(tmp_path / "r")
    try:
        assert set(_contents(restored_folder)) == set(ids)
    finally:
        restored_folder.close()
    again = runner.invoke(restore_command, [str(tmp_path / "bk"), "--artifacts", str(tmp_path / "r")])
    assert again.exit_code == 1 and "--force" in again.output
    forced = runner.invoke(restore_command, [str(tmp_path / "bk"), "--artifacts", str(tmp_path / "r"), "--force"])
    assert forced.exit_code == 0, forced.output
    for command in (backup_command, restore_command):
        help_text = runner.invoke(command, ["--help"]).output
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"{command.name} {param.opts} has no help"
        assert "--artifacts" in help_text
