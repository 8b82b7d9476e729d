"""The studio over a real uvicorn server on 127.0.0.1: the API, live server-sent events while a run
logs, a clean stop with streams open, and the ``runlab studio`` command in its own process."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Iterator

import httpx
import pytest
from studio_fixtures import LiveServer, free_port

import runlab

pytestmark = pytest.mark.slow


def read_events(response: httpx.Response) -> Iterator[tuple[str, Any]]:
    event = None
    for line in response.iter_lines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event is not None:
            yield event, json.loads(line[6:])
            event = None


def test_api_over_http(populated: runlab.Workspace, live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.url, timeout=10) as http:
        page = http.get("/api/runs", params={"sort": "metric:loss", "metric": "loss", "limit": 3}).json()
        assert page["total"] == 14 and len(page["runs"]) == 3
        series = http.get("/api/runs/mnist_run_11/metrics/loss", params={"points": 10}).json()
        assert series["count"] == 95 and len(series["values"]) <= 10
        missing = http.get("/api/runs/nope")
        assert missing.status_code == 404 and missing.json()["error"]["type"] == "RunNotFoundError"
        assert http.get("/api/openapi.json").json()["info"]["title"] == "runlab studio"
        download = http.get("/api/runs/mnist_run_11/files/outputs/notes.txt")
        assert download.text == "hello\n" and download.headers["content-type"] == "text/plain; charset=utf-8"


def test_events_and_log_stream_follow_a_running_run(ws: runlab.Workspace, live_server: LiveServer) -> None:
    run = runlab.Experiment(ws, "live").start_logging()
    run.log("loss", 1.0)
    run.flush()
    log_name = "azureml-logs/70_driver_log.txt"
    stop = threading.Event()

    def train() -> None:
        step = 1
        while not stop.wait(0.1):
            run.log("loss", 1.0 / (step + 1))
            run.flush()
            ws.folder.artifacts.append_bytes(run.id, log_name, f"step {step}\n".encode())
            step += 1

    trainer = threading.Thread(target=train)
    trainer.start()
    counts: list[int] = []
    try:
        with httpx.Client(base_url=live_server.url, timeout=httpx.Timeout(10, read=10)) as http:
            with http.stream("GET", f"/api/runs/{run.id}/events") as events:
                assert events.headers["content-type"].startswith("text/event-stream")
                for event, data in read_events(events):
                    if event == "metrics":
                        counts.append(data[0]["count"])
                    if len(counts) >= 3:
                        break
            with http.stream("GET", f"/api/runs/{run.id}/logs/stream", params={"name": log_name}) as logs:
                text = ""
                for event, data in read_events(logs):
                    assert event == "log"
                    text += data["text"]
                    if "step 3\n" in text:
                        break
            assert text.startswith("step 1\n")
    finally:
        stop.set()
        trainer.join(10)
    assert counts == sorted(counts) and counts[-1] > counts[0]
    run.complete()
    with httpx.Client(base_url=live_server.url, timeout=10) as http:
        with http.stream("GET", f"/api/runs/{run.id}/events") as events:
            names = [event for event, _ in read_events(events)]
    assert names[0] == "status" and names[-1] == "end"


def test_server_stops_promptly_while_streams_are_open(ws: runlab.Workspace, app: Any) -> None:
    run = runlab.Experiment(ws, "live").start_logging()
    run.upload_file("azureml-logs/70_driver_log.txt", io.BytesIO(b"hello\n"))
    server = LiveServer(app).start()
    got: list[str] = []

    def listen() -> None:
        try:
            with httpx.stream("GET", f"{server.url}/api/runs/{run.id}/logs/stream",
                              params={"name": "azureml-logs/70_driver_log.txt"}, timeout=20) as response:
                for event, _data in read_events(response):
                    got.append(event)
        except httpx.HTTPError:
            pass

    listener = threading.Thread(target=listen)
    listener.start()
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:
        time.sleep(0.05)
    assert got == ["log"]
    t0 = time.monotonic()
    server.stop()
    assert time.monotonic() - t0 < 5
    listener.join(10)
    assert not listener.is_alive()
    run.complete()


STUDIO = "import sys; from runlab.cli.studio import studio; sys.exit(studio(prog_name='runlab studio'))"


def test_studio_command_serves_a_workspace_and_stops_on_ctrl_c(populated: runlab.Workspace,
                                                              subprocess_env: dict[str, str]) -> None:
    port = free_port()
    env = {**subprocess_env, "RUNLAB_STUDIO_URL": ""}
    proc = subprocess.Popen([sys.executable, "-c", STUDIO, "--workspace", str(populated.path), "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()  # type: ignore[union-attr]
        second = proc.stdout.readline()  # type: ignore[union-attr]
        assert "workspace test-ws" in first
        assert f"http://127.0.0.1:{port}" in second
        deadline = time.monotonic() + 20
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()  # type: ignore[union-attr]
                time.sleep(0.1)
        assert health.json() == {"status": "ok"}
        details = httpx.get(f"http://127.0.0.1:{port}/api/runs/mnist_run_11", timeout=5).json()
        assert details["portal_url"] == f"http://127.0.0.1:{port}/runs/mnist_run_11"  # this server's page

        busy = subprocess.run([sys.executable, "-c", STUDIO, "--workspace", str(populated.path), "--port", str(port)],
                              env=env, capture_output=True, text=True, timeout=60)
        assert busy.returncode != 0 and "already in use" in busy.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.stdout.close()  # type: ignore[union-attr]
            proc.stderr.close()  # type: ignore[union-attr]
    assert proc.returncode == 0


def test_studio_command_explains_a_missing_workspace(tmp_path: Any, subprocess_env: dict[str, str]) -> None:
    result = subprocess.run([sys.executable, "-c", STUDIO, "--workspace", str(tmp_path / "nowhere"), "--port", "0"],
                            env=subprocess_env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode != 0
    assert "error:" in result.stderr and "workspace" in result.stderr.lower()
