"""System metrics: what a run's processes do to the machine, sampled from outside them.

A :class:`SystemMonitor` is a thread that, every ``interval_s`` seconds, reads the process tree
of one pid with psutil (the script the agent started; for ``start_logging(system_metrics=True)``
this process) and each NVIDIA GPU through NVML, and hands the readings to a sink that logs them
as ordinary metric series under the reserved prefix ``sys/`` (``TrackedRun._log_system``):

=============================== ==============================================================
``sys/cpu_percent``             CPU time the tree used over the interval, in percent of one core
                                (200: two cores busy)
``sys/memory_rss_mb``           resident memory of the tree's processes, summed (MiB)
``sys/io_read_mb``,             bytes the tree read from and wrote to storage since it started
``sys/io_write_mb``             (MiB; page-cache hits are not reads)
``sys/open_files``              regular files the tree's processes hold open
``sys/processes``               processes in the tree
``sys/gpu<i>/utilization_percent``, ``memory_used_mb``, ``temperature_c``, ``power_w``:
                                each NVIDIA GPU of the machine, by NVML's index (nvidia-smi's),
                                device-wide: every run on the machine sees the same GPU numbers
=============================== ==============================================================

Why CPU *time* rather than psutil's per-process ``cpu_percent``: a process that starts and exits
between two samples (a data-loading worker, a ``subprocess.run``) would be missed by the latter.
Linux adds a waited-for child's CPU time and I/O to its parent's ``children_*`` times and I/O
counters, so the sum over the live processes of (own + waited children's) time counts every
process of the tree once, whether it is still running or not; the difference of two such sums
over the wall time between them is the tree's CPU use. I/O totals are the same sums, kept from
going back while an exited child is not yet waited for. What leaves the tree (a daemon that
re-parents itself to init) is no longer counted.

Reading costs the sampled processes nothing but the kernel's answers to ``/proc`` reads; psutil's
``oneshot()`` reads each process's stat files once per sample. The GPU library (nvidia-ml-py) is
imported when a monitor starts; without it, without a driver or without a GPU there are no GPU
series and the monitor says why in :attr:`SystemMonitor.gpu_note`; nothing fails.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import psutil

from runlab.core.names import SYSTEM_METRIC_PREFIX

log = logging.getLogger("runlab")

PREFIX = SYSTEM_METRIC_PREFIX
_MB = float(1 << 20)
STOP_JOIN_S = 5.0


@dataclass
class _Totals:
    when: float  # time.monotonic()
    cpu_s: float  # CPU seconds of the tree, waited-for children included


_READ_TRIES = 3


class ProcessTree:
    """Readings of the process tree rooted at ``pid``: the process and all its descendants."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._root = psutil.Process(pid)  # NoSuchProcess if it is already gone
        self._last: _Totals | None = None
        self._io_read = 0
        self._io_write = 0

    def members(self) -> list[psutil.Process] | None:
        """The root and its descendants now; None once the root is gone (or its pid was reused)."""
        try:
            children = self._root.children(recursive=True)
        except psutil.Error:  # NoSuchProcess (gone), ZombieProcess, AccessDenied
            return None
        return [self._root, *children]

    def start(self) -> None:
        """Take the baseline that the first sample's CPU percent is measured against."""
        taken = self._read_tree()
        if taken is not None:
            now, readings, consistent = taken
            self._last = _Totals(now, sum(r.cpu_s for r in readings)) if consistent else None

    def _read_tree(self) -> tuple[float, list[_ProcessReading], bool] | None:
        """Every member's reading, and whether their CPU sum can be trusted; None once the root is gone.

        Members are listed parents first. A process waited for (reaped) after its parent was read
        but before it was read itself is in neither reading: its whole CPU time would appear in the
        next sum as if spent in one interval (8,422 % was seen in CI). Such a read is retried.
        """
        for _ in range(_READ_TRIES):
            members = self.members()
            if members is None:
                return None
            now = time.monotonic()
            readings = [_read_process(p) for p in members]
            if not any(r.vanished for r in readings):
                return now, readings, True
        return now, readings, False

    def read(self) -> dict[str, float] | None:
        """One sample of the tree, or None once its root process is gone."""
        taken = self._read_tree()
        if taken is None:
            return None
        now, readings, consistent = taken
        alive = [r for r in readings if r.alive]
        if not self._root_is_current():  # exited (or its pid was reused) while we read: no sample
            return None
        # a zombie's CPU time and I/O stay its own until it is waited for, then they are its parent's
        cpu_s = sum(r.cpu_s for r in readings)
        sample: dict[str, float] = {}
        # an inconsistent sum gives no CPU percent for the interval it ends or the one it starts
        last, self._last = self._last, (_Totals(now, cpu_s) if consistent else None)
        if last is not None and consistent and now > last.when:
            # never below 0: a child that exited and is not waited for yet is out of both sums for a while
            sample[PREFIX + "cpu_percent"] = round(max(0.0, cpu_s - last.cpu_s) / (now - last.when) * 100.0, 2)
        sample[PREFIX + "memory_rss_mb"] = round(sum(r.rss for r in alive) / _MB, 3)
        self._io_read = max(self._io_read, sum(r.read_bytes for r in readings))
        self._io_write = max(self._io_write, sum(r.write_bytes for r in readings))
        sample[PREFIX + "io_read_mb"] = round(self._io_read / _MB, 3)
        sample[PREFIX + "io_write_mb"] = round(self._io_write / _MB, 3)
        sample[PREFIX + "open_files"] = float(sum(r.open_files for r in alive))
        sample[PREFIX + "processes"] = float(len(alive))
        return sample

    def _root_is_current(self) -> bool:
        try:
            return self._root.is_running() and self._root.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False


