"""A Ray cluster as a compute target, through Ray's Jobs API (``pip install 'runlab[ray]'``).

``ComputeTarget.attach(ws, 'ray-cluster', RayCompute.attach_configuration(address='http://HOST:8265'))``
records a target of kind ``ray`` whose settings hold the cluster's dashboard address and the resources
of one run. Its agent (:class:`RayAgent`, started on demand like a pool's) claims the target's queued
runs and makes each one a Ray job (``JobSubmissionClient.submit_job``, submission id ``runlab-<run id>``):

- the run's snapshot is the job's ``working_dir`` (Ray uploads it; a snapshot larger than Ray's package
  limit fails the run saying so);
- the environment's pip requirements go to Ray's ``pip`` runtime environment, with the user's pip
  settings (index URLs, find-links, constraints, trusted hosts: :mod:`runlab.execution.pipconfig`) as
  ``pip_install_options`` (PipConfig.pip_args); no requirements: the job runs on the Ray node's own Python, which must have
  runlab installed (``Run.get_context()``, the entry below);
- ``RUNLAB_*`` variables in ``env_vars``: against a runlab server the server's URL, the workspace id
  and the run's own token (``RUNLAB_SERVER``, ``RUNLAB_WORKSPACE``, ``RUNLAB_TOKEN``); against an
  embedded workspace its folder (``RUNLAB_WORKSPACE``), which only a cluster on the same machine (or
  with the folder at the same path) can write;
- ``num_cpus``, ``num_gpus``, ``memory`` (bytes) and ``resources`` of the target become the job
  entrypoint's resources; ``max_nodes`` bounds the target's jobs at once (the agent's slots).

The entrypoint is ``python -m runlab.execution.ray_entry -- <the script's command>``: it copies the
unpacked ``working_dir`` (which Ray shares among jobs of the same snapshot) to a folder of the run's own,
runs the script there, uploads ``./outputs`` to the run, and exits with the script's exit code.

The agent polls the job: Ray ``PENDING`` -> Starting (Ray is installing the runtime environment),
``RUNNING`` -> Running, ``SUCCEEDED`` -> Completed, ``FAILED`` -> Failed (with the exit code and the
end of the log, or Ray's message when the runtime environment could not be set up: it also goes to
the build log), ``STOPPED`` -> Canceled. The job's log is copied into ``70_driver_log.txt`` while it
runs. ``run.cancel()`` stops the job. A job that is gone from the cluster (restarted) fails the run
with that reason; a cluster that does not answer for ``RUNLAB_RAY_LOST_TIMEOUT`` seconds fails its runs.
An agent that starts stops this target's (and workspace's) jobs whose runs ended while no agent followed
them (a dead agent's, marked Failed by the heartbeat reaper).

``PyTorchConfiguration(process_count=N)`` runs its N ranks in one job on one node (``ray_entry --ranks N``:
the local pool's launcher). Of a run of N > 1 ranks (one node or several) the agent also writes each rank's
lines, unprefixed, to ``70_driver_log_<i>.txt`` (from the job's log, by its ``[rank i]`` prefixes). Dataset
inputs are made available on the node by the entrypoint (``ray_entry --inputs``: the node's data cache, read
with the run's token); the agent records what the job consumed
(``run_inputs``) and the inputs' paths (``run.input_datasets``) from the job's ``runlab: inputs ready``
line. Not supported on Ray (refused at submit, saying so): MpiConfiguration.

``PyTorchConfiguration(process_count=N, node_count=M)``, M > 1: the job's driver (``ray_entry --nodes M``)
places M bundles (the target's resources per rank, times N/M) with ``STRICT_SPREAD`` and starts each node's
ranks there (MASTER_ADDR is the node of rank 0); the entrypoint itself asks for no resources. Dataset
inputs of such a run are made available on each node (its own data cache) before any rank starts, each
node's ranks getting that node's paths; the run records rank 0's node's paths (``run.input_datasets``), and
an input that cannot be made available on a node fails the run naming the node and the input.
"""

from __future__ import annotations

import json
import re
import shlex
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from runlab.core.errors import ComputeTargetException, NotSupportedError, RunlabError, UserError
from runlab.core.layout import BUILD_LOG, DRIVER_LOG
from runlab.core.settings import RUNLAB_RAY_LOST_TIMEOUT
from runlab.core.status import RunStatus
from runlab.execution.agent import Agent, LaunchPlan, Slot
from runlab.execution.environments import EnvironmentDefinition
from runlab.execution.pipconfig import read_pip_config

__all__ = [
    "RAY_KIND",
    "RayAgent",
    "RayTargetConfig",
    "check_address",
    "check_ray_definition",
    "cluster_info",
    "job_id_for",
    "ray_client",
]

