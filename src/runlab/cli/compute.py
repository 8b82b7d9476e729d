"""``runlab compute``: pools of this machine that run submitted runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from runlab.cli.main import _console, friendly_errors, open_workspace, workspace_option

if TYPE_CHECKING:
    from runlab.sdk.compute import ComputeTargetStatus


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

    from runlab.sdk.compute import ComputeTarget

    ws = open_workspace(workspace_ref)
    targets = ComputeTarget.list(ws)
    if not targets:
        _console().print("no compute targets yet (runs go to 'local'): create one with `runlab compute create cpu-cluster`")
        return
    table = Table("name", "vm size", "max nodes", "busy", "queued", "agent")
    for target in targets:
        status = target.get_status()
        table.add_row(target.name, target.vm_size or "", str(target.max_nodes), str(status.busy_nodes),
                      str(status.queued_runs), _agent_cell(status))
    _console().print(table)


@compute.command("show")
@click.argument("name")
@workspace_option
@friendly_errors
def compute_show(name: str, workspace_ref: str | None) -> None:
    """Show one compute target: settings, nodes busy and idle, runs queued."""
    from runlab.sdk.compute import ComputeTarget

    target = ComputeTarget(workspace=open_workspace(workspace_ref), name=name)
    console = _console()
    status = target.get_status()
    for key, value in {**target.serialize(), **status.serialize()}.items():
        console.print(f"{key:>28}: {value}")
    if status.agent_state == "Down":
        console.print(f"[yellow]the agent of {name} is down with {status.queued_runs} run(s) queued "
                      "(it died): a new one is starting[/yellow]")


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
