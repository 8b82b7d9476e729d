"""A Ray cluster of its own for the tests: a head on 127.0.0.1 with a temp dir of its own, stopped by pid.

Never ``ray stop``: it kills every Ray process on the machine, other people's too. The processes of
this cluster are found by its temp dir (every Ray process of a session names it on its command line,
or has a file open under it) and ended by pid, then checked gone.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

RAY_BIN = str(Path(sys.executable).with_name("ray"))


# `ray start --address=127.0.0.1:PORT`: with RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (Ray on loopback only, as the
# head) it refuses to join a cluster, even on Linux; with 1 it turns 127.0.0.1 into the machine's address,
# where the head does not listen. So the second node is started by Ray's own CLI with both checks off in
# that one process; its Ray processes get --node-ip-address=127.0.0.1 and the variable at 0, as the head's.
_JOIN = ("import sys; import ray._private.ray_constants as c; import ray._private.services as s; "
         "c.ENABLE_RAY_CLUSTER = True; s.resolve_ip_for_localhost = lambda host: host; "
         "from ray.scripts.scripts import main; sys.argv = ['ray', *sys.argv[1:]]; main()")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports (each held until all are chosen)."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for sock in socks:
            sock.close()


@dataclass
class RayCluster:
    temp_dir: Path
    gcs_port: int
    dashboard_port: int
    started: list[int] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def gcs_address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    def environment(self) -> dict[str, str]:
        bin_dir = str(Path(sys.executable).parent)
        env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0",
               "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
               # a runtime environment that fails (a test of it) fails once, not three times: Ray clones the
               # test's whole virtualenv for a pip environment, 1-2 minutes on two busy cores
               "RUNTIME_ENV_RETRY_TIMES": "1"}
        for var in [v for v in env if v.startswith(("RUNLAB_", "AZUREML_"))] + ["RAY_ADDRESS"]:
            env.pop(var, None)  # the cluster is no run's: jobs get their RUNLAB_* variables in runtime_env
        env["RUNLAB_HOME"] = str(self.temp_dir / "home")  # the node's data cache (dataset inputs): its own
        return env

    def start(self, num_cpus: int = 2, timeout_s: float = 90.0) -> "RayCluster":
        ports = [p for p in free_ports(9) if p not in (self.gcs_port, self.dashboard_port)][:7]
        cmd = [RAY_BIN, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={self.gcs_port}",
               "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard_port}", f"--num-cpus={num_cpus}",
               "--num-gpus=0", "--include-dashboard=true", f"--temp-dir={self.temp_dir}",
               "--object-store-memory=200000000", "--disable-usage-stats",
               # every port of its own: another Ray on this machine (someone else's) may hold the defaults
               f"--ray-client-server-port={ports[0]}", f"--dashboard-agent-listen-port={ports[1]}",
               f"--dashboard-agent-grpc-port={ports[2]}", f"--metrics-export-port={ports[3]}",
               f"--runtime-env-agent-port={ports[4]}", f"--node-manager-port={ports[5]}",
               f"--object-manager-port={ports[6]}", f"--min-worker-port={self._worker_ports()[0]}",
               f"--max-worker-port={self._worker_ports()[1]}"]
        out = subprocess.run(cmd, env=self.environment(), capture_output=True, text=True, timeout=timeout_s)
        if out.returncode != 0:
            self.stop()
            raise RuntimeError(f"ray start failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
        self.wait_ready(timeout_s)
        return self

    def _worker_ports(self) -> tuple[int, int]:
        """100 ports below the kernel's ephemeral range (where free_port's come from), by this cluster's port."""
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
        slots = max(1, (low - 11000) // 100)
        base = 11000 + (self.gcs_port % slots) * 100
        return base, base + 99

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.address}/api/version", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"Ray dashboard at {self.address} not ready after {timeout_s} s")

    def warm(self, timeout_s: float = 90.0) -> None:
        """Wait until the cluster runs a job (its job agent starts a while after the dashboard answers)."""
        from ray.job_submission import JobSubmissionClient

        client = JobSubmissionClient(self.address)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                job = client.submit_job(entrypoint="python -c pass")
                break
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        while not client.get_job_status(job).is_terminal():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the warm-up job of {self.address} did not end in {timeout_s} s")
            time.sleep(0.2)

    def processes(self) -> list[psutil.Process]:
        """This cluster's processes: those whose command line names its temp dir or ports, and their children."""
        return _processes((str(self.temp_dir), f"--gcs-address={self.gcs_address}", f"127.0.0.1:{self.gcs_port}"))

    def add_node(self, num_cpus: int = 1, resources: str = '{"node2": 1}', timeout_s: float = 90.0) -> "RayNode":
        """A second Ray node on this machine: a raylet of its own (temp dir, ports) joined to this head."""
        node = RayNode(Path(tempfile.mkdtemp(prefix="rn", dir="/tmp")), self)
        ports = [p for p in free_ports(9) if p not in (self.gcs_port, self.dashboard_port)][:7]
        low, high = self._worker_ports()
        span = (high - low + 1) // 2  # the head's worker ports, halved: this node takes the upper half
        cmd = [sys.executable, "-c", _JOIN, "start", f"--address={self.gcs_address}", "--node-ip-address=127.0.0.1",
               f"--num-cpus={num_cpus}", "--num-gpus=0", f"--resources={resources}", f"--temp-dir={node.temp_dir}",
               "--object-store-memory=100000000", "--disable-usage-stats",
               f"--dashboard-agent-listen-port={ports[1]}", f"--dashboard-agent-grpc-port={ports[2]}",
               f"--metrics-export-port={ports[3]}", f"--runtime-env-agent-port={ports[4]}",
               f"--node-manager-port={ports[5]}", f"--object-manager-port={ports[6]}",
               f"--min-worker-port={low + span}", f"--max-worker-port={high}"]
        env = self.environment() | {"RUNLAB_HOME": str(node.temp_dir / "home")}
        try:
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
            if out.returncode != 0:
                raise RuntimeError(f"ray start (second node) failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
            deadline = time.monotonic() + timeout_s
            while _alive_nodes(self.address) < 2:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the second Ray node did not join {self.address} in {timeout_s} s")
                time.sleep(0.5)
        except BaseException:
            node.stop()
            node.remove()
            raise
        return node

    def kill(self) -> list[int]:
        """SIGKILL every process of this cluster (a head lost at once), and wait until they are gone."""
        procs = self.processes()
        for proc in procs:
            try:
                proc.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(procs, timeout=15)
        return [p.pid for p in procs]

    def stop(self) -> None:
        _stop(self.processes())
        left = self.processes()  # started meanwhile (a worker the raylet was starting): again
        if left:
            _stop(left)

    def remove(self) -> None:
        from runlab.store.datacache import remove_tree

        if (self.temp_dir / "home").exists():
            remove_tree(self.temp_dir / "home")  # the data cache's folders are read-only
        shutil.rmtree(self.temp_dir, ignore_errors=True)


@dataclass
class RayNode:
    """A second node of a :class:`RayCluster` (its processes name its own temp dir), stopped by pid."""

    temp_dir: Path
    cluster: RayCluster

    def processes(self) -> list[psutil.Process]:
        return _processes((str(self.temp_dir),))

    def stop(self) -> None:
        _stop(self.processes())
        left = self.processes()
        if left:
            _stop(left)
        deadline = time.monotonic() + 30  # the head marks it dead: later tests see one node again
        while _alive_nodes(self.cluster.address) > 1 and time.monotonic() < deadline:
            time.sleep(0.5)

    def remove(self) -> None:
        from runlab.store.datacache import remove_tree

        if (self.temp_dir / "home").exists():
            remove_tree(self.temp_dir / "home")
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _alive_nodes(address: str) -> int:
    import json

    try:
        with urllib.request.urlopen(f"{address}/api/v0/nodes?limit=100", timeout=5) as resp:
            nodes = json.loads(resp.read())["data"]["result"]["result"]
    except (OSError, ValueError, KeyError):
        return 0
    return sum(1 for n in nodes if n.get("state") == "ALIVE")


def _processes(marks: tuple[str, ...]) -> list[psutil.Process]:
    found: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or ())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if proc.pid != os.getpid() and any(m in cmdline for m in marks):
            found[proc.pid] = proc
    for proc in list(found.values()):
        try:
            for child in proc.children(recursive=True):
                found.setdefault(child.pid, child)
        except psutil.NoSuchProcess:
            pass
    return list(found.values())


