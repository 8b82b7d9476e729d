"""Distributed launch on the local pool: one run, several processes, torch.distributed's variables.

``ScriptRunConfig(distributed_job_config=PyTorchConfiguration(process_count=N))`` records the job
configuration in the run's definition; :func:`process_count` checks it at submit (the local pool is
one machine: ``node_count`` 1; ``process_count`` 1 to this machine's cores; MPI and TensorFlow jobs
of more than one process are refused) and says how many processes the run starts.

A run of N > 1 processes is started by the agent as *one* process group whose leader is this
module's **launcher** (``python -m runlab.execution.distributed``), so that everything the agent
does to a script (cancel's SIGTERM then SIGKILL to the group, the kill of what is left when the
leader exits, the watchdog, system metrics of the leader's process tree) covers every rank. The
launcher starts rank ``i`` (0 to N-1), in its group, with ``RANK=LOCAL_RANK=i``, ``WORLD_SIZE=N``,
``NODE_RANK=0``, ``MASTER_ADDR=127.0.0.1`` and ``MASTER_PORT`` (a free port), copies each line the
ranks write to its own stdout or stderr prefixed ``[rank i] `` (rank 0 too), and (with ``--rank-logs``,
as the agent starts it) also unprefixed to that rank's own file, ``azureml-logs/70_driver_log_<i>.txt``
as Azure writes them beside the combined ``70_driver_log.txt``, and waits for all:

- every rank exits 0: it exits 0;
- a rank fails (the first one seen exiting non-zero): the others get SIGTERM, then SIGKILL after
  :data:`RANK_GRACE_S`; it writes the failed rank, its exit code and the end of its stderr to the
  status file the agent named and exits non-zero, so that the run ends Failed naming that rank;
- SIGTERM to the group (cancel, ``max_run_duration_seconds``): the ranks got it too; it waits for them.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import IO, Any, Mapping, Sequence

from runlab.core.errors import NotSupportedError, UserError
from runlab.execution.processes import parent_death_signal

__all__ = ["launcher_argv", "process_count", "rank_log_name", "rank_variables", "read_status", "threads_per_rank"]

MASTER_ADDR = "127.0.0.1"
RANK_GRACE_S = 10.0  # a failed rank's peers get this long after SIGTERM before SIGKILL
POLL_S = 0.05
TAIL_LINES = 30
MAX_LINE = 65536
DRAIN_READS = 64
_CLASSES = {"PyTorch": "PyTorchConfiguration", "Mpi": "MpiConfiguration", "TensorFlow": "TensorflowConfiguration"}


def machine_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def process_count(job_config: Any, node_count: Any = 1, *, cores: int | None = None) -> int:
    """How many processes a run of this ``distributedJobConfig`` (its recorded dict, or None) starts on
    the local pool; raises UserError (bad numbers) or NotSupportedError (more than this pool can do)."""
    cores = machine_cores() if cores is None else cores
    _check_nodes("run_config.node_count", node_count)
    if not isinstance(job_config, Mapping):
        return 1  # none, or an object runlab does not know (recorded as its repr): one process
    kind = job_config.get("type")
    _check_nodes(f"{_CLASSES.get(str(kind), 'distributed_job_config')} node_count", job_config.get("nodeCount", 1))
    if kind == "PyTorch":
        count = job_config.get("process_count")
        if count is None:  # Azure: one process per node
            return 1
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise UserError(f"PyTorchConfiguration(process_count={count!r}): give a whole number of processes, "
                            f"1 to {cores} (this machine's cores)", process_count=count)
        if count > cores:
            raise UserError(f"PyTorchConfiguration(process_count={count}) asks for more processes than this "
                            f"machine's {cores} cores: give at most {cores}", process_count=count, limit=cores)
        return count
    if kind == "Mpi":
        per_node = job_config.get("process_count_per_node", 1)
        if per_node != 1:
            raise NotSupportedError(f"MpiConfiguration(process_count_per_node={per_node!r}) is not supported: "
                                    "runlab starts no MPI job; use PyTorchConfiguration(process_count=N) for "
                                    "torch.distributed, or leave process_count_per_node at 1 (one process)")
    elif kind == "TensorFlow":
        workers, servers = job_config.get("worker_count", 1), job_config.get("parameter_server_count", 1)
        if workers != 1 or servers != 1:
            raise NotSupportedError(f"TensorflowConfiguration(worker_count={workers!r}, parameter_server_count="
                                    f"{servers!r}) is not supported: runlab starts no TensorFlow cluster; leave "
                                    "both at 1 (one process) or use PyTorchConfiguration(process_count=N)")
    return 1


def _check_nodes(what: str, count: Any) -> None:
    if count is None or count == 1:
        return
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise UserError(f"{what}={count!r}: give a whole number of nodes (1 on the local pool)")
    raise NotSupportedError(f"{what}={count}: the local pool is one machine, so node_count must be 1 (put the "
                            "processes on it with PyTorchConfiguration(process_count=N)); a Ray target will "
                            "take more nodes")


def threads_per_rank(threads_per_run: int, ranks: int) -> int:
    """The run's thread allotment shared among its ranks (at least one each)."""
    return max(1, threads_per_run // max(1, ranks))


def rank_variables(rank: int, world_size: int, master_port: int) -> dict[str, str]:
    """torch.distributed's ``env://`` variables for ``rank`` on this one machine, as Azure sets them."""
    return {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world_size),
            "LOCAL_WORLD_SIZE": str(world_size), "NODE_RANK": "0", "GROUP_RANK": "0",
            "MASTER_ADDR": MASTER_ADDR, "MASTER_PORT": str(master_port)}


