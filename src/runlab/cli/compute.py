"""``runlab compute``: pools of this machine that run submitted runs, and attached Ray clusters."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import click

from runlab.cli.main import _console, friendly_errors, open_workspace, workspace_option

if TYPE_CHECKING:
    from runlab.sdk.compute import ComputeTargetStatus
    from runlab.sdk.workspace import Workspace


@click.group()
def compute() -> None:
    """Create, attach (Ray clusters), list, show and delete compute targets."""


@compute.command("create")
@click.argument("name")
@workspace_option
@click.option("--max-nodes", default=4, show_default=True, help="Runs at once.")
@click.option("--vm-size", default="STANDARD_D2_V2", show_default=True, help="Recorded; caps CPUs per run when known.")
@click.option("--idle-seconds", default=1800, show_default=True, help="The agent stops after this many idle seconds.")
@friendly_errors
def compute_create(name: str, workspace_ref: str | None, max_nodes: int, vm_size: str, idle_seconds: int) -> None:
    """Create the compute target NAME (a pool on this machine)."""
    from runlab.sdk.compute import AmlCompute, ComputeTarget

    ws = open_workspace(workspace_ref)
    config = AmlCompute.provisioning_configuration(vm_size=vm_size, max_nodes=max_nodes,
                                                   idle_seconds_before_scaledown=idle_seconds)
    target = ComputeTarget.create(ws, name, config)
    _console().print(f"compute target [bold]{target.name}[/bold]: up to {target.max_nodes} runs at once ({vm_size})")


@compute.group("attach")
def compute_attach() -> None:
    """Attach an existing cluster as a compute target (Ray: `runlab compute attach ray NAME --address URL`)."""


@compute_attach.command("ray")
@click.argument("name")
@workspace_option
@click.option("--address", required=True, metavar="URL",
              help="The Ray dashboard's URL (Ray's Jobs API), for example http://127.0.0.1:8265.")
@click.option("--num-cpus", type=float, default=1, show_default=True, help="CPUs each run's Ray job asks for.")
@click.option("--num-gpus", type=float, default=None, help="GPUs each run's Ray job asks for (default: none).")
@click.option("--memory", type=int, default=None, metavar="BYTES",
              help="Memory each run's Ray job asks for, in bytes (default: no reservation).")
@click.option("--resource", "resources", multiple=True, metavar="NAME=AMOUNT",
              help="A custom Ray resource each run asks for; repeat for several.")
@click.option("--max-nodes", type=int, default=4, show_default=True,
              help="Runs of this target on the cluster at once; more wait in the queue.")
@click.option("--idle-seconds", type=int, default=120, show_default=True,
              help="The target's agent (on this machine) stops after this many idle seconds.")
@friendly_errors
def compute_attach_ray(name: str, workspace_ref: str | None, address: str, num_cpus: float, num_gpus: float | None,
                       memory: int | None, resources: tuple[str, ...], max_nodes: int, idle_seconds: int) -> None:
    """Attach the Ray cluster at --address as compute target NAME: each run becomes a Ray job."""
    from runlab.sdk.compute import ComputeTarget, RayCompute

    custom: dict[str, float] = {}
    for item in resources:
        key, sep, amount = item.partition("=")
        try:
            custom[key.strip()] = float(amount)
        except ValueError:
            sep = ""
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r}: give NAME=AMOUNT, for example accelerator=1", param_hint="--resource")
    ws = open_workspace(workspace_ref)
    config = RayCompute.attach_configuration(address=address, num_cpus=num_cpus, num_gpus=num_gpus, memory=memory,
                                             resources=custom, max_nodes=max_nodes,
                                             idle_seconds_before_scaledown=idle_seconds)
    target = ComputeTarget.attach(ws, name, config)
    _console().print(f"compute target [bold]{target.name}[/bold]: Ray cluster at {config.address}, "
                     f"up to {target.max_nodes} runs at once")


@compute.command("list")
@workspace_option
@friendly_errors
def compute_list(workspace_ref: str | None) -> None:
    """List compute targets with their nodes and queue."""
    from rich.table import Table

    from runlab.execution.targets import LOCAL
    from runlab.sdk.compute import ComputeTarget

    ws = open_workspace(workspace_ref)
    targets = ComputeTarget.list(ws)
    table = Table("name", "vm size", "max nodes", "busy", "queued", "agent")
    local = _local_status(ws)
    table.add_row(f"{LOCAL} (built in)", "", str(local.max_nodes), str(local.busy_nodes), str(local.queued_runs),
                  _agent_cell(local))
    for target in targets:
        status = target.get_status()
        size = target.vm_size or (f"ray: {target.serialize().get('address')}" if target.type == "Ray" else "")
        table.add_row(target.name, size, str(target.max_nodes), str(status.busy_nodes),
                      str(status.queued_runs), _agent_cell(status))
    _console().print(table)
    if not targets:
        _console().print("runs go to 'local' unless told otherwise: create a cluster with "
                         "`runlab compute create cpu-cluster`")


def _local_status(ws: "Workspace") -> "ComputeTargetStatus":
    """The built-in target ``local`` (the default of submit): this machine, one run per core."""
    from runlab.core.status import ACTIVE_STATUSES, RunStatus
    from runlab.execution.targets import LOCAL, TargetSettings, agent_state, read_agent_state
    from runlab.sdk.compute import ComputeTargetStatus

    settings = TargetSettings.load(ws.folder, LOCAL)
    counts = ws.folder.store.count_runs_by_status(LOCAL)
    queued = counts.get(RunStatus.QUEUED, 0)
    running = sum(n for status, n in counts.items() if status in ACTIVE_STATUSES and status != RunStatus.QUEUED)
    state = read_agent_state(ws.folder, LOCAL)
    busy = int(state.get("busy", 0)) if state else 0
    pid = state.get("pid") if state else None
    return ComputeTargetStatus("Succeeded", settings.max_nodes, busy, settings.max_nodes - busy, queued, running,
                               pid if isinstance(pid, int) else None, agent_state(ws.folder, LOCAL, queued))


@compute.command("show")
@click.argument("name")
@workspace_option
@friendly_errors
def compute_show(name: str, workspace_ref: str | None) -> None:
    """Show one compute target: settings, nodes busy and idle, runs queued."""
    from runlab.execution.targets import LOCAL
    from runlab.sdk.compute import ComputeTarget

    ws = open_workspace(workspace_ref)
    console = _console()
    if name == LOCAL:
        status = _local_status(ws)
        fields = {"name": LOCAL, "type": "built in: this machine, the default of submit", **status.serialize()}
    else:
        target = ComputeTarget(workspace=ws, name=name)
        status = target.get_status()
        fields = {**target.serialize(), **status.serialize()}
    for key, value in fields.items():
        console.print(f"{_snake(key):>29}: {'' if value is None else value}")
    if fields.get("type") == "Ray":
        _print_cluster(target.get_cluster())  # type: ignore[attr-defined]
    if status.agent_state == "Down":
        console.print(f"[yellow]the agent of {name} is down with {status.queued_runs} run(s) queued "
                      "(it died): a new one is starting[/yellow]")


def _print_cluster(info: dict[str, object]) -> None:
    console = _console()
    console.print(f"{'ray_dashboard':>29}: {info.get('dashboard')}")
    if info.get("error"):
        console.print(f"[red]{'ray_cluster':>29}: {info['error']}[/red]")
        return
    memory = int(info.get("memoryBytes") or 0)  # type: ignore[call-overload]
    console.print(f"{'ray_version':>29}: {info.get('rayVersion')}")
    console.print(f"{'ray_nodes':>29}: {info.get('nodes')} alive" +
                  (f", {info.get('deadNodes')} dead" if info.get("deadNodes") else ""))
    console.print(f"{'ray_cpus':>29}: {_number(info.get('cpus'))}")
    console.print(f"{'ray_gpus':>29}: {_number(info.get('gpus'))}")
    console.print(f"{'ray_memory':>29}: {memory / 2**30:.1f} GiB")
    console.print(f"{'ray_jobs_running':>29}: {info.get('runningJobs')} (pending {info.get('pendingJobs')}; "
                  f"runlab's: {info.get('runlabJobs')})")


def _number(value: object) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def _snake(key: str) -> str:
    """``idleSecondsBeforeScaledown`` (Azure's JSON) as the rest of the CLI writes it: ``idle_seconds_before_scaledown``."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()


def _agent_cell(status: "ComputeTargetStatus") -> str:
    if status.agent_pid:
        return f"pid {status.agent_pid}"
    return {"Down": "down: restarting"}.get(str(status.agent_state), str(status.agent_state).lower())


@compute.command("delete")
@click.argument("name")
@workspace_option
@friendly_errors
def compute_delete(name: str, workspace_ref: str | None) -> None:
    """Delete compute target NAME (its agent finishes its runs, then stops)."""
    from runlab.sdk.compute import ComputeTarget

    ComputeTarget(workspace=open_workspace(workspace_ref), name=name).delete()
    _console().print(f"deleted compute target {name}")