@dataclass
class _ProcessReading:
    alive: bool = False  # running (not a zombie): its memory and files count
    vanished: bool = False  # listed, then gone (waited for) before it could be read
    cpu_s: float = 0.0
    rss: int = 0
    read_bytes: int = 0
    write_bytes: int = 0
    open_files: int = 0


def _read_process(proc: psutil.Process) -> _ProcessReading:
    """What one process adds to the tree's sums. A process that exits while it is read, or
    whose files this user may not read, adds what could be read (nothing, when it is gone)."""
    out = _ProcessReading()
    try:
        with proc.oneshot():
            times = proc.cpu_times()
            out.cpu_s = times.user + times.system + times.children_user + times.children_system
            try:
                io = proc.io_counters()
                out.read_bytes, out.write_bytes = io.read_bytes, io.write_bytes
            except (psutil.AccessDenied, AttributeError):  # AttributeError: a platform without I/O counters
                pass
            if proc.status() == psutil.STATUS_ZOMBIE:
                return out
            out.rss = proc.memory_info().rss
            out.alive = True
            try:
                out.open_files = len(proc.open_files())
            except psutil.AccessDenied:
                pass
    except psutil.NoSuchProcess:  # gone, or a zombie (ZombieProcess is a NoSuchProcess): its time
        return _ProcessReading(vanished=True)  # is its parent's once waited for
    except psutil.AccessDenied:  # running, but not ours to read (a setuid child): counted, adds nothing
        out.alive = True
    return out


class GpuReader:
    """Readings of every NVIDIA GPU through NVML (nvidia-ml-py's ``pynvml``)."""

    FIELDS = ("utilization_percent", "memory_used_mb", "temperature_c", "power_w")

    def __init__(self, nvml: Any, handles: list[Any]) -> None:
        self._nvml = nvml
        self._handles = handles
        self._unsupported: set[tuple[int, str]] = set()

    @classmethod
    def open(cls, import_nvml: Callable[[], Any] | None = None) -> tuple["GpuReader | None", str]:
        """``(reader, note)``: a reader of the GPUs NVML sees, or None and why there is none
        (no nvidia-ml-py, no driver, no GPU). Never raises."""
        try:
            nvml = (import_nvml or _import_pynvml)()
        except ImportError:
            return None, "no GPU series: nvidia-ml-py (pynvml) is not installed"
        try:
            nvml.nvmlInit()
        except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...; an OSError of ctypes
            return None, f"no GPU series: NVML is not available here ({exc})"
        try:
            count = int(nvml.nvmlDeviceGetCount())
            handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            names = [_text(nvml.nvmlDeviceGetName(h)) for h in handles]
        except Exception as exc:
            _shutdown(nvml)
            return None, f"no GPU series: NVML could not list the GPUs ({exc})"
        if not handles:
            _shutdown(nvml)
            return None, "no GPU series: NVML sees no GPU"
        listed = ", ".join(f"gpu{i} {name}" for i, name in enumerate(names))
        return cls(nvml, handles), f"{len(handles)} NVIDIA GPU(s): {listed}"

    @property
    def count(self) -> int:
        """How many GPUs are read."""
        return len(self._handles)

    def read(self) -> dict[str, float]:
        nvml = self._nvml
        readers: dict[str, Callable[[Any], float]] = {
            "utilization_percent": lambda h: float(nvml.nvmlDeviceGetUtilizationRates(h).gpu),
            "memory_used_mb": lambda h: round(nvml.nvmlDeviceGetMemoryInfo(h).used / _MB, 3),
            "temperature_c": lambda h: float(nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU)),
            "power_w": lambda h: round(nvml.nvmlDeviceGetPowerUsage(h) / 1000.0, 3),  # milliwatts
        }
        sample: dict[str, float] = {}
        for index, handle in enumerate(self._handles):
            for field in self.FIELDS:
                if (index, field) in self._unsupported:
                    continue
                try:
                    sample[f"{PREFIX}gpu{index}/{field}"] = readers[field](handle)
                except Exception as exc:
                    if type(exc).__name__ == "NVMLError_NotSupported":  # this GPU never has it: stop asking
                        self._unsupported.add((index, field))
        return sample

    def close(self) -> None:
        _shutdown(self._nvml)


