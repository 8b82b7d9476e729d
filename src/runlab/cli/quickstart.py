"""``runlab quickstart [DIR]``: the four-part tutorial, written into DIR and run end to end.

The project's files are ``examples/tutorial`` of the repository (the wheel carries that folder as
``runlab/tutorial``; there is one copy). Each step makes the calls of the tutorial's script of the
same part, on the workspace whose ``config.json`` it writes to ``DIR/.azureml``, so that the user
can then run the same scripts by hand from DIR.
"""

from __future__ import annotations

import fnmatch
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import click

from runlab.cli.late import friendly_errors
from runlab.core.errors import RunlabError

if TYPE_CHECKING:
    from runlab.sdk.run import Run
    from runlab.sdk.workspace import Workspace

DEFAULT_DIR = "runlab-tutorial"
WORKSPACE = "tutorial-ws"
CLUSTER = "cpu-cluster"
DATA_TARGET = "datasets/cifar10"
CIFAR_FOLDER = "cifar-10-batches-py"
_NOT_COPIED = ("config.json", "__pycache__", "data", "outputs", "*.pyc")




def tutorial_source() -> Path:
    """The tutorial's project: ``runlab/tutorial`` in an installed wheel, ``examples/tutorial`` of
    the checkout for an editable install."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "tutorial", package.parents[1] / "examples" / "tutorial"):
        if (candidate / "src" / "train.py").is_file():
            return candidate
    raise click.ClickException(f"the tutorial's files are missing from this installation ({package / 'tutorial'})")


def write_project(project: Path) -> tuple[int, int]:
    """Copy the tutorial's files into ``project``; files already there are kept (the user's edits).
    Returns (written, kept)."""
    source = tutorial_source()
    written = kept = 0
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if not path.is_file() or any(fnmatch.fnmatch(part, p) for part in rel.parts for p in _NOT_COPIED):
            continue
        target = project / rel
        if target.exists():
            kept += 1
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        written += 1
    return written, kept


@dataclass
class Step:
    title: str
    seconds: float = 0.0
    note: str = ""


@dataclass
class Quickstart:
    project: Path
    console: Any
    steps: list[Step] = field(default_factory=list)
    runs: dict[str, "Run"] = field(default_factory=dict)

    def step(self, title: str, action: Callable[[], str]) -> None:
        """Run one step under a spinner, then print its line with its time and what it did."""
        from rich.markup import escape

        started = time.monotonic()
        with self.console.status(f"{title} ..."):
            note = action()
        done = Step(title, time.monotonic() - started, note)
        self.steps.append(done)
        self.console.print(f"[green]✓[/green] {title:<44} {done.seconds:6.1f} s   {escape(note)}", soft_wrap=True)

    def submit(self, ws: "Workspace", experiment: str, script: str, arguments: list[Any],
               environment: bool) -> str:
        from runlab.sdk.environment import Environment
        from runlab.sdk.experiment import Experiment
        from runlab.sdk.script_run_config import ScriptRunConfig

        config = ScriptRunConfig(source_directory=str(self.project / "src"), script=script,
                                 compute_target=CLUSTER, arguments=arguments)
        if environment:
            config.run_config.environment = Environment.from_conda_specification(
                name="pytorch-env", file_path=str(self.project / ".azureml" / "pytorch-env.yml"))
        run = Experiment(workspace=ws, name=experiment).submit(config)
        self.runs[experiment] = run
        run.wait_for_completion(show_output=False, raise_on_error=False)
        status = run.get_status()
        if status != "Completed":
            error = (run.get_details().get("error") or {}).get("message", "")
            raise click.ClickException(
                f"run {run.id} of {experiment} is {status}: {error}\n  its log: "
                f"{self.here()}runlab logs {run.id}")
        return f"run {run.id} {status}" + (f"; environment {self.environment_note(run)}" if environment else "")

    @staticmethod
    def environment_note(run: "Run") -> str:
        from runlab.core.layout import BUILD_LOG

        try:
            with run.open_file(BUILD_LOG) as f:
                log = f.read().decode(errors="replace")
        except (RunlabError, OSError):
            return "ready"
        return "reused from the cache (nothing built)" if "found in the cache" in log else "built"

    def here(self) -> str:
        return cd_prefix(self.project)


def cd_prefix(project: Path) -> str:
    """``cd DIR && `` as the user types it from where they stand (nothing when DIR is here)."""
    rel = os.path.relpath(project, Path.cwd())
    return "" if rel == "." else f"cd {shlex.quote(rel)} && "


def look_further(project: Path, run_id: str | None) -> list[str]:
    """The commands quickstart suggests at the end, each working from the current folder."""
    here = cd_prefix(project)
    commands = [f"{here}runlab runs list"]
    if run_id is not None:
        commands.append(f"{here}runlab metrics {run_id} loss")
    commands.append(f"{here}runlab studio")
    return commands


def _workspace(project: Path) -> tuple["Workspace", str]:
    from runlab.sdk.workspace import Workspace

    ws = Workspace.create(name=WORKSPACE, exist_ok=True)
    config = ws.write_config(path=str(project / ".azureml"))
    return ws, f"workspace {ws.name}; config {config}"


def _cluster(ws: "Workspace") -> str:
    from runlab.core.errors import ComputeTargetException
    from runlab.sdk.compute import AmlCompute, ComputeTarget

    try:
        ComputeTarget(workspace=ws, name=CLUSTER)
        return f"{CLUSTER} exists: reused"
    except ComputeTargetException:
        config = AmlCompute.provisioning_configuration(vm_size="STANDARD_D2_V2", idle_seconds_before_scaledown=2400,
                                                       min_nodes=0, max_nodes=4)
        ComputeTarget.create(ws, CLUSTER, config).wait_for_completion(show_output=False)
        return f"{CLUSTER} created (max_nodes=4)"


def _data(project: Path, images: int) -> str:
    folder = project / "data" / CIFAR_FOLDER
    if folder.is_dir():
        return f"{folder} exists: used as it is"
    done = subprocess.run([sys.executable, "make_cifar10.py", "--images", str(images)], cwd=project,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise click.ClickException(f"make_cifar10.py failed: {done.stderr.strip()[-2000:]}")
    return (f"SYNTHETIC: {images} images in CIFAR-10's format (put the real {CIFAR_FOLDER} in "
            f"{project / 'data'} to train on it)")


def _upload(ws: "Workspace", project: Path) -> str:
    datastore = ws.get_default_datastore()
    store = ws.folder.store
    before = store.get_datastore_files(datastore.name, DATA_TARGET)
    datastore.upload(src_dir=str(project / "data"), target_path=DATA_TARGET, overwrite=False, show_progress=False)
    after = store.get_datastore_files(datastore.name, DATA_TARGET)
    copied = [p for p, rec in after.items() if p not in before or before[p].uploaded_at != rec.uploaded_at]
    skipped = len(after) - len(copied)
    if not copied:
        return f"nothing uploaded: all {skipped} files already in {datastore.name}/{DATA_TARGET}"
    return f"uploaded {len(copied)} files to {datastore.name}/{DATA_TARGET}" + (
        f"; skipped {skipped} already there" if skipped else "")


@click.command()
@click.argument("directory", default=DEFAULT_DIR, type=click.Path(file_okay=False))
@click.option("--images", default=2000, show_default=True, type=click.IntRange(5),
              help="Training images of the synthetic CIFAR-10 (and of part 3's generated set).")
@click.option("--epochs", default=2, show_default=True, type=click.IntRange(1), help="Epochs of each training run.")
@click.option("--open", "open_studio", is_flag=True, help="Start the studio at the end.")
@click.option("--port", "-p", default=None, type=click.IntRange(1, 65535),
              help="Port of the studio that --open starts (default: runlab studio's).")
@friendly_errors
def quickstart(directory: str, images: int, epochs: int, open_studio: bool, port: int | None) -> None:
    """Write the four-part tutorial into DIRECTORY (default ./runlab-tutorial) and run it end to end.

    Creates the workspace (config.json in DIRECTORY/.azureml) and the compute cluster, runs hello
    world, trains with the conda environment, writes a synthetic CIFAR-10 unless DIRECTORY/data has
    one, uploads it and trains on it as a mounted dataset. A second run reuses the environment and
    the uploaded data. Then run the same steps by hand: cd DIRECTORY && python 01-create-workspace.py ...
    """
    from runlab.cli.main import _console
    from runlab.core.settings import load_settings
    from runlab.execution.targets import stop_agent

    if port is not None and not open_studio:
        raise click.UsageError("--port is the port of the studio that --open starts: add --open")
    project = Path(directory).resolve()
    console = _console()
    qs = Quickstart(project, console)
    console.print(f"runlab quickstart: the tutorial's four parts in {project}")
    total = time.monotonic()
    ws_box: list[Workspace] = []

    def files() -> str:
        written, kept = write_project(project)
        return f"{written} files written" + (f", {kept} already there kept" if kept else "")

    def workspace() -> str:
        ws, note = _workspace(project)
        ws_box.append(ws)
        return note

    qs.step("tutorial files", files)
    qs.step("part 1: workspace", workspace)
    ws = ws_box[0]
    try:
        qs.step("part 2: compute cluster", lambda: _cluster(ws))
        qs.step("part 2: hello world", lambda: qs.submit(ws, "day1-experiment-hello", "hello.py", [], False))
        qs.step("part 3: train with the conda environment", lambda: qs.submit(
            ws, "day1-experiment-train", "train.py", ["--samples", images, "--epochs", epochs], True))
        qs.step("part 4: CIFAR-10 data", lambda: _data(project, images))
        qs.step("part 4: upload the data", lambda: _upload(ws, project))

        def train_on_data() -> str:
            from runlab.sdk.dataset import Dataset

            dataset = Dataset.File.from_files(path=(ws.get_default_datastore(), DATA_TARGET))
            return qs.submit(ws, "day1-experiment-data", "train.py", [
                "--data_path", dataset.as_named_input("input").as_mount(),
                "--learning_rate", 0.003, "--momentum", 0.92, "--epochs", epochs], True)

        qs.step("part 4: train on the dataset", train_on_data)
    finally:
        stopped = stop_agent(ws.folder, CLUSTER)
    console.print(f"done in {time.monotonic() - total:.1f} s" +
                  (f"; stopped {CLUSTER}'s agent (pid {stopped}): the next submit starts it again" if stopped else ""))
    console.print()
    for experiment, run in qs.runs.items():
        line = f"  {experiment:<24} {run.id}  {run.get_status()}"
        loss = run.get_metrics().get("loss")
        if isinstance(loss, list) and loss:
            line += f"  loss {loss[0]:.3f} -> {loss[-1]:.3f} ({len(loss)} points)"
        console.print(line, soft_wrap=True)
    here = qs.here()
    last = qs.runs.get("day1-experiment-data")
    console.print("\nlook further:")
    for command in look_further(project, last.id if last is not None else None):
        then = f"        then open {load_settings().studio_url}" if command.endswith("studio") else ""
        console.print(f"  {command}{then}", soft_wrap=True)
    for run in qs.runs.values():
        console.print(f"    {run.get_portal_url()}", soft_wrap=True)
    console.print(f"  the same steps by hand: {here}python 01-create-workspace.py   (then 02 ... 06)", soft_wrap=True)
    if open_studio:
        from runlab.cli.studio import studio

        options: dict[str, Any] = {"workspace_ref": str(ws.path)} | ({"port": port} if port is not None else {})
        click.get_current_context().invoke(studio, **options)