def _stop(procs: list[psutil.Process]) -> None:
    """SIGTERM, then SIGKILL what is left after 10 s, and wait until they are gone."""
    for proc in procs:
        try:
            proc.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=10)
    for proc in alive:
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=10)


def new_cluster(num_cpus: int = 2) -> RayCluster:
    temp = Path(tempfile.mkdtemp(prefix="rl", dir="/tmp"))  # short: Unix socket paths are at most 107 bytes
    gcs, dashboard = free_ports(2)
    cluster = RayCluster(temp, gcs, dashboard)
    try:
        return cluster.start(num_cpus=num_cpus)
    except BaseException:
        cluster.stop()
        cluster.remove()
        raise


# a 2-rank PyTorchConfiguration run: an all-reduce with gloo, its sum logged once (by rank 0); a line that
# pretends to be the other rank's (its own file keeps it); a line on stderr
GLOO = """
    import os, sys
    import torch
    import torch.distributed as dist
    from runlab import Run
    dist.init_process_group("gloo")  # env://: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT
    rank, world = dist.get_rank(), dist.get_world_size()
    value = torch.tensor([float(rank + 1)])
    dist.all_reduce(value)
    print(f"all_reduce on rank {rank} of {world}: {value.item()}", flush=True)
    print(f"[rank {1 - rank}] spoofed by rank {rank}", flush=True)
    print(f"stderr of rank {rank}", file=sys.stderr, flush=True)
    if rank == 0:
        Run.get_context().log("all_reduce", value.item())
    dist.destroy_process_group()
"""


