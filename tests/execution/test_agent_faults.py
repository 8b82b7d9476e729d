"""Faults around the agent (issue 13): nothing lost, nothing stuck.

Real agents, a real SQLite workspace in a temp folder, real signals. Every process a test starts
(agents and their watchdogs, scripts, the children scripts leave behind, uv and build backends)
carries the test's own ``RUNLAB_HOME``; the ``leftovers`` fixture stops each of them by its pid at
the end, whatever happened.
"""

from __future__ import annotations

import os
import signal
import textwrap
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest
from click.testing import CliRunner
from filelock import FileLock

import runlab
from runlab import AmlCompute, ComputeTarget, Environment, ScriptRunConfig
from runlab.cli.main import cli
from runlab.execution.environments import EnvironmentBuildCanceled, EnvironmentDefinition, build_environment
from runlab.execution.targets import agent_is_running, read_agent_state

pytestmark = pytest.mark.slow

DEADLINE_S = 60.0  # what takes a fraction of a second, or minutes when it is broken


# -- processes -------------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, killed and not yet reaped, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().decode(errors="replace").rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _pids_with_home(home: Path) -> list[int]:
    """Processes whose environment names this test's RUNLAB_HOME (all that the test started)."""
    marker = f"RUNLAB_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0") and _alive(int(entry.name)):
            found.append(int(entry.name))
    return found


