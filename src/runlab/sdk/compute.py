"""ComputeTarget and AmlCompute: named pools of this machine that run submitted runs; RayCompute: a Ray
cluster attached as a target (its runs become Ray jobs, :mod:`runlab.execution.ray_target`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runlab.core.assets import ComputeTargetRecord
from runlab.core.errors import ComputeTargetException
from runlab.core.status import ACTIVE_STATUSES, RunStatus
from runlab.execution.targets import (
    DEFAULT_IDLE_SECONDS,
    LOCAL,
    AgentState,
    agent_state,
    check_target_name,
    cpus_for_vm_size,
    read_agent_state,
    restart_dead_agents,
)

if TYPE_CHECKING:
    from runlab.sdk.workspace import Workspace


@dataclass(frozen=True)
class AmlComputeProvisioningConfiguration:
    vm_size: str = "STANDARD_D2_V2"
    min_nodes: int = 0
    max_nodes: int = 4
    idle_seconds_before_scaledown: int = DEFAULT_IDLE_SECONDS
    vm_priority: str = "dedicated"


@dataclass(frozen=True)
class RayAttachConfiguration:
    """``RayCompute.attach_configuration(...)``: the cluster's dashboard address and what one run asks of it."""

    address: str
    num_cpus: float | None = 1
    num_gpus: float | None = None
    memory: int | None = None
    resources: dict[str, float] | None = None
    max_nodes: int = 4
    idle_seconds_before_scaledown: int = 120


@dataclass(frozen=True)
class ComputeTargetStatus:
    """``get_status()``: the pool's nodes and queue, and its agent (``agent_state``: Running,
    Starting, Stopped when scaled down, Down when it is gone while runs are queued)."""

    state: str
    max_nodes: int
    busy_nodes: int
    idle_nodes: int
    queued_runs: int
    running_runs: int
    agent_pid: int | None
    agent_state: AgentState = AgentState.STOPPED

    @property
    def provisioning_state(self) -> str:
        return self.state

    def serialize(self) -> dict[str, Any]:
        return {
            "provisioningState": self.state, "maxNodes": self.max_nodes, "busyNodeCount": self.busy_nodes,
            "idleNodeCount": self.idle_nodes, "queuedRuns": self.queued_runs, "runningRuns": self.running_runs,
            "agentPid": self.agent_pid, "agentState": str(self.agent_state),
        }