RAY_KIND = "ray"
JOB_PREFIX = "runlab-"
STATUS_POLL_S = 0.25  # how often the agent asks Ray for a job's status
LOG_POLL_S = 0.2  # and for its log, in a job's first LOG_FAST_S seconds (its first lines show at once)
LOG_FAST_S = 30.0
LOG_SLOW_POLL_S = 1.0  # later: a hundred long jobs ask the dashboard 100 times a second, not 500
POLL_SPREAD_JOBS = 4  # up to this many jobs are polled at the rates above; more share them
DEFAULT_PACKAGE_LIMIT = 100 << 20  # Ray's working_dir limit when ray does not say (its default in Ray < 2.10)
HTTP_TIMEOUT_S = 5.0
STOP_GRACE_S = 15.0
SUBMIT_RETRY_S = 1.0  # a submission the cluster refused for now ("try again later"), again after this  # a job asked to stop that is still running after this: asked again
_EXIT_CODE = re.compile(r"exit code (-?\d+)")
_INPUTS_READY = re.compile(r"^runlab: inputs ready: (.*)\n", re.MULTILINE)  # ray_entry.INPUTS_READY
_INPUTS_FAILED = re.compile(r"^runlab: preparing the inputs failed \((\w+)\): (.*)$", re.MULTILINE)
_RANK_LINE = re.compile(rb"\[rank (0|[1-9]\d{0,5})\] ")  # a rank's line in the job's log (ray_entry, the launcher)
RANK_LINE_MAX = 1 << 20
_RANK_FAILED = re.compile(r"runlab: rank (\d+) of (\d+) exited with code (-?\d+): (.*)$")


# ---------------------------------------------------------------------------------------- settings


def check_address(address: object) -> str:
    """The dashboard URL of a Ray cluster, normalized (``http://HOST:PORT``, no trailing slash);
    UserError saying what is wrong and what to give instead."""
    if not isinstance(address, str) or not address.strip():
        raise UserError(f"a Ray cluster's address must be its dashboard's URL, like http://127.0.0.1:8265, "
                        f"got {address!r}")
    text = address.strip()
    if text.startswith("ray://"):
        raise UserError(f"{text!r} is a Ray Client address; runlab submits runs through Ray's Jobs API, which the "
                        "dashboard serves: give the dashboard's URL, http://HOST:8265 (`ray start --head "
                        "--dashboard-host=0.0.0.0` prints it)")
    if "://" not in text:
        text = "http://" + text
    parsed = urllib.parse.urlsplit(text)
    try:
        port = parsed.port
    except ValueError as exc:
        raise UserError(f"Ray dashboard address {address!r}: {exc}; give http://HOST:PORT, like "
                        "http://127.0.0.1:8265") from exc
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise UserError(f"Ray dashboard address {address!r} is not an http(s) URL with a host: give "
                        "http://HOST:PORT, like http://127.0.0.1:8265")
    if parsed.query or parsed.fragment or parsed.username or parsed.password:
        raise UserError(f"Ray dashboard address {address!r}: give only scheme, host, port (and a path behind a "
                        "proxy), no query, fragment or credentials")
    host = f"[{parsed.hostname}]" if ":" in parsed.hostname else parsed.hostname
    return f"{parsed.scheme}://{host}:{8265 if port is None else port}{parsed.path.rstrip('/')}"


def _positive(name: str, value: Any, *, integer: bool = False, zero: bool = False) -> Any:
    if value is None:
        return None
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or value < 0 or (value == 0 and not zero) or value != value:
        kind = "a whole number" if integer else "a number"
        raise UserError(f"{name} must be {kind} {'>= 0' if zero else '> 0'}, got {value!r}")
    return value


@dataclass(frozen=True)
class RayTargetConfig:
    """A Ray target's settings: the cluster, and what one run asks of it."""

    address: str
    num_cpus: float | None = 1
    num_gpus: float | None = None
    memory: int | None = None  # bytes
    resources: Mapping[str, float] = field(default_factory=dict)
    max_nodes: int = 4
    idle_seconds_before_scaledown: int = 120

    def __post_init__(self) -> None:
        object.__setattr__(self, "address", check_address(self.address))
        _positive("num_cpus", self.num_cpus, zero=True)
        _positive("num_gpus", self.num_gpus, zero=True)
        _positive("memory", self.memory, integer=True)
        _positive("max_nodes", self.max_nodes, integer=True)
        _positive("idle_seconds_before_scaledown", self.idle_seconds_before_scaledown, integer=True, zero=True)
        if self.max_nodes is None:
            raise UserError("max_nodes must be a whole number > 0, got None")
        resources = dict(self.resources or {})
        for key, value in resources.items():
            if not isinstance(key, str) or not key or key in ("CPU", "GPU", "memory"):
                raise UserError(f"resources: {key!r} is not a custom resource name (CPU, GPU and memory have "
                                "num_cpus, num_gpus and memory)")
            _positive(f"resources[{key!r}]", value)
        object.__setattr__(self, "resources", resources)

    def to_settings(self) -> dict[str, Any]:
        return {"address": self.address, "num_cpus": self.num_cpus, "num_gpus": self.num_gpus,
                "memory": self.memory, "resources": dict(self.resources)}

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], max_nodes: int, idle_seconds: int) -> "RayTargetConfig":
        return cls(address=str(settings.get("address") or ""), num_cpus=settings.get("num_cpus"),
                   num_gpus=settings.get("num_gpus"), memory=settings.get("memory"),
                   resources=dict(settings.get("resources") or {}), max_nodes=max_nodes,
                   idle_seconds_before_scaledown=idle_seconds)


