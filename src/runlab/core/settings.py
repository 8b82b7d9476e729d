"""Settings: every ``RUNLAB_*`` environment variable, declared once with its type and default.

Nothing is read at import time: call :func:`load_settings` (cheap) where a value is needed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Generic, TypeVar

from runlab.core.errors import ConfigError

T = TypeVar("T")

DEFAULT_FLUSH_INTERVAL_S = 1.0
DEFAULT_FLUSH_BATCH_POINTS = 200_000
DEFAULT_HEARTBEAT_INTERVAL_S = 10.0
DEFAULT_HEARTBEAT_TIMEOUT_S = 120.0
DEFAULT_SQLITE_BUSY_TIMEOUT_S = 5.0
# Outlasts every lock runlab's own processes hold (a flush, a migration, a sync take seconds at most).
DEFAULT_STORE_RETRY_TIMEOUT_S = 120.0
DEFAULT_SYSTEM_METRICS_INTERVAL_S = 5.0


@dataclass(frozen=True)
class EnvVar(Generic[T]):
    name: str
    parse: Callable[[str], T]
    default: T
    help: str

    def read(self, environ: "os._Environ[str] | dict[str, str] | None" = None) -> T:
        env = os.environ if environ is None else environ
        raw = env.get(self.name)
        if raw is None or raw == "":
            return self.default
        try:
            return self.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"environment variable {self.name}={raw!r} is invalid: {exc}") from exc


def _path(raw: str) -> Path:
    return Path(raw).expanduser()


def _optional_str(raw: str) -> str | None:
    return raw


def _positive_float(raw: str) -> float:
    value = float(raw)
    if value <= 0:
        raise ValueError("must be a positive number of seconds")
    return value


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if not value >= 0 or value == float("inf"):  # NaN fails the first test
        raise ValueError("must be a number of seconds, 0 or more")
    return value


RUNLAB_HOME = EnvVar("RUNLAB_HOME", _path, Path("~/.runlab").expanduser(),
                     "where workspaces, the workspace registry and offline runs live")
RUNLAB_WORKSPACE = EnvVar[str | None]("RUNLAB_WORKSPACE", _optional_str, None,
                                      "folder of the workspace of a submitted run (set by the agent)")
RUNLAB_SERVER = EnvVar[str | None]("RUNLAB_SERVER", _optional_str, None,
                                   "URL of the runlab server a submitted run reports to (set by the agent; "
                                   "RUNLAB_WORKSPACE is then the workspace's id, RUNLAB_TOKEN the run's own token)")
RUNLAB_RUN_ID = EnvVar[str | None]("RUNLAB_RUN_ID", _optional_str, None,
                                   "id of the submitted run that Run.get_context() returns (set by the agent)")
RUNLAB_RUN_OWNER = EnvVar("RUNLAB_RUN_OWNER", str, "",
                          "'agent' when an agent owns the run's final status (set by the agent)")
RUNLAB_OFFLINE_DIR = EnvVar[Path | None]("RUNLAB_OFFLINE_DIR", _path, None,
                                         "where offline runs are recorded (default: $RUNLAB_HOME/offline)")
RUNLAB_FLUSH_INTERVAL = EnvVar("RUNLAB_FLUSH_INTERVAL", _positive_float, DEFAULT_FLUSH_INTERVAL_S,
                               "seconds between two writes of buffered metrics")
RUNLAB_HEARTBEAT_TIMEOUT = EnvVar("RUNLAB_HEARTBEAT_TIMEOUT", _positive_float, DEFAULT_HEARTBEAT_TIMEOUT_S,
                                  "seconds without a heartbeat after which an active run is marked Failed")
RUNLAB_SQLITE_BUSY_TIMEOUT = EnvVar("RUNLAB_SQLITE_BUSY_TIMEOUT", _positive_float, DEFAULT_SQLITE_BUSY_TIMEOUT_S,
                                    "seconds a write waits for a locked SQLite database before journaling")
RUNLAB_STORE_RETRY_TIMEOUT = EnvVar("RUNLAB_STORE_RETRY_TIMEOUT", _positive_float, DEFAULT_STORE_RETRY_TIMEOUT_S,
                                    "seconds a run handle's own writes (start_logging, tags, properties, the "
                                    "final status) retry a busy or unavailable store before raising")
RUNLAB_STUDIO_URL = EnvVar("RUNLAB_STUDIO_URL", str, "http://127.0.0.1:8765",
                           "base URL of the studio that run.get_portal_url() points to")

RUNLAB_SECRETS_FILE = EnvVar[Path | None]("RUNLAB_SECRETS_FILE", _path, None,
                                          "JSON file of secrets run.get_secret() reads after the environment "
                                          "(default: <workspace folder>/secrets.json)")

RUNLAB_SYSTEM_METRICS_INTERVAL = EnvVar("RUNLAB_SYSTEM_METRICS_INTERVAL", _non_negative_float,
                                        DEFAULT_SYSTEM_METRICS_INTERVAL_S,
                                        "seconds between two samples of a run's system metrics (sys/...); 0: none")

RUNLAB_RAY_LOST_TIMEOUT = EnvVar("RUNLAB_RAY_LOST_TIMEOUT", _positive_float, 60.0,
                                 "seconds a Ray target's agent keeps trying to reach a cluster that does not "
                                 "answer before it marks the cluster's runs Failed")

ALL_ENV_VARS: tuple[EnvVar[object], ...] = (
    RUNLAB_HOME, RUNLAB_WORKSPACE, RUNLAB_SERVER, RUNLAB_RUN_ID, RUNLAB_RUN_OWNER, RUNLAB_OFFLINE_DIR,  # type: ignore[assignment]
    RUNLAB_FLUSH_INTERVAL, RUNLAB_HEARTBEAT_TIMEOUT, RUNLAB_SQLITE_BUSY_TIMEOUT, RUNLAB_STORE_RETRY_TIMEOUT,
    RUNLAB_STUDIO_URL, RUNLAB_SYSTEM_METRICS_INTERVAL, RUNLAB_SECRETS_FILE, RUNLAB_RAY_LOST_TIMEOUT,
)


@dataclass(frozen=True)
class Settings:
    home: Path
    flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S
    flush_batch_points: int = DEFAULT_FLUSH_BATCH_POINTS
    heartbeat_interval_s: float = DEFAULT_HEARTBEAT_INTERVAL_S
    heartbeat_timeout_s: float = DEFAULT_HEARTBEAT_TIMEOUT_S
    studio_url: str = "http://127.0.0.1:8765"
    offline_dir: Path | None = None
    sqlite_busy_timeout_s: float = DEFAULT_SQLITE_BUSY_TIMEOUT_S
    store_retry_timeout_s: float = DEFAULT_STORE_RETRY_TIMEOUT_S
    system_metrics_interval_s: float = DEFAULT_SYSTEM_METRICS_INTERVAL_S  # 0: no system metrics

    @property
    def registry_path(self) -> Path:
        return self.home / "workspaces.json"

    @property
    def default_workspaces_dir(self) -> Path:
        return self.home / "workspaces"

    @property
    def environments_dir(self) -> Path:
        """Built environments: one cache per machine, shared by all workspaces."""
        return self.home / "envs"

    @property
    def data_cache_dir(self) -> Path:
        """Run inputs' files (content-addressed) and their read-only views: shared by all workspaces."""
        return self.home / "datacache"

    @property
    def offline_root(self) -> Path:
        return self.offline_dir if self.offline_dir is not None else self.home / "offline"


def load_settings() -> Settings:
    timeout = RUNLAB_HEARTBEAT_TIMEOUT.read()
    return Settings(
        home=RUNLAB_HOME.read(),
        flush_interval_s=RUNLAB_FLUSH_INTERVAL.read(),
        heartbeat_timeout_s=timeout,
        heartbeat_interval_s=min(DEFAULT_HEARTBEAT_INTERVAL_S, timeout / 4),
        studio_url=RUNLAB_STUDIO_URL.read().rstrip("/"),
        offline_dir=RUNLAB_OFFLINE_DIR.read(),
        sqlite_busy_timeout_s=RUNLAB_SQLITE_BUSY_TIMEOUT.read(),
        store_retry_timeout_s=RUNLAB_STORE_RETRY_TIMEOUT.read(),
        system_metrics_interval_s=RUNLAB_SYSTEM_METRICS_INTERVAL.read(),
    )

