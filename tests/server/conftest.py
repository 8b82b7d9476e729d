"""Fixtures for the studio: a workspace with runs, the app in-process, a real uvicorn server on
127.0.0.1 in a thread, and Debian's Chromium driven by Playwright (skipped where it is missing)."""

from __future__ import annotations

import io
import shutil
import time
import warnings
from pathlib import Path
from typing import Any, Iterator

import pytest
from studio_fixtures import CHROMIUM, CHROMIUM_ARGS, LiveServer, add_run

import runlab
from runlab.core.status import RunStatus, RunType
from runlab.server.app import create_app


@pytest.fixture
def populated(ws: runlab.Workspace) -> runlab.Workspace:
    """Two experiments: 'mnist' with 12 runs (loss, accuracy; tags; every ending), 'baseline' with 2."""
    folder = ws.folder
    base = time.time() - 3600
    statuses = [RunStatus.COMPLETED] * 8 + [RunStatus.FAILED, RunStatus.CANCELED, RunStatus.COMPLETED, RunStatus.COMPLETED]
    for i, status in enumerate(statuses):
        lr = [0.1, 0.01, 0.001][i % 3]
        steps = 40 + i * 5
        loss = [2.0 * (0.93 + 0.004 * (i % 4)) ** s + 0.05 * ((s * 7 + i) % 5) / 5 for s in range(steps)]
        acc = [min(0.99, 0.5 + 0.45 * (1 - 0.95 ** s) + 0.002 * i) for s in range(steps)]
        add_run(folder, "mnist", f"mnist_run_{i:02d}", status=status, metrics={"loss": loss, "accuracy": acc},
                tags={"lr": str(lr), "team": "vision" if i % 2 else "core"}, created_at=base + i * 60,
                duration=30 + 17 * i, display_name=f"lr {lr} #{i}")
    folder.store.add_properties("mnist_run_11", {"runlab.user": "ada", "git.branch": "main"})
    add_run(folder, "baseline", "baseline_a", metrics={"loss": [1.0, 0.8, 0.7]}, created_at=base + 10)
    add_run(folder, "baseline", "baseline_b", status=RunStatus.FAILED, created_at=base + 20)
    run = runlab.Run(folder, "mnist_run_11")
    run.upload_file("azureml-logs/70_driver_log.txt", io.BytesIO(b"".join(f"epoch {e}: loss {1 / (e + 1):.3f}\n".encode() for e in range(30))))
    run.upload_file("outputs/model.json", io.BytesIO(b'{"weights": [1, 2, 3]}'))
    run.upload_file("outputs/notes.txt", io.BytesIO(b"hello\n"))
    add_run(folder, "mnist", "mnist_run_11_child", parent_run_id="mnist_run_11", metrics={"loss": [0.5, 0.4]},
            run_type=RunType.CHILD, created_at=base + 700)
    return ws


@pytest.fixture
def app(ws: runlab.Workspace) -> Any:
    return create_app(ws.folder, poll_interval_s=0.1, stream_max_s=30)


@pytest.fixture
def client(app: Any) -> Iterator[Any]:
    with warnings.catch_warnings():  # starlette's test client warns that it moves to httpx2
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
        from fastapi.testclient import TestClient
    with TestClient(app) as c:
        yield c


@pytest.fixture
def live_server(app: Any) -> Iterator[LiveServer]:
    server = LiveServer(app).start()
    try:
        yield server
    finally:
        server.stop()


# -- browser --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} is missing: install Debian's Chromium (apt-get install -y chromium) "
                    "to run the browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1440, "height": 900}, device_scale_factor=1)
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.js_errors = errors  # type: ignore[attr-defined]
    try:
        yield pg
    finally:
        context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"