class ComputeTarget:
    """``ComputeTarget(workspace=ws, name='cpu-cluster')`` gets a target, raising
    ``ComputeTargetException`` when it does not exist (as tutorial part 2 expects)."""

    def __init__(self, workspace: "Workspace", name: str, **_azure: Any) -> None:
        self._workspace = workspace
        self._record = workspace.folder.store.get_compute_target(name)

    @classmethod
    def _from_record(cls, workspace: "Workspace", record: ComputeTargetRecord) -> "ComputeTarget":
        target = cls.__new__(_class_for(record.kind, cls))
        target._workspace = workspace
        target._record = record
        return target

    def __new__(cls, workspace: "Workspace | None" = None, name: str | None = None, **kwargs: Any) -> "ComputeTarget":
        if cls is ComputeTarget and workspace is not None and isinstance(name, str):
            try:  # ComputeTarget(workspace=ws, name='ray-cluster') is a RayCompute
                return super().__new__(_class_for(workspace.folder.store.get_compute_target(name).kind, AmlCompute))
            except ComputeTargetException:
                pass  # __init__ raises it with its message
        return super().__new__(AmlCompute if cls is ComputeTarget else cls)

    @staticmethod
    def attach(workspace: "Workspace", name: str, attach_configuration: RayAttachConfiguration) -> "RayCompute":
        """Attach an existing cluster as the target ``name``: ``RayCompute.attach_configuration(address=...)``.
        The cluster's dashboard must answer (ComputeTargetException saying what is wrong otherwise)."""
        from runlab.execution.ray_target import RAY_KIND, RayTargetConfig, probe

        check_target_name(name)
        config = attach_configuration
        if not isinstance(config, RayAttachConfiguration):
            raise ComputeTargetException(
                "ComputeTarget.attach needs RayCompute.attach_configuration(address='http://HOST:8265'), got "
                f"{type(config).__name__}")
        ray = RayTargetConfig(address=config.address, num_cpus=config.num_cpus, num_gpus=config.num_gpus,
                              memory=config.memory, resources=config.resources or {}, max_nodes=config.max_nodes,
                              idle_seconds_before_scaledown=config.idle_seconds_before_scaledown)
        version = probe(ray.address)
        record = workspace.folder.store.create_compute_target(
            ComputeTargetRecord(
                name=name, kind=RAY_KIND, vm_size=None, min_nodes=0, max_nodes=ray.max_nodes,
                idle_seconds_before_scaledown=ray.idle_seconds_before_scaledown, created_at=time.time(),
                state="Succeeded", settings={**ray.to_settings(), "ray_version": version},
            )
        )
        return RayCompute._from_record(workspace, record)  # type: ignore[return-value]

    @staticmethod
    def create(workspace: "Workspace", name: str, provisioning_configuration: AmlComputeProvisioningConfiguration) -> "AmlCompute":
        """Create a pool on this machine that runs up to ``max_nodes`` runs at once."""
        check_target_name(name)
        config = provisioning_configuration
        if not isinstance(config, AmlComputeProvisioningConfiguration):
            raise ComputeTargetException(
                "ComputeTarget.create needs AmlCompute.provisioning_configuration(...), got "
                f"{type(config).__name__}"
            )
        record = workspace.folder.store.create_compute_target(
            ComputeTargetRecord(
                name=name, kind="amlcompute", vm_size=config.vm_size, min_nodes=config.min_nodes,
                max_nodes=config.max_nodes, idle_seconds_before_scaledown=config.idle_seconds_before_scaledown,
                created_at=time.time(), state="Succeeded",
                settings={"vm_priority": config.vm_priority, "cpus_per_run": cpus_for_vm_size(config.vm_size)},
            )
        )
        return AmlCompute._from_record(workspace, record)  # type: ignore[return-value]

    @staticmethod
    def list(workspace: "Workspace") -> list["ComputeTarget"]:
        return [ComputeTarget._from_record(workspace, r) for r in workspace.folder.store.list_compute_targets()]

    @property
    def name(self) -> str:
        return self._record.name

    @property
    def type(self) -> str:
        return {"amlcompute": "AmlCompute", "ray": "Ray"}.get(self._record.kind, self._record.kind)

    @property
    def vm_size(self) -> str | None:
        return self._record.vm_size

    @property
    def max_nodes(self) -> int:
        return self._record.max_nodes

    @property
    def idle_seconds_before_scaledown(self) -> int:
        return self._record.idle_seconds_before_scaledown

    @property
    def provisioning_state(self) -> str:
        return self._record.state

    def wait_for_completion(self, show_output: bool = False, min_node_count: int | None = None,
                            timeout_in_minutes: int = 25) -> None:
        """Provisioning a pool on this machine is immediate; prints its state as Azure does."""
        if show_output:
            print(f"{self.provisioning_state}\nAmlCompute wait for completion finished\n"
                  f"Minimum number of nodes requested have been provisioned")

    def get_status(self) -> ComputeTargetStatus:
        """Nodes busy (runs being prepared or running) and idle (free while the agent runs), runs queued,
        and the agent's state. An agent found Down (gone while runs are queued) is started again:
        the status says Down, what this call found."""
        folder = self._workspace.folder
        counts = folder.store.count_runs_by_status(self.name)
        queued = counts.get(RunStatus.QUEUED, 0)
        active = sum(n for s, n in counts.items() if s in ACTIVE_STATUSES and s != RunStatus.QUEUED)
        agent = agent_state(folder, self.name, queued)
        if agent == AgentState.DOWN:
            restart_dead_agents(folder, [self.name])
        state = read_agent_state(folder, self.name) if agent == AgentState.RUNNING else None
        # nodes exist while the agent runs (the pool scales to zero when it stops)
        busy = min(active, self.max_nodes)
        return ComputeTargetStatus(
            state=self.provisioning_state, max_nodes=self.max_nodes, busy_nodes=busy,
            idle_nodes=max(0, self.max_nodes - busy) if state else 0, queued_runs=queued, running_runs=active,
            agent_pid=int(state["pid"]) if state else None, agent_state=agent,
        )

    def delete(self) -> None:
        """Delete the target; its agent finishes its runs and exits."""
        self._workspace.folder.store.delete_compute_target(self.name)

    def serialize(self) -> dict[str, Any]:
        r = self._record
        return {"name": r.name, "type": self.type, "vmSize": r.vm_size, "minNodes": r.min_nodes,
                "maxNodes": r.max_nodes, "idleSecondsBeforeScaledown": r.idle_seconds_before_scaledown,
                "provisioningState": r.state}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, vm_size={self.vm_size!r}, max_nodes={self.max_nodes})"


