"""System metrics of a submitted run, sampled by its agent from outside the script.

The agent starts a :class:`RunMonitor` when the script starts and stops it when the script exits,
before the run's end is written: the samples go through the tracking layer's usual path (buffer,
flusher, journal when the store is busy) as ``sys/...`` series of the run, written by the agent
as a non-owner of the run (tracking.sysmetrics says what is sampled).
"""

from __future__ import annotations

from typing import Callable

from runlab.core.settings import RUNLAB_SYSTEM_METRICS_INTERVAL, load_settings
from runlab.store.folder import WorkspaceFolder
from runlab.tracking.run import TrackedRun
from runlab.tracking.sysmetrics import SystemMonitor

FLUSH_TIMEOUT_S = 10.0


class RunMonitor:
    """Samples the process tree of ``pid`` into run ``run_id`` every ``interval_s`` seconds."""

    def __init__(self, folder: WorkspaceFolder, run_id: str, pid: int, interval_s: float,
                 note: Callable[[str], None]) -> None:
        self.run = TrackedRun(folder, run_id)  # not owned: the agent ends the run, not this handle
        self._note = note
        self.monitor = SystemMonitor(pid, self.run._log_system, interval_s, name=f"system-metrics-{run_id}",
                                     on_ready=self._ready)
        self.interval_s = interval_s

    @classmethod
    def start(cls, folder: WorkspaceFolder, run_id: str, pid: int, note: Callable[[str], None],
              interval_s: float | None = None) -> "RunMonitor | None":
        """A running monitor, or None when the interval is 0 (said in ``note``). ``interval_s``: the one
        the run was submitted with (its submitter's ``RUNLAB_SYSTEM_METRICS_INTERVAL``); None: this
        process's setting."""
        interval = load_settings().system_metrics_interval_s
        if interval_s is not None:
            try:  # the setting's own rule
                interval = RUNLAB_SYSTEM_METRICS_INTERVAL.parse(str(interval_s))
            except ValueError:  # a definition written by hand or by another client: the run still runs
                note(f"system metrics: the run's interval {interval_s!r} is not a number of seconds >= 0; "
                     f"every {interval:g} s instead (this agent's RUNLAB_SYSTEM_METRICS_INTERVAL)")
        if interval == 0:
            note("system metrics: off (RUNLAB_SYSTEM_METRICS_INTERVAL=0)")
            return None
        try:
            monitor = cls(folder, run_id, pid, interval, note)
            monitor.monitor.start()
        except Exception as exc:  # the run goes on without them
            note(f"system metrics: not sampled ({type(exc).__name__}: {exc})")
            return None
        return monitor

    def _ready(self, gpu_note: str) -> None:
        self._note(f"system metrics every {self.interval_s:g} s: sys/cpu_percent, sys/memory_rss_mb, "
                   f"sys/io_read_mb, sys/io_write_mb, sys/open_files, sys/processes; {gpu_note}")

    def stop(self) -> None:
        """Stop sampling and write what is buffered (to the store, or the journal when it is busy)."""
        self.monitor.stop()
        if self.run._logger_obj is not None:  # None: no sample was taken
            self.run._logger_obj.close(FLUSH_TIMEOUT_S)


__all__ = ["RunMonitor"]