def _import_pynvml() -> Any:
    import pynvml  # type: ignore[import-untyped]  # nvidia-ml-py; ctypes over libnvidia-ml.so

    return pynvml


def _shutdown(nvml: Any) -> None:
    try:
        nvml.nvmlShutdown()
    except Exception:
        pass


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class SystemMonitor:
    """A thread that samples ``pid``'s process tree (and the GPUs) every ``interval_s`` seconds and
    passes each sample to ``sink`` (a dict of ``sys/...`` name -> float). It ends with :meth:`stop`
    or by itself once the process is gone; it never raises into its owner."""

    def __init__(self, pid: int, sink: Callable[[Mapping[str, float]], None], interval_s: float, *,
                 gpus: bool = True, name: str = "runlab-system-metrics",
                 open_gpus: Callable[[], tuple[GpuReader | None, str]] = GpuReader.open,
                 on_ready: Callable[[str], None] | None = None) -> None:
        """``on_ready`` is called from the thread once the GPUs are opened (or not), with
        :attr:`gpu_note`, which says which GPUs are read or why none is."""
        if not interval_s > 0:
            raise ValueError(f"interval_s must be positive, got {interval_s!r}")
        self.pid = pid
        self.interval_s = float(interval_s)
        self._sink = sink
        self._gpus_wanted = gpus
        self._open_gpus = open_gpus
        self._on_ready = on_ready
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._ready = threading.Event()
        self.gpu_note = "GPUs not read" if not gpus else ""
        self.samples = 0
        self.failures = 0

    def start(self) -> "SystemMonitor":
        self._thread.start()
        return self

    def wait_ready(self, timeout_s: float = 10.0) -> bool:
        """Wait until the first reading is taken (the baseline, and the GPUs opened or not)."""
        return self._ready.wait(timeout_s)

    def stop(self, timeout_s: float = STOP_JOIN_S) -> None:
        """Stop sampling; returns once the thread ended (or after ``timeout_s``)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        gpu: GpuReader | None = None
        try:
            try:
                tree = ProcessTree(self.pid)
                tree.start()
            except psutil.Error:
                return  # the process is gone before the first sample
            if self._gpus_wanted:
                gpu, self.gpu_note = self._open_gpus()
            self._ready.set()
            if self._on_ready is not None:
                try:
                    self._on_ready(self.gpu_note)
                except Exception as exc:
                    log.debug("runlab: system metrics: on_ready failed: %r", exc)
            due = time.monotonic() + self.interval_s
            while not self._stop.wait(max(0.0, due - time.monotonic())):
                now = time.monotonic()
                due = max(due + self.interval_s, now)  # a fixed rate; a late sample does not shift the rest
                try:
                    sample = tree.read()
                    if sample is None:
                        return  # the process ended
                    if gpu is not None:
                        sample.update(gpu.read())
                    self._sink(sample)
                    self.samples += 1
                except Exception as exc:  # never let sampling break what it watches
                    self.failures += 1
                    if self.failures == 1:
                        log.warning("runlab: a system metrics sample of pid %d failed (%r); sampling goes on",
                                    self.pid, exc)
        finally:
            self._ready.set()
            if gpu is not None:
                gpu.close()


def is_system_metric(name: str) -> bool:
    return name.startswith(PREFIX)


__all__ = ["GpuReader", "PREFIX", "ProcessTree", "SystemMonitor", "is_system_metric"]