class AmlCompute(ComputeTarget):
    """A compute cluster. On runlab: a pool of this machine."""

    @staticmethod
    def provisioning_configuration(
        vm_size: str = "STANDARD_D2_V2",
        vm_priority: str = "dedicated",
        min_nodes: int = 0,
        max_nodes: int | None = None,
        idle_seconds_before_scaledown: int | None = None,
        **_azure: Any,
    ) -> AmlComputeProvisioningConfiguration:
        """Settings of a pool: ``max_nodes`` runs at once; the agent stops after
        ``idle_seconds_before_scaledown`` idle seconds. ``vm_size`` caps CPUs per run when known."""
        max_nodes = 4 if max_nodes is None else max_nodes
        if not isinstance(max_nodes, int) or max_nodes < 1:
            raise ComputeTargetException(f"max_nodes must be a positive int, got {max_nodes!r}")
        if not isinstance(min_nodes, int) or not 0 <= min_nodes <= max_nodes:
            raise ComputeTargetException(f"min_nodes must be an int between 0 and max_nodes, got {min_nodes!r}")
        idle = DEFAULT_IDLE_SECONDS if idle_seconds_before_scaledown is None else idle_seconds_before_scaledown
        if not isinstance(idle, int) or idle < 0:
            raise ComputeTargetException(f"idle_seconds_before_scaledown must be an int >= 0, got {idle!r}")
        return AmlComputeProvisioningConfiguration(vm_size=vm_size, min_nodes=min_nodes, max_nodes=max_nodes,
                                                   idle_seconds_before_scaledown=idle, vm_priority=vm_priority)


class RayCompute(ComputeTarget):
    """A Ray cluster attached as a compute target: each run becomes a Ray job (Ray's Jobs API)."""

    @staticmethod
    def attach_configuration(address: str = "http://127.0.0.1:8265", num_cpus: float | None = 1,
                             num_gpus: float | None = None, memory: int | None = None,
                             resources: dict[str, float] | None = None, max_nodes: int = 4,
                             idle_seconds_before_scaledown: int = 120, **_azure: Any) -> RayAttachConfiguration:
        """``address``: the dashboard's URL (Ray's Jobs API), ``http://HOST:8265``; ``num_cpus``, ``num_gpus``,
        ``memory`` (bytes) and ``resources`` (custom Ray resources): what each run's job asks of the cluster;
        ``max_nodes``: runs of this target at once (queued beyond)."""
        from runlab.execution.ray_target import RayTargetConfig

        config = RayTargetConfig(address=address, num_cpus=num_cpus, num_gpus=num_gpus, memory=memory,
                                 resources=resources or {}, max_nodes=max_nodes,
                                 idle_seconds_before_scaledown=idle_seconds_before_scaledown)  # UserError when wrong
        return RayAttachConfiguration(address=config.address, num_cpus=config.num_cpus, num_gpus=config.num_gpus,
                                      memory=config.memory, resources=dict(config.resources),
                                      max_nodes=config.max_nodes,
                                      idle_seconds_before_scaledown=config.idle_seconds_before_scaledown)

    @property
    def address(self) -> str:
        return str(self._record.settings.get("address", ""))

    def get_cluster(self) -> dict[str, Any]:
        """What the cluster says now (nodes, CPUs, GPUs, jobs running, the dashboard's link; ``error``
        when it does not answer)."""
        from runlab.execution.ray_target import cluster_info

        return cluster_info(self.address)

    def serialize(self) -> dict[str, Any]:
        settings = self._record.settings
        return {**super().serialize(), "address": self.address, "numCpus": settings.get("num_cpus"),
                "numGpus": settings.get("num_gpus"), "memory": settings.get("memory"),
                "resources": dict(settings.get("resources") or {})}

    def __repr__(self) -> str:
        return f"RayCompute(name={self.name!r}, address={self.address!r}, max_nodes={self.max_nodes})"


def _class_for(kind: str, default: type) -> type:
    return {"amlcompute": AmlCompute, "ray": RayCompute}.get(kind, default)


class ComputeInstance(ComputeTarget):
    """A compute instance (Azure: one VM). On runlab: a pool of this machine that runs one run at a time."""

    @staticmethod
    def provisioning_configuration(vm_size: str = "STANDARD_DS3_V2", ssh_public_access: bool = False,
                                   admin_user_ssh_public_key: str | None = None, **_azure: Any,
                                   ) -> AmlComputeProvisioningConfiguration:
        """Settings of a one-node pool (``ssh_*`` and the other Azure arguments are accepted and ignored)."""
        return AmlComputeProvisioningConfiguration(vm_size=vm_size, min_nodes=0, max_nodes=1)


def target_name(target: "str | ComputeTarget | None") -> str:
    if target is None:
        return LOCAL
    if isinstance(target, ComputeTarget):
        return target.name
    if isinstance(target, str):
        return target
    raise ComputeTargetException(f"compute_target must be a name or a ComputeTarget, got {type(target).__name__}")