def check_ray_definition(definition: Mapping[str, Any]) -> None:
    """NotSupportedError for what a Ray target does not run (yet), saying what to do instead."""
    job_config = definition.get("distributedJobConfig")
    if isinstance(job_config, Mapping) and job_config.get("type") == "Mpi":
        raise NotSupportedError("MpiConfiguration is not supported on a Ray target: runlab starts no MPI job on "
                                "Ray; use PyTorchConfiguration, or a pool target (AmlCompute)")
    nodes = node_count(definition)
    if nodes > 1:
        if not isinstance(job_config, Mapping) or job_config.get("type") != "PyTorch":
            raise NotSupportedError("a run over several nodes (node_count > 1) on a Ray target is a "
                                    "PyTorchConfiguration(process_count=N, node_count=M) run")
        ranks = int(definition.get("processCount") or 1)
        if ranks % nodes:
            raise UserError(f"PyTorchConfiguration(process_count={ranks}, node_count={nodes}): the ranks are spread "
                            "evenly over the nodes, so process_count must be a multiple of node_count")


def node_count(definition: Mapping[str, Any]) -> int:
    """The nodes a run's definition asks for (its PyTorchConfiguration's node_count, or run_config's)."""
    job_config = definition.get("distributedJobConfig")
    nodes = job_config.get("nodeCount", 1) if isinstance(job_config, Mapping) else 1
    return max(int(nodes or 1), int(definition.get("nodeCount") or 1))