def check_gloo_run(run: Any) -> None:
    """A GLOO run of two ranks: the sum over ranks logged once, each rank's lines in its own file."""
    log = _run_text(run, "azureml-logs/70_driver_log.txt")
    assert run.get_status() == "Completed", log[-3000:]
    assert "[rank 0] all_reduce on rank 0 of 2: 3.0" in log and "[rank 1] all_reduce on rank 1 of 2: 3.0" in log
    assert run.get_metrics() == {"all_reduce": 3.0}  # 1 + 2, one point (rank 0's): not [3.0, 3.0]
    names = run.get_file_names()
    assert sorted(n for n in names if n.startswith("azureml-logs/70_driver_log_")) == [
        "azureml-logs/70_driver_log_0.txt", "azureml-logs/70_driver_log_1.txt"], names
    for rank in (0, 1):
        own = _run_text(run, f"azureml-logs/70_driver_log_{rank}.txt").splitlines()
        # that rank's stdout and stderr, unprefixed (torch may add warnings of its own to stderr)
        for line in (f"all_reduce on rank {rank} of 2: 3.0", f"stderr of rank {rank}",
                     f"[rank {1 - rank}] spoofed by rank {rank}"):
            assert line in own, (rank, own)
        assert not [line for line in own if f"rank {1 - rank} of 2" in line or line.startswith("runlab:")], own


def _run_text(run: Any, name: str) -> str:
    with run.open_file(name) as f:
        return f.read().decode("utf-8", errors="replace")  # type: ignore[no-any-return]
