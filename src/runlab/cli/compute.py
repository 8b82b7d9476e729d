"""``runlab compute``: pools of this machine that run submitted runs."""

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
    """Create, list, show and delete compute targets."""


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
        table.add_row(target.name, target.vm_size or "", str(target.max_nodes), str(status.busy_nodes),
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
    if status.agent_state == "Down":
        console.print(f"[yellow]the agent of {name} is down with {status.queued_runs} run(s) queued "
                      "(it died): a new one is starting[/yellow]")


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