def validate_for_ray(config: Any) -> dict[str, Any]:
    """``config.validate()`` (a ScriptRunConfig) for a Ray target: the ranks of a PyTorchConfiguration are
    bounded by the cluster, not by this machine's cores, and may be spread over several nodes."""
    job = getattr(config, "distributed_job_config", None)
    if job is None or type(job).__name__ != "PyTorchConfiguration":
        return dict(config.validate())
    nodes, count = job.node_count, job.process_count
    for name, value in (("node_count", nodes), ("process_count", count)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise UserError(f"PyTorchConfiguration({name}={value!r}): give a whole number >= 1")
    try:  # the local pool's checks (one machine, its cores) are not a Ray target's
        job.node_count, job.process_count = 1, None
        definition = dict(config.validate())
    finally:
        job.node_count, job.process_count = nodes, count
    definition["distributedJobConfig"] = job.to_dict()
    definition["processCount"] = count if count is not None else (nodes or 1)  # Azure: one per node
    return definition


def job_id_for(run_id: str) -> str:
    return JOB_PREFIX + run_id


# ---------------------------------------------------------------------------------------- talking to Ray


def ray_client(address: str) -> Any:
    """A ``JobSubmissionClient`` for ``address``; ComputeTargetException when ray is not installed or
    the cluster does not answer (saying what to do)."""
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError as exc:
        raise ComputeTargetException("Ray targets need the ray package where the agent runs: "
                                     "pip install 'runlab[ray]' (or 'ray[default]')") from exc
    try:
        return JobSubmissionClient(address)
    except Exception as exc:  # ConnectionError, RuntimeError: ray says why
        raise ComputeTargetException(_unreachable(address, exc), address=address) from exc


def _unreachable(address: str, exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return (f"cannot reach the Ray cluster's dashboard at {address} ({first}): start the cluster "
            "(`ray start --head --dashboard-host=...`), or fix the target's address "
            "(`runlab compute attach ray NAME --address http://HOST:8265`)")


def _get_json(url: str, timeout: float = HTTP_TIMEOUT_S) -> Any:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url!r}")
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (http(s) checked)
        return json.loads(response.read().decode("utf-8"))


def probe(address: str, timeout: float = HTTP_TIMEOUT_S) -> str:
    """The cluster's Ray version; ComputeTargetException when its dashboard does not answer as Ray's does."""
    try:
        data = _get_json(f"{address}/api/version", timeout)
    except (OSError, ValueError) as exc:
        raise ComputeTargetException(_unreachable(address, exc), address=address) from exc
    if not isinstance(data, dict) or "ray_version" not in data:
        raise ComputeTargetException(f"{address} answered, but not as a Ray dashboard does (/api/version "
                                     "has no ray_version): is it the dashboard's port (8265 by default)?",
                                     address=address)
    return str(data["ray_version"])


def cluster_info(address: str, timeout: float = HTTP_TIMEOUT_S) -> dict[str, Any]:
    """What the cluster says of itself, from its dashboard: nodes alive, CPUs, GPUs, memory, jobs running
    and pending (all of Ray, not only runlab's), and the dashboard's link. ``error`` when it does not answer."""
    info: dict[str, Any] = {"dashboard": address}
    try:
        address = check_address(address)  # only http(s): a planted record names no file:// URL to read
    except UserError as exc:
        info["error"] = str(exc)
        return info
    try:
        info["rayVersion"] = probe(address, timeout)
        nodes = _get_json(f"{address}/api/v0/nodes?limit=1000", timeout)["data"]["result"]["result"]
        alive = [n for n in nodes if n.get("state") == "ALIVE"]
        totals: dict[str, float] = {}
        for node in alive:
            for key, value in (node.get("resources_total") or {}).items():
                totals[key] = totals.get(key, 0.0) + float(value)
        jobs = _get_json(f"{address}/api/jobs/", timeout)
        states = [str(j.get("status")) for j in jobs] if isinstance(jobs, list) else []
        info.update({
            "nodes": len(alive), "deadNodes": len(nodes) - len(alive), "cpus": totals.get("CPU", 0.0),
            "gpus": totals.get("GPU", 0.0), "memoryBytes": int(totals.get("memory", 0.0)),
            "runningJobs": states.count("RUNNING"), "pendingJobs": states.count("PENDING"),
            "runlabJobs": sum(1 for j in jobs if str(j.get("submission_id") or "").startswith(JOB_PREFIX)
                              and str(j.get("status")) in ("RUNNING", "PENDING")) if isinstance(jobs, list) else 0,
            "error": None,
        })
    except ComputeTargetException as exc:
        info["error"] = str(exc)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        info["error"] = f"the Ray dashboard at {address} answered something runlab cannot read: {exc}"
    return info


# ---------------------------------------------------------------------------------------- the agent


@dataclass
class RayJob:
    job_id: str
    submitted: bool = False
    log_bytes: int = 0  # of the job's log already in the driver log
    last_status: float = 0.0
    last_logs: float = 0.0
    unreachable_since: float | None = None
    stop_sent_at: float | None = None
    ray_status: str = ""
    pending_said: bool = False
    runtime_env: dict[str, Any] = field(default_factory=dict)
    entrypoint: str = ""
    ranks: int = 1
    nodes: int = 1
    inputs: tuple[str, ...] = ()  # the run's input names; recorded once ray_entry says they are ready
    inputs_recorded: bool = False
    first_attempt: float | None = None  # of a submission Ray refused for now
    next_attempt: float = 0.0
    rank_partial: bytes = b""  # the job log's last line while it has no newline yet (ranks > 1)


class RayAgent(Agent):
    """The agent of a Ray target: each run it claims becomes a Ray job (see the module's text).

    Preparing builds nothing here (Ray installs the environment on the node); the slot's
    ``plan`` holds the job's entrypoint and variables, and :class:`RayJob` what the agent knows of it."""

    def __init__(self, folder: Any, target: str, *, stay: bool = False) -> None:
        super().__init__(folder, target, stay=stay)
        record = self.store.get_compute_target(target)
        if record.kind != RAY_KIND:
            raise ComputeTargetException(f"compute target {target!r} is a {record.kind} target, not a Ray one")
        self._config_error: str | None = None
        try:
            self.config = RayTargetConfig.from_settings(record.settings, record.max_nodes,
                                                        record.idle_seconds_before_scaledown)
        except UserError as exc:  # a record written by hand: its runs fail saying so, none waits for ever
            self._config_error = f"compute target {target!r} has invalid Ray settings: {exc}"
            self.config = RayTargetConfig(address="http://127.0.0.1:8265", max_nodes=max(1, record.max_nodes))
        self.jobs: dict[str, RayJob] = {}
        self._client: Any = None
        self._orphans_checked = False
        self.workspace_key = str(getattr(folder, "workspace_id", None) or folder.path)
        self._lost_after = RUNLAB_RAY_LOST_TIMEOUT.read()

    def step(self) -> bool:
        if not self._orphans_checked:
            self._orphans_checked = True
            self._stop_orphans()
        return super().step()

    def _stop_orphans(self) -> None:
        """Stop this target's Ray jobs whose runs ended without them: an agent that died (killed, out of
        memory) leaves its jobs running on the cluster while the heartbeat reaper marks its runs Failed."""
        if self._config_error is not None:
            return
        try:
            jobs = self.client().list_jobs()
        except Exception as exc:  # noqa: BLE001 (the cluster is away: the runs' turns will say so)
            self._say(f"could not list the Ray cluster's jobs to stop orphans: {exc}")
            return
        for job in jobs:
            meta = dict(getattr(job, "metadata", None) or {})
            status = str(getattr(job.status, "value", job.status))
            if (status not in ("PENDING", "RUNNING") or meta.get("runlab_target") != self.target
                    or meta.get("runlab_workspace") != self.workspace_key or not job.submission_id):
                continue
            try:
                ended = self.store.get_run(str(meta.get("runlab_run_id"))).status.is_terminal
            except RunlabError:
                continue  # not a run of this workspace: never stop another's job
            if ended:
                self._say(f"stopping Ray job {job.submission_id}: its run ended while no agent followed it")
                try:
                    self.client().stop_job(job.submission_id)
                except Exception as exc:  # noqa: BLE001
                    self._say(f"stopping Ray job {job.submission_id} failed: {exc}")

    def client(self) -> Any:
        if self._client is None:
            self._client = ray_client(self.config.address)
        return self._client

    # -- preparing: the job's definition -----------------------------------------------------

    def _make_plan(self, slot: Slot) -> LaunchPlan:
        record = slot.record
        definition = dict(record.definition or {})
        if self._config_error is not None:
            raise ComputeTargetException(self._config_error + " (attach it again: runlab compute attach ray ...)")
        check_ray_definition(definition)
        env_def = EnvironmentDefinition.from_dict(definition["environment"]).normalized()
        with open(self._log_path(record.run_id, BUILD_LOG), "a", encoding="utf-8") as build_log:
            def progress(line: str) -> None:
                build_log.write(f"{_stamp()} {line}\n")
                build_log.flush()

            runtime_env: dict[str, Any] = {}
            if env_def.user_managed:
                progress("user-managed environment: the job runs on the Ray node's own Python as it is "
                         f"({env_def.interpreter_path or 'the default'} names a Python of this machine, not of "
                         "the cluster's nodes: not used)")
            elif env_def.pip_requirements:
                config = read_pip_config()
                options = config.pip_args()  # pip runs there, not uv
                runtime_env["pip"] = {"packages": list(env_def.pip_requirements), "pip_check": False,
                                      **({"pip_install_options": options} if options else {})}
                progress(f"Ray installs the environment on the node (runtime_env pip): "
                         f"{' '.join(env_def.pip_requirements)}")
                if options:
                    progress(f"pip settings passed on ({', '.join(config.sources) or 'PIP_* variables'}): "
                             f"{' '.join(options)}")
            else:
                progress("no packages to install: the job runs on the Ray node's Python (it must have runlab)")
            for warning in env_def.warnings:
                progress(f"warning: {warning}")
        self._mark_starting(slot, record)
        self._unpack_snapshot(slot, definition["snapshotId"])
        size = sum(p.stat().st_size for p in slot.workdir.rglob("*") if p.is_file())
        limit = _package_limit()
        if size >= limit:
            raise UserError(f"the run's snapshot holds {size / 2**20:.1f} MiB, more than Ray's working_dir limit "
                            f"({limit / 2**20:.0f} MiB): keep data out of the source folder (.amlignore), and read "
                            "it from a datastore or dataset in the script")
        self._run_log(slot, f"snapshot {definition['snapshotId'][:12]} unpacked into {slot.workdir} "
                            f"({size} bytes) for Ray's working_dir")
        env_vars = self._run_variables(record, env_def)
        env_vars.update(self._server_variables(record.run_id, dict(env_vars)))
        command = definition.get("command")
        if command:
            argv = ["/bin/sh", "-c", command] if isinstance(command, str) else [str(c) for c in command]
        else:
            argv = ["python", definition["script"], *[str(a) for a in definition.get("arguments") or ()]]
        runtime_env["working_dir"] = str(slot.workdir)
        runtime_env["env_vars"] = env_vars
        ranks = int(definition.get("processCount") or 1)
        inputs = tuple(str(item.get("name")) for item in definition.get("inputDatasets") or () if isinstance(item, dict))
        nodes = node_count(definition)
        entry = ["python", "-m", "runlab.execution.ray_entry", *(["--ranks", str(ranks)] if ranks > 1 else []),
                 *(["--nodes", str(nodes), "--bundle", json.dumps(self._bundle(ranks // nodes))] if nodes > 1 else []),
                 *(["--inputs"] if inputs else []), "--"]
        entrypoint = shlex.join([*entry, *argv])
        if nodes > 1:
            self._run_log(slot, f"distributed: {ranks} processes (RANK 0 to {ranks - 1}) over {nodes} Ray nodes "
                                f"(a placement group of {nodes} bundles {json.dumps(self._bundle(ranks // nodes))}, "
                                "STRICT_SPREAD)")
        elif ranks > 1:
            self._run_log(slot, f"distributed: {ranks} processes (RANK 0 to {ranks - 1}) on one Ray node")
        if inputs:
            where = f"on each of the {nodes} Ray nodes" if nodes > 1 else "on the Ray node"
            self._run_log(slot, f"inputs {', '.join(inputs)}: made available {where} by the job's entrypoint")
        self.jobs[record.run_id] = RayJob(job_id=job_id_for(record.run_id), runtime_env=runtime_env,
                                          entrypoint=entrypoint, ranks=ranks, nodes=nodes, inputs=inputs)
        return LaunchPlan(argv=argv, cwd=slot.workdir, env=env_vars)

    def _bundle(self, ranks_per_node: int) -> dict[str, float]:
        """One node's bundle of a multi-node run: the target's resources per rank, times its ranks."""
        bundle: dict[str, float] = {}
        if self.config.num_cpus:
            bundle["CPU"] = self.config.num_cpus * ranks_per_node
        if self.config.num_gpus:
            bundle["GPU"] = self.config.num_gpus * ranks_per_node
        if self.config.memory:
            bundle["memory"] = self.config.memory
        bundle.update(self.config.resources)
        return bundle or {"CPU": 0.01}  # a bundle asks for something: else Ray cannot spread them

    # -- running: the job ------------------------------------------------------------------------

    def _advance(self, slot: Slot) -> None:
        job = self.jobs.get(slot.run_id)
        if job is None or not job.submitted:
            if slot.thread is not None and slot.thread.is_alive():
                if slot.stop_reason is None and self._status(slot) == RunStatus.CANCEL_REQUESTED:
                    slot.stop_reason = "cancel"
                    slot.cancel.set()
                    self._run_log(slot, "cancel requested while preparing: stopping it")
                return
            if slot.stop_reason == "cancel" or self._status(slot) == RunStatus.CANCEL_REQUESTED:
                self._end(slot, RunStatus.CANCELED, None)
                return
            if slot.prepare_error is not None or job is None:
                exc = slot.prepare_error or RunlabError("no Ray job was prepared")
                self._fail(slot, f"preparing the run failed: {exc}", type(exc).__name__, exc)
                return
            self._submit(slot, job)
            return
        now = time.monotonic()
        # many jobs at once: each is asked less often, so that the dashboard (and the CPUs the jobs need)
        # serve about as many requests as for POLL_SPREAD_JOBS jobs
        spread = max(1.0, len(self.jobs) / POLL_SPREAD_JOBS)
        if now - job.last_logs >= spread * (LOG_POLL_S if now - slot.started < LOG_FAST_S else LOG_SLOW_POLL_S):
            job.last_logs = now
            self._copy_log(slot, job)
        if now - job.last_status < spread * STATUS_POLL_S:
            return
        job.last_status = now
        try:
            info = self.client().get_job_info(job.job_id)
        except Exception as exc:  # noqa: BLE001 (requests, RuntimeError: ray's client raises many kinds)
            self._unreachable(slot, job, exc)
            return
        job.unreachable_since = None
        status = str(getattr(info.status, "value", info.status))
        if status != job.ray_status:
            self._run_log(slot, f"Ray job {job.job_id}: {status}" + (f" ({info.message})" if info.message else ""))
            job.ray_status = status
        if status == "RUNNING":
            self.store.set_status(slot.run_id, RunStatus.RUNNING, only_if_status=[RunStatus.STARTING])
        elif status in ("SUCCEEDED", "FAILED", "STOPPED"):
            self._finish(slot, job, status, info)
            return
        if slot.stop_reason is None:
            if self._status(slot) == RunStatus.CANCEL_REQUESTED:
                slot.stop_reason = "cancel"
            elif slot.deadline is not None and now > slot.deadline:
                slot.stop_reason = "timeout"
            if slot.stop_reason is not None:
                self._stop_job(slot, job, slot.stop_reason)
        elif job.stop_sent_at is not None and now - job.stop_sent_at > STOP_GRACE_S:
            self._stop_job(slot, job, f"{slot.stop_reason}, again: still {status} {STOP_GRACE_S:.0f} s later")

    def _submit(self, slot: Slot, job: RayJob) -> None:
        if time.monotonic() < job.next_attempt:
            return
        resources: dict[str, Any] = {}  # per run; a run of N ranks asks N times the CPUs and GPUs
        if job.nodes > 1:  # the ranks run in the placement group's bundles; the driver only follows them
            pass
        elif self.config.num_cpus is not None:
            resources["entrypoint_num_cpus"] = self.config.num_cpus * job.ranks
        if self.config.num_gpus is not None and job.nodes == 1:
            resources["entrypoint_num_gpus"] = self.config.num_gpus * job.ranks
        if self.config.memory is not None and job.nodes == 1:
            resources["entrypoint_memory"] = self.config.memory
        if self.config.resources and job.nodes == 1:
            resources["entrypoint_resources"] = dict(self.config.resources)
        try:
            client = self.client()
            try:
                client.submit_job(entrypoint=job.entrypoint, submission_id=job.job_id, runtime_env=job.runtime_env,
                                  metadata={"runlab_run_id": slot.run_id, "runlab_target": self.target,
                                            "runlab_workspace": self.workspace_key}, **resources)
            except RuntimeError as exc:
                if "already exists" not in str(exc):  # submitted before this agent restarted: follow it
                    raise
                self._run_log(slot, f"Ray job {job.job_id} exists already: following it")
        except Exception as exc:  # noqa: BLE001 (ray raises RuntimeError, ValueError, requests' errors)
            now = time.monotonic()
            text = str(exc).strip()
            transient = isinstance(exc, ComputeTargetException) or "try again" in text or "status code 50" in text
            if transient and now - (job.first_attempt or now) < self._lost_after:
                if job.first_attempt is None:
                    job.first_attempt = now
                    self._run_log(slot, f"Ray cannot take the job now ({text.splitlines()[0] if text else exc!r}); "
                                        f"trying again for {self._lost_after:.0f} s")
                job.next_attempt = now + SUBMIT_RETRY_S
                self._client = None
                return
            if isinstance(exc, ComputeTargetException):
                self._fail(slot, text, "RayUnavailable")
            else:
                self._fail(slot, f"Ray refused the job at {self.config.address}: {text[:2000]}", "RaySubmitFailed")
            return
        job.submitted = True
        self.store.update_definition(slot.run_id, {"rayJobId": job.job_id, "rayAddress": self.config.address})
        slot.started = time.monotonic()
        limit = (slot.record.definition or {}).get("maxRunDurationSeconds")
        slot.deadline = slot.started + float(limit) if limit else None
        described = ", ".join(f"{k.removeprefix('entrypoint_')}={v}" for k, v in resources.items()) or "no resources"
        self._run_log(slot, f"submitted as Ray job {job.job_id} to {self.config.address} ({described}): "
                            f"{job.entrypoint}")

    def _stop_job(self, slot: Slot, job: RayJob, why: str) -> None:
        self._run_log(slot, f"stopping Ray job {job.job_id} ({why})")
        job.stop_sent_at = time.monotonic()
        try:
            self.client().stop_job(job.job_id)
        except Exception as exc:  # noqa: BLE001
            self._run_log(slot, f"stopping Ray job {job.job_id} failed for now: {exc}")

    def _unreachable(self, slot: Slot, job: RayJob, exc: BaseException) -> None:
        text = str(exc)
        if "404" in text or "does not exist" in text or "not found" in text.lower():
            self._copy_log(slot, job)
            self._fail(slot, f"Ray job {job.job_id} is gone from the cluster at {self.config.address} (the cluster "
                             "restarted, or the job was deleted there): its result is unknown", "RayJobLost")
            return
        now = time.monotonic()
        if job.unreachable_since is None:
            job.unreachable_since = now
            self._run_log(slot, f"the Ray cluster does not answer ({text.splitlines()[0] if text else exc!r}); "
                                f"trying for {self._lost_after:.0f} s")
            self._client = None  # a new connection next time
        elif now - job.unreachable_since > self._lost_after:
            self._fail(slot, f"the Ray cluster at {self.config.address} did not answer for {self._lost_after:.0f} s "
                             f"(head lost or cluster stopped) while running Ray job {job.job_id}: {text[:500]}",
                       "RayClusterLost")

    def _copy_log(self, slot: Slot, job: RayJob) -> None:
        """Append what the job's log gained to the driver log (Ray keeps the whole log; it only grows)."""
        try:
            text = self.client().get_job_logs(job.job_id)
        except Exception:  # noqa: BLE001 (the status poll says what is wrong, and decides)
            return
        data = text.encode("utf-8", errors="replace")
        if len(data) < job.log_bytes:  # the log was replaced (a new job of the same id): start over
            job.log_bytes = 0
            job.rank_partial = b""
        if len(data) > job.log_bytes:
            with open(self._log_path(slot.run_id, DRIVER_LOG), "ab") as out:
                out.write(data[job.log_bytes:])
            if job.ranks > 1:
                self._split_ranks(slot, job, data[job.log_bytes:])
            job.log_bytes = len(data)
        if job.inputs and not job.inputs_recorded:
            self._record_inputs(slot, job, text)

    def _split_ranks(self, slot: Slot, job: RayJob, new: bytes, final: bool = False) -> None:
        """Append each ``[rank i] `` line of what the job's log gained to that rank's own file,
        ``70_driver_log_<i>.txt``, unprefixed, as the local pool's launcher writes them (the ranks run in
        the Ray job, whose log is the only thing the agent sees). The driver's own lines (``runlab: ...``)
        and a prefix naming no rank of the run go to no rank's file."""
        from runlab.execution.distributed import rank_log_name

        lines = (job.rank_partial + new).split(b"\n")
        job.rank_partial = b"" if final else lines.pop()
        if len(job.rank_partial) > RANK_LINE_MAX:  # a line without end: out in pieces, memory bounded
            lines.append(job.rank_partial)
            same = _RANK_LINE.match(job.rank_partial)  # its rest is still that rank's
            job.rank_partial = same.group(0) if same is not None else b""
        by_rank: dict[int, list[bytes]] = {}
        for line in lines:
            found = _RANK_LINE.match(line)
            if found is not None and int(found.group(1)) < job.ranks:
                by_rank.setdefault(int(found.group(1)), []).append(line[found.end():])
        for rank, kept in by_rank.items():
            try:
                with open(self._log_path(slot.run_id, rank_log_name(rank)), "ab") as out:
                    out.write(b"".join(line + b"\n" for line in kept))
            except OSError as exc:  # the rank's file is a copy: the combined log has every line
                self._run_log(slot, f"could not write {rank_log_name(rank)}: {exc}")

    def _record_inputs(self, slot: Slot, job: RayJob, log: str) -> None:
        """Record what ray_entry made available on the node (its first ``inputs ready`` line, printed
        before the script starts): the run's token may not, and the script waits for the paths."""
        from runlab.core.assets import RunInputRecord

        found = _INPUTS_READY.search(log)
        if found is None:
            return
        job.inputs_recorded = True  # once: a line the script prints later is never read
        try:
            said = json.loads(found.group(1))
            fields = {f for f in RunInputRecord.__dataclass_fields__ if f != "run_id"}
            records = [RunInputRecord(slot.run_id, **{k: v for k, v in item.items() if k in fields})
                       for item in said.get("records") or () if item.get("name") in job.inputs]
            paths = {str(k): str(v) for k, v in (said.get("paths") or {}).items() if k in job.inputs}
        except (ValueError, TypeError, AttributeError) as exc:
            self._run_log(slot, f"the job's inputs line cannot be read ({exc}): inputs not recorded")
            return
        if records:
            self.store.record_run_inputs(slot.run_id, records)
        if paths:
            self.store.update_definition(slot.run_id, {"inputDatasetPaths": paths})
        self._run_log(slot, f"inputs ready on the Ray node: {', '.join(f'{k} at {v}' for k, v in paths.items())}")

    def _finish(self, slot: Slot, job: RayJob, status: str, info: Any) -> None:
        self._copy_log(slot, job)
        if job.ranks > 1 and job.rank_partial:
            self._split_ranks(slot, job, b"", final=True)
        self.store.set_status(slot.run_id, RunStatus.FINALIZING, only_if_active=True)
        message = str(info.message or "").strip()
        code = getattr(info, "driver_exit_code", None)
        if code is None:
            found = _EXIT_CODE.search(message)
            code = int(found.group(1)) if found else None
        if status == "SUCCEEDED":
            self._end(slot, RunStatus.COMPLETED, None)
            return
        if status == "STOPPED" or slot.stop_reason == "cancel":
            if slot.stop_reason == "timeout":
                limit = (slot.record.definition or {}).get("maxRunDurationSeconds")
                self._end(slot, RunStatus.FAILED, {
                    "message": f"the run exceeded max_run_duration_seconds={limit} and was stopped",
                    "code": "MaxRunDurationExceeded"})
            elif slot.stop_reason == "cancel":
                self._end(slot, RunStatus.CANCELED, None)
            else:
                self._end(slot, RunStatus.FAILED, {
                    "message": f"Ray job {job.job_id} was stopped on the cluster (not by runlab): {message}",
                    "code": "RayJobStopped"})
            return
        error_type = str(getattr(info, "error_type", "") or "")
        if error_type.startswith("RUNTIME_ENV") or "runtime env" in message.lower() and code is None:
            with open(self._log_path(slot.run_id, BUILD_LOG), "a", encoding="utf-8") as build_log:
                build_log.write(f"{_stamp()} Ray could not set up the runtime environment:\n{message}\n")
            self._end(slot, RunStatus.FAILED, {
                "message": f"the environment could not be set up on the Ray cluster: {_last_line(message)}",
                "code": "EnvironmentBuildFailed"})
            return
        tail = _log_tail(self, slot)
        if job.inputs:
            from runlab.execution.ray_entry import INPUTS_FAILED_LINE

            failed = _INPUTS_FAILED.search(tail)
            if failed is not None and INPUTS_FAILED_LINE in tail:
                self._end(slot, RunStatus.FAILED, {
                    "message": "preparing the run failed: the inputs could not be made available on the Ray "
                               f"node{'s' if job.nodes > 1 else ''}: "
                               f"{failed.group(2)}", "code": failed.group(1), "exit_code": code})
                return
        last = tail.splitlines()[-1] if tail else (message or "no output")
        reason = f"exited with code {code}" if code is not None else "failed"
        error: dict[str, Any] = {"message": f"the script {reason}: {last}", "code": "ScriptFailed",
                                 "stderr_tail": tail, "ray_message": message[:4000]}
        rank = None
        for line in reversed(tail.splitlines() if job.ranks > 1 else []):
            rank = _RANK_FAILED.search(line)
            if rank is not None:
                break
        if rank is not None:  # ray_entry's last line: the rank that failed first
            error.update(message=f"rank {rank.group(1)} of {rank.group(2)} exited with code {rank.group(3)}: "
                                 f"{rank.group(4)}", rank=int(rank.group(1)))
        if code is not None:
            error["exit_code"] = code
        self._end(slot, RunStatus.FAILED, error)

    def _end(self, slot: Slot, status: RunStatus, error: dict[str, Any] | None) -> None:
        job = self.jobs.pop(slot.run_id, None)
        if job is not None and job.submitted and job.ray_status not in ("SUCCEEDED", "FAILED", "STOPPED"):
            try:  # nothing of the run outlives it
                self.client().stop_job(job.job_id)
            except Exception:  # noqa: BLE001 (gone, or the cluster is: nothing to stop)
                pass
        super()._end(slot, status, error)


def _log_tail(agent: RayAgent, slot: Slot, lines: int = 30) -> str:
    try:
        with open(agent._log_path(slot.run_id, DRIVER_LOG), "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    kept = [line for line in text.splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else text


def _package_limit() -> int:
    try:
        from ray._private.runtime_env.packaging import GCS_STORAGE_MAX_SIZE

        return int(GCS_STORAGE_MAX_SIZE)
    except Exception:  # noqa: BLE001 (a private module: any version may move it)
        return DEFAULT_PACKAGE_LIMIT


def _stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def is_ray_target(folder: Any, target: str) -> bool:
    """Whether ``target`` of ``folder``'s workspace is a Ray target (False for ``local`` and unknown names)."""
    if target == "local":
        return False
    try:
        return bool(folder.store.get_compute_target(target).kind == RAY_KIND)
    except ComputeTargetException:
        return False


def snapshot_folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
