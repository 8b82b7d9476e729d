"""``runlab submit``, ``runlab logs``, ``runlab cancel``."""

from __future__ import annotations

import sys
import time

import click

from runlab.cli.main import _console, friendly_errors, open_workspace, workspace_option


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--experiment", "-e", required=True, help="Experiment name.")
@click.option("--source", "source", default=".", show_default=True, type=click.Path(file_okay=False),
              help="Source folder (snapshotted).")
@click.option("--script", required=True, help="Script to run, relative to the source folder.")
@click.option("--environment", "environment_file", type=click.Path(dir_okay=False, exists=True),
              help="Conda spec (.yml) or pip requirements (.txt); default: this Python as is.")
@click.option("--compute", "compute_target", default="local", show_default=True, help="Compute target name.")
@click.option("--wait", is_flag=True, help="Stream the driver log until the run ends.")
@workspace_option
@click.argument("arguments", nargs=-1, type=click.UNPROCESSED)
@friendly_errors
def submit(experiment: str, source: str, script: str, environment_file: str | None, compute_target: str,
           wait: bool, workspace_ref: str | None, arguments: tuple[str, ...]) -> None:
    """Submit SCRIPT in a source folder as a run; arguments after -- go to the script.

    Example: runlab submit -e day1 --source src --script train.py --compute cpu-cluster -- --lr 0.01"""
    from runlab.sdk.experiment import Experiment
    from runlab.sdk.script_run_config import ScriptRunConfig

    ws = open_workspace(workspace_ref)
    config = ScriptRunConfig(source_directory=source, script=script, arguments=list(arguments),
                             compute_target=compute_target)
    if environment_file:
        from runlab.sdk.environment import Environment

        name = experiment + "-env"
        env = (Environment.from_conda_specification(name, environment_file)
               if environment_file.endswith((".yml", ".yaml")) else Environment.from_pip_requirements(name, environment_file))
        config.run_config.environment = env
    run = Experiment(ws, experiment).submit(config)
    console = _console()
    console.print(f"submitted run [bold]{run.id}[/bold] to {compute_target}")
    console.print(run.get_portal_url())
    if wait:
        run.wait_for_completion(show_output=True)


@click.command()
@click.argument("run_id")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until the run ends.")
@click.option("--file", "log_name", default=None, help="Which log file (default: the driver log).")
@workspace_option
@friendly_errors
def logs(run_id: str, follow: bool, log_name: str | None, workspace_ref: str | None) -> None:
    """Print a run's driver log (or another log file), optionally following it."""
    from runlab.core.errors import FileNotFoundInRunError
    from runlab.core.layout import DRIVER_LOG, LOG_PREFIXES

    run = open_workspace(workspace_ref).get_run(run_id)
    name = log_name or DRIVER_LOG
    offset = 0
    while True:
        try:
            with run.open_file(name) as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundInRunError:
            if not follow:
                available = [n for n in run.get_file_names() if n.startswith(LOG_PREFIXES)]
                raise FileNotFoundInRunError(
                    f"run {run_id} has no log {name!r} yet (its logs: {', '.join(available) or 'none'})"
                ) from None
            data = b""
        if data:
            sys.stdout.write(data.decode(errors="replace"))
            sys.stdout.flush()
            offset += len(data)
        if not follow or run.record.status.is_terminal and not data:
            if follow:
                _console(stderr=True).print(f"run {run_id}: {run.get_status()}")
            return
        time.sleep(0.3)
        run._record = None


@click.command()
@click.argument("run_id")
@workspace_option
@friendly_errors
def cancel(run_id: str, workspace_ref: str | None) -> None:
    """Cancel a run: queued runs stop at once, running scripts get SIGTERM then SIGKILL."""
    run = open_workspace(workspace_ref).get_run(run_id)
    run.cancel()
    _console().print(f"run {run_id}: {run.get_status()}")