@pytest.fixture(autouse=True)
def leftovers(runlab_home: Path) -> Iterator[None]:
    """After the test: SIGKILL, each by its pid, every process it started, until none is left."""
    yield
    quiet_since = time.monotonic()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pids = _pids_with_home(runlab_home)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if pids:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 3:  # an agent being started would show up by now
            return
        time.sleep(0.1)


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = DEADLINE_S) -> float:
    """Poll ``condition``; returns the seconds it took, fails the test naming ``what`` after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"not reached within {timeout:.0f} s: {what}")


def _agent_pids(ws: runlab.Workspace) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"runlab.execution.agent" in argv and str(ws.path).encode() in argv and _alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def _kill_agent(ws: runlab.Workspace, target: str) -> None:
    """SIGKILL the target's agent, once the extra agents that submits started have gone."""
    state = read_agent_state(ws.folder, target)
    assert state is not None, f"no agent serves {target}"
    _wait_for(lambda: _agent_pids(ws) == [int(state["pid"])], "the extra agents started by submit gone")
    os.kill(int(state["pid"]), signal.SIGKILL)
    _wait_for(lambda: not agent_is_running(ws.folder, target), "the killed agent let go of its lock")


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def src(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    # waits for its go file, so that runs stay Running (or Queued) as long as a test needs
    (folder / "wait.py").write_text(textwrap.dedent("""\
        import os, sys, time
        print("waiting for", sys.argv[1], flush=True)
        while not os.path.exists(sys.argv[1]):
            time.sleep(0.05)
    """))
    # leaves a child behind: `sleep 300`, holding the script's stderr
    (folder / "parent.py").write_text(textwrap.dedent("""\
        import os, subprocess, sys, time
        child = subprocess.Popen(["sleep", "300"])
        with open(sys.argv[1] + ".tmp", "w") as f:
            f.write(f"{os.getpid()} {child.pid}")
        os.replace(sys.argv[1] + ".tmp", sys.argv[1])
        time.sleep(600)
    """))
    return folder


def _pool(ws: runlab.Workspace, name: str, max_nodes: int) -> ComputeTarget:
    config = AmlCompute.provisioning_configuration(max_nodes=max_nodes, idle_seconds_before_scaledown=60)
    return ComputeTarget.create(ws, name, config)


# -- 10: queued runs are served after the agent dies -------------------------------------------


def test_queued_runs_are_served_by_a_new_agent_after_the_agent_dies(
    ws: runlab.Workspace, src: Path, tmp_path: Path
) -> None:
    _pool(ws, "pool", max_nodes=2)
    go = tmp_path / "go"
    experiment = runlab.Experiment(ws, "agent-dies-with-a-queue")
    runs = [experiment.submit(ScriptRunConfig(str(src), "wait.py", arguments=[str(go)], compute_target="pool"))
            for _ in range(20)]
    _wait_for(lambda: sum(r.get_status() == "Running" for r in runs) == 2, "two runs Running")
    running = [r.id for r in runs if r.get_status() == "Running"]
    queued = [r.id for r in runs if r.id not in running]
    assert all(ws.get_run(run_id).get_status() == "Queued" for run_id in queued)

    _kill_agent(ws, "pool")
    go.touch()
    # only reads from here on: no submit
    took = _wait_for(lambda: all(ws.get_run(run_id).get_status() == "Completed" for run_id in queued),
                     "the queued runs Completed", timeout=3 * DEADLINE_S)
    print(f"\nagent killed with {len(queued)} runs queued: all Completed {took:.2f} s later")
    assert all(ws.get_run(run_id).get_status() == "Failed" for run_id in running)


def test_compute_show_says_the_agent_is_down_and_restarts_it(
    ws: runlab.Workspace, src: Path, tmp_path: Path
) -> None:
    _pool(ws, "solo", max_nodes=1)
    go = tmp_path / "go"
    experiment = runlab.Experiment(ws, "down")
    first = experiment.submit(ScriptRunConfig(str(src), "wait.py", arguments=[str(go)], compute_target="solo"))
    second = experiment.submit(ScriptRunConfig(str(src), "wait.py", arguments=[str(go)], compute_target="solo"))
    _wait_for(lambda: first.get_status() == "Running", "the first run Running")
    _kill_agent(ws, "solo")

    runner = CliRunner()
    shown = runner.invoke(cli, ["compute", "show", "solo", "--workspace", str(ws.path)])
    assert shown.exit_code == 0, shown.output
    assert "agent_state: Down" in shown.output and "queued_runs: 1" in shown.output

    def agent_running_again() -> bool:
        again = runner.invoke(cli, ["compute", "show", "solo", "--workspace", str(ws.path)])
        return "agent_state: Running" in again.output

    _wait_for(agent_running_again, "compute show: the agent Running again")
    go.touch()
    assert second.wait_for_completion(timeout_seconds=DEADLINE_S)["status"] == "Completed"


# -- 11: the script's children do not survive it ---------------------------------------------


@pytest.mark.parametrize("killed", ["script", "agent"])
def test_children_of_a_killed_script_are_killed(
    ws: runlab.Workspace, src: Path, tmp_path: Path, killed: str
) -> None:
    _pool(ws, "orphans", max_nodes=1)
    pids_file = tmp_path / "pids"
    run = runlab.Experiment(ws, "orphans").submit(
        ScriptRunConfig(str(src), "parent.py", arguments=[str(pids_file)], compute_target="orphans"))
    _wait_for(pids_file.exists, "the script started its child")
    script_pid, child_pid = map(int, pids_file.read_text().split())
    assert _alive(child_pid)

    killed_at = time.monotonic()
    if killed == "script":
        os.kill(script_pid, signal.SIGKILL)
    else:
        _kill_agent(ws, "orphans")
    _wait_for(lambda: run.get_status() == "Failed", "the run Failed")
    print(f"\n{killed} killed: run Failed after {time.monotonic() - killed_at:.2f} s")
    _wait_for(lambda: not _alive(child_pid), f"the script's child (pid {child_pid}) gone")
    if killed == "script":
        assert "killed by signal 9" in run.get_details()["error"]["message"]


# -- 12: cancel while the environment builds -------------------------------------------------


def _hanging_package(folder: Path, pids_file: Path) -> Path:
    """A local package whose build backend records its pid and that of its parent (uv), then hangs."""
    folder.mkdir()
    (folder / "pyproject.toml").write_text(textwrap.dedent("""\
        [build-system]
        requires = []
        build-backend = "hanging_backend"
        backend-path = ["."]

        [project]
        name = "hanging-package"
        version = "0.1"
    """))
    (folder / "hanging_backend.py").write_text(textwrap.dedent(f"""\
        import os, time

        def _hang(*args, **kwargs):
            with open({str(pids_file) + ".tmp"!r}, "w") as f:
                f.write(f"{{os.getpid()}} {{os.getppid()}}")
            os.replace({str(pids_file) + ".tmp"!r}, {str(pids_file)!r})
            time.sleep(600)

        get_requires_for_build_wheel = prepare_metadata_for_build_wheel = build_wheel = _hang
    """))
    return folder


def test_cancel_during_preparing_stops_the_build(ws: runlab.Workspace, src: Path, tmp_path: Path) -> None:
    _pool(ws, "builder", max_nodes=1)
    pids_file = tmp_path / "build-pids"
    package = _hanging_package(tmp_path / "hanging", pids_file)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"{package}\n")
    config = ScriptRunConfig(str(src), "wait.py", arguments=[str(tmp_path / "go")], compute_target="builder",
                             environment=Environment.from_pip_requirements("hanging-env", requirements))
    run = runlab.Experiment(ws, "cancel-build").submit(config)
    _wait_for(pids_file.exists, "the build reached the package's build backend", timeout=180)
    backend_pid, uv_pid = map(int, pids_file.read_text().split())
    assert run.get_status() == "Preparing"

    run.cancel()
    took = _wait_for(lambda: run.get_status() in ("Canceled", "Failed", "Completed"), "the run ended")
    print(f"\ncancel during Preparing: run {run.get_status()} after {took:.2f} s")
    assert run.get_status() == "Canceled"
    _wait_for(lambda: not _alive(backend_pid) and not _alive(uv_pid), "the build's processes gone")
    with run.open_file("azureml-logs/55_agent_log.txt") as f:
        assert "run Canceled" in f.read().decode()


