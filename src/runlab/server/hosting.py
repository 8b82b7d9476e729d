"""``runlab server``'s app: the studio's app over a hosted workspace, with auth, and a watcher.

:class:`ServerConfig` is what the command line says; :func:`create_server_app` builds the app from it.
With ``--workers N`` uvicorn starts N processes that each import :func:`app_from_environment`, which
reads the config from ``RUNLAB_SERVER_CONFIG`` (JSON; the store URL is in ``RUNLAB_STORE_URL``, never in
a file). Several processes, on one machine or several, can serve one store: everything they share is
in the store and the artifacts folder.

The watcher (a thread per process): every few seconds, runs whose process stopped heartbeating are
marked Failed, and a target whose agent died while runs wait gets a new agent (the same checks the
studio makes when it is viewed, without anyone viewing it).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from runlab.store.hosted import STORE_URL_ENV, HostedWorkspace, S3Location

CONFIG_ENV = "RUNLAB_SERVER_CONFIG"
WATCH_INTERVAL_S = 5.0
log = logging.getLogger("runlab.server")


@dataclass
class ServerConfig:
    artifacts: str
    name: str | None = None
    host: str = "127.0.0.1"
    port: int = 8765
    auth: bool = True
    allowed_hosts: list[str] = field(default_factory=list)
    https: bool = False
    url: str | None = None  # how agents and runs reach this server (default: from host and port)
    watch: bool = True
    agents: bool = True  # start the agents of submitted runs beside the server (False: agents elsewhere)
    state: str | None = None  # with artifacts in S3: the server's folder here (default under $RUNLAB_HOME)
    s3_endpoint_url: str | None = None
    s3_region: str | None = None

    @property
    def s3(self) -> S3Location | None:
        if not self.artifacts.startswith("s3://"):
            return None
        from runlab.store.s3_artifacts import parse_s3_url

        bucket, prefix = parse_s3_url(self.artifacts)
        return S3Location(f"s3://{bucket}/{prefix}".rstrip("/"), self.s3_endpoint_url, self.s3_region)

    @property
    def folder(self) -> Path:
        """The server's folder on this machine: the artifacts folder, or the state folder of an S3 server."""
        s3 = self.s3
        if s3 is None:
            return Path(self.artifacts)
        if self.state:
            return Path(self.state)
        from runlab.core.settings import load_settings

        return load_settings().home / "server-state" / s3.url[len("s3://"):]

    @property
    def public_url(self) -> str:
        if self.url:
            return self.url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"{'https' if self.https else 'http'}://{host}:{self.port}"

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> "ServerConfig":
        return cls(**json.loads(os.environ[CONFIG_ENV]))


def open_hosted(store_url: str, config: ServerConfig, *, create: bool = True) -> HostedWorkspace:
    folder = HostedWorkspace(store_url, config.folder, name=config.name, create=create,
                             server_url=config.public_url, s3=config.s3)
    folder.starts_agents = config.agents
    return folder


def auth_config(folder: HostedWorkspace, config: ServerConfig) -> Any:
    from runlab.server.auth import AuthConfig, allowed_hosts_for
    from runlab.store.sql.tokens import TokenStore

    return AuthConfig(enabled=config.auth, tokens=TokenStore(folder.store.engine) if config.auth else None,
                      allowed_hosts=allowed_hosts_for(config.host, config.allowed_hosts), https=config.https)


def create_server_app(store_url: str, config: ServerConfig) -> FastAPI:
    from runlab.server.app import create_app

    folder = open_hosted(store_url, config)
    app = create_app(folder, auth=auth_config(folder, config))
    if config.watch:
        start_watcher(app)
    return app


def app_from_environment() -> FastAPI:
    """The app of one worker process (``uvicorn --factory``): config from the environment."""
    return create_server_app(os.environ[STORE_URL_ENV], ServerConfig.from_env())


def start_watcher(app: FastAPI, interval_s: float = WATCH_INTERVAL_S) -> threading.Thread:
    state = app.state.studio

    def watch() -> None:
        while not state.stopping.wait(interval_s):
            try:
                state.reap()
            except Exception as exc:  # noqa: BLE001 - a store that is down now is tried again next time
                log.warning("runlab server: watching runs and agents failed this time: %s", exc)

    thread = threading.Thread(target=watch, name="runlab-server-watcher", daemon=True)
    thread.start()
    return thread


__all__ = ["CONFIG_ENV", "ServerConfig", "app_from_environment", "create_server_app", "open_hosted", "start_watcher"]