def rank_log_name(rank: int) -> str:
    """The run file of one rank's output (Azure's per-process driver log)."""
    return f"azureml-logs/70_driver_log_{rank}.txt"


def launcher_argv(ranks: int, status_path: Path, argv: Sequence[str],
                  rank_logs: Sequence[Path] | None = None) -> list[str]:
    """The command that starts ``argv`` as ``ranks`` processes (the agent's interpreter runs it);
    ``rank_logs``: one file per rank that gets that rank's stdout and stderr lines, unprefixed."""
    logs: list[str] = []
    if rank_logs is not None:
        if len(rank_logs) != ranks:
            raise ValueError(f"{len(rank_logs)} rank logs for {ranks} ranks")
        logs = ["--rank-logs", json.dumps([str(p) for p in rank_logs])]
    return [sys.executable, "-m", "runlab.execution.distributed", "--ranks", str(ranks),
            "--status", str(status_path), *logs, "--", *argv]


def read_status(status_path: Path) -> dict[str, Any] | None:
    """What the launcher wrote of a failed rank (``rank``, ``exit_code``, ``stderr_tail``), or None."""
    try:
        data = json.loads(status_path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((MASTER_ADDR, 0))
        return int(sock.getsockname()[1])


# -- the launcher ------------------------------------------------------------------------------


class _Stream:
    """One pipe of one rank, copied line by line (whole lines, so ranks never mix within a line)."""

    def __init__(self, rank: int, pipe: IO[bytes], out: IO[bytes], tail: deque[str] | None,
                 log: IO[bytes] | None = None) -> None:
        self.prefix = f"[rank {rank}] ".encode()
        self.pipe, self.out, self.tail, self.log = pipe, out, tail, log
        self.partial = b""

    def read(self) -> bool:
        """Copy what the pipe holds; False at end of file."""
        data = os.read(self.pipe.fileno(), 65536)
        if not data:
            self.close()
            return False
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        if len(self.partial) > MAX_LINE:  # a very long line: out in pieces
            lines.append(self.partial)
            self.partial = b""
        self._write(lines)
        return True

    def close(self) -> None:
        if self.partial:
            self._write([self.partial])
            self.partial = b""
        self.pipe.close()

    def _write(self, lines: list[bytes]) -> None:
        if not lines:
            return
        self.out.write(b"".join(self.prefix + line + b"\n" for line in lines))
        self.out.flush()
        if self.log is not None:
            try:
                self.log.write(b"".join(line + b"\n" for line in lines))
            except OSError:  # the rank's own file is a copy: the combined log has every line
                pass
        if self.tail is not None:
            self.tail.extend(line.decode(errors="replace") + "\n" for line in lines)


def launch(ranks: int, argv: Sequence[str], status_path: Path, rank_logs: Sequence[Path] | None = None) -> int:
    """Run ``argv`` as ``ranks`` processes to the end (see the module docstring); the exit code."""
    terminating = False

    def on_term(_sig: int, _frame: Any) -> None:
        nonlocal terminating
        terminating = True  # the ranks got it too (same group): wait for them

    signal.signal(signal.SIGTERM, on_term)
    port = free_port()
    out, err = sys.stdout.buffer, sys.stderr.buffer
    out.write(f"runlab: {ranks} processes (RANK 0 to {ranks - 1}), MASTER_ADDR={MASTER_ADDR} "
              f"MASTER_PORT={port}; each line is prefixed [rank i]\n".encode())
    out.flush()
    before_exec = parent_death_signal()
    procs: list[subprocess.Popen[bytes]] = []
    tails: list[deque[str]] = []
    streams: dict[int, _Stream] = {}
    logs: list[IO[bytes]] = []
    for path in rank_logs or ():
        try:
            logs.append(open(path, "ab", buffering=0))
        except OSError as exc:
            err.write(f"runlab: could not open {path} (that rank's output is in the combined log only): {exc}\n"
                      .encode())
            logs.append(open(os.devnull, "ab", buffering=0))
    for rank in range(ranks):
        proc = subprocess.Popen(list(argv), env={**os.environ, **rank_variables(rank, ranks, port)},
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                preexec_fn=before_exec)
        procs.append(proc)
        tails.append(deque(maxlen=TAIL_LINES))
        assert proc.stdout is not None and proc.stderr is not None
        log = logs[rank] if logs else None
        streams[proc.stdout.fileno()] = _Stream(rank, proc.stdout, out, None, log)
        streams[proc.stderr.fileno()] = _Stream(rank, proc.stderr, err, tails[rank], log)
    failed: int | None = None
    term_at: float | None = None
    killed = False
    while True:
        if streams:
            ready, _, _ = select.select(list(streams), [], [], POLL_S)
            for fd in ready:
                if not streams[fd].read():
                    del streams[fd]
        else:
            time.sleep(POLL_S)
        codes = [proc.poll() for proc in procs]
        if failed is None:
            failed = next((rank for rank, code in enumerate(codes) if code not in (None, 0)), None)
            if failed is not None and not terminating:
                out.write(f"runlab: rank {failed} exited with code {codes[failed]}: stopping the other ranks "
                          "(SIGTERM)\n".encode())
                out.flush()
        if failed is not None and term_at is None:
            term_at = time.monotonic()
            for proc in procs:
                if proc.returncode is None:
                    _signal(proc, signal.SIGTERM)
        if term_at is not None and not killed and time.monotonic() - term_at > RANK_GRACE_S:
            killed = True
            for proc in procs:
                if proc.returncode is None:
                    _signal(proc, signal.SIGKILL)
        if all(code is not None for code in codes):
            break
    for stream in streams.values():  # what is left in the pipes of exited ranks (not what an escapee writes)
        for _ in range(DRAIN_READS):
            if not select.select([stream.pipe.fileno()], [], [], 0)[0] or not stream.read():
                break
        if not stream.pipe.closed:
            stream.close()
    for log in logs:
        log.close()
    if failed is None:
        return 0
    code = procs[failed].returncode
    assert code is not None
    status = {"rank": failed, "exit_code": code, "ranks": ranks, "stderr_tail": "".join(tails[failed])}
    try:
        status_path.write_text(json.dumps(status))
    except OSError as exc:
        err.write(f"runlab: could not write {status_path}: {exc}\n".encode())
    return 128 - code if code < 0 else code


def _signal(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.kill(proc.pid, sig)
    except OSError:
        pass


def main(args: list[str]) -> int:
    usage = ("usage: python -m runlab.execution.distributed --ranks N --status FILE [--rank-logs JSON-LIST-OF-FILES] "
             "-- COMMAND... (started by the agent)")
    try:
        split = args.index("--")
        options = dict(zip(args[:split:2], args[1:split:2]))
        ranks, status = int(options["--ranks"]), Path(options["--status"])
        command = args[split + 1:]
        rank_logs = [Path(p) for p in json.loads(options["--rank-logs"])] if "--rank-logs" in options else None
    except (ValueError, KeyError, TypeError):
        print(usage, file=sys.stderr)
        return 2
    if ranks < 1 or not command or (rank_logs is not None and len(rank_logs) != ranks):
        print(usage, file=sys.stderr)
        return 2
    return launch(ranks, command, status, rank_logs)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
