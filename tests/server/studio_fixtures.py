"""Helpers of the studio tests: runs written straight to the store, a real uvicorn server on
127.0.0.1 in a thread, screenshots."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

from runlab.core.entities import MetricBatch
from runlab.core.status import RunStatus, RunType
from runlab.store.folder import WorkspaceFolder

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-output" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def add_run(folder: WorkspaceFolder, experiment: str, run_id: str, *, status: RunStatus = RunStatus.COMPLETED,
            metrics: dict[str, list[float]] | None = None, tags: dict[str, str] | None = None,
            created_at: float | None = None, duration: float = 60.0, **kwargs: Any) -> str:
    """A run written straight to the store, with whole series per metric and a chosen status."""
    store = folder.store
    created = time.time() if created_at is None else created_at
    store.create_run(run_id, experiment, run_type=kwargs.pop("run_type", RunType.INTERACTIVE), status=RunStatus.RUNNING,
                     tags=tags, created_at=created, **kwargs)
    store.set_status(run_id, RunStatus.RUNNING, when=created + 1)
    if metrics:
        now = created + 1
        store.append_metrics(run_id, [
            MetricBatch(name=name, kind="scalar", steps=[None] * len(values),
                        times=[now + i for i in range(len(values))], values=list(values))
            for name, values in metrics.items()
        ])
    if status != RunStatus.RUNNING:
        store.set_status(run_id, status, when=created + 1 + duration,
                         error={"message": "ValueError: loss is NaN", "code": "ValueError"} if status == RunStatus.FAILED else None)
    return run_id


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """uvicorn serving ``app`` on 127.0.0.1 in a thread; :meth:`stop` ends streams and the thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off",
                                ws="none", timeout_graceful_shutdown=2, access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="studio-server", daemon=True)

    def start(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the studio server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.app.state.studio.stopping.set()
        self.server.should_exit = True
        self.thread.join(timeout=15)
        assert not self.thread.is_alive(), "the studio server did not stop"



def screenshot(pg: Any, name: str, full_page: bool = False) -> Path:
    """Save a screenshot as test output (test-output/screenshots/NAME.png)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    pg.screenshot(path=str(path), full_page=full_page)
    return path
