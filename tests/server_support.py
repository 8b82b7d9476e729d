"""A real ``runlab server`` for tests: a subprocess on 127.0.0.1, stopped (or killed) by its own pid, and
the agents it started stopped by theirs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``runlab server --store URL --artifacts PATH`` in a process of its own (a new session, so that a kill
    takes its workers too). ``start`` waits until it answers; ``kill`` is a SIGKILL; ``restart`` starts
    it again on the same port."""

    def __init__(self, store_url: str, artifacts: Path, env: dict[str, str], *, auth: bool = False,
                 workers: int = 1, extra: list[str] | None = None) -> None:
        self.store_url = store_url
        self.artifacts = Path(artifacts)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**env, "RUNLAB_STORE_URL": store_url}
        self.auth = auth
        self.workers = workers
        self.extra = extra or []
        self.artifacts_arg: str | None = None  # --artifacts s3://...: then self.artifacts is the --state folder
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.artifacts.parent / f"server-{self.port}.log"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "runlab.cli", "server", "--artifacts", self.artifacts_arg or str(self.artifacts), "--port",
               str(self.port), "--workers", str(self.workers), *self.extra]
        return cmd if self.auth else [*cmd, "--no-auth"]

    def start(self, timeout_s: float = 60) -> "ServerProcess":
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.command(), env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"runlab server exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"runlab server did not answer within {timeout_s} s:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the server and its workers (its process group), as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.stop_agents()

    def restart(self) -> "ServerProcess":
        self.kill()
        return self.start()

    def stop_agents(self) -> None:
        for state_file in (self.artifacts / "agents").glob("*.json"):
            try:
                os.kill(json.loads(state_file.read_text())["pid"], signal.SIGKILL)
            except (OSError, ValueError, KeyError):
                pass

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *_exc: Any) -> None:
        self.stop()