def test_cancel_stops_a_build_waiting_for_another_process_build(tmp_path: Path) -> None:
    definition = EnvironmentDefinition("waits", pip_requirements=("six",))
    lock = FileLock(str(tmp_path / f"{definition.content_hash()[:16]}.lock"))  # another process builds it
    cancel = threading.Event()
    outcome: list[BaseException] = []

    def build() -> None:
        try:
            build_environment(definition, tmp_path, cancel=cancel)
        except BaseException as exc:
            outcome.append(exc)

    with lock:
        thread = threading.Thread(target=build, daemon=True)
        thread.start()
        cancel.set()
        thread.join(DEADLINE_S)
    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], EnvironmentBuildCanceled)
    assert "waiting for another process's build" in str(outcome[0])


def test_the_wake_fifo_is_never_a_planted_file_or_link(tmp_path: Path) -> None:
    """``agents/<target>.wake`` replaced by a regular file or a link: a waker writes nothing through it, and
    the agent makes its FIFO anew instead of opening what was planted."""
    import stat

    from runlab.execution.targets import agent_wake_path, open_wake_fifo, wake_agent

    ws = runlab.Workspace.create("wake-ws", path=tmp_path / "ws")
    path = agent_wake_path(ws.folder, "cpu-cluster")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    path.symlink_to(victim)
    assert wake_agent(ws.folder, "cpu-cluster") is False and victim.read_text() == "keep"
    fds = open_wake_fifo(ws.folder, "cpu-cluster")
    try:
        assert stat.S_ISFIFO(path.lstat().st_mode) and victim.read_text() == "keep"
        assert wake_agent(ws.folder, "cpu-cluster") is True
        assert os.read(fds[0], 16) == b"\x01"
    finally:
        for fd in fds:
            os.close(fd)
    assert wake_agent(ws.folder, "cpu-cluster") is False  # nobody listens: no error, no block
    path.unlink()
    path.write_text("planted")
    assert wake_agent(ws.folder, "cpu-cluster") is False and path.read_text() == "planted"
