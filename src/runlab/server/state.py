"""What every request of one studio app shares: the workspace, its queries, and the settings."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import cast

from fastapi import Request

from runlab.core.settings import Settings, load_settings
from runlab.execution.targets import restart_dead_agents
from runlab.store.artifacts import LocalArtifactStore
from runlab.store.folder import WorkspaceFolder
from runlab.store.sql.queries import StudioQueries
from runlab.store.sql.store import SqlStore
from runlab.tracking import delivery  # noqa: F401 - installs WorkspaceFolder.journal_replayer: a run is not presumed lost while its end waits in a journal

DEFAULT_POLL_INTERVAL_S = 0.5  # how often live streams look for new metrics, log lines and status
DEFAULT_STREAM_MAX_S = 1800.0  # a live stream ends after this; the page reconnects where it was


@dataclass
class StudioState:
    """The workspace a studio serves, and how its live streams poll."""

    folder: WorkspaceFolder
    settings: Settings
    poll_interval_s: float = DEFAULT_POLL_INTERVAL_S
    stream_max_s: float = DEFAULT_STREAM_MAX_S
    stopping: threading.Event = field(default_factory=threading.Event)
    _queries: StudioQueries | None = None

    @property
    def store(self) -> SqlStore:
        return self.folder.store

    @property
    def artifacts(self) -> LocalArtifactStore:
        return self.folder.artifacts

    @property
    def queries(self) -> StudioQueries:
        if self._queries is None:
            self._queries = StudioQueries(self.folder.store)
        return self._queries

    def reap(self) -> None:
        """Mark Failed the active runs whose process died, and start the agent of a target whose
        agent died with runs queued (each at most every few seconds)."""
        self.store.reap_stale_runs(self.settings.heartbeat_timeout_s, throttle=True)
        restart_dead_agents(self.folder)

    @classmethod
    def for_folder(cls, folder: WorkspaceFolder, *, poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
                   stream_max_s: float = DEFAULT_STREAM_MAX_S) -> "StudioState":
        return cls(folder=folder, settings=load_settings(), poll_interval_s=poll_interval_s,
                   stream_max_s=stream_max_s)


def get_state(request: Request) -> StudioState:
    """FastAPI dependency: the studio state of the app that serves ``request``."""
    return cast(StudioState, request.app.state.studio)
