"""Every submitted run gets thread counts for torch and the BLAS libraries from its CPU allotment."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import runlab
from runlab.execution.targets import LOCAL, TargetSettings
from tests_support import stop_agents

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def _cores() -> int:
    return len(os.sched_getaffinity(0))


@pytest.mark.parametrize(("max_nodes", "cap", "expected"), [
    (1, None, lambda cores: cores),  # no vm_size cap known: the cores, shared by max_nodes runs
    (4, None, lambda cores: max(1, cores // 4)),
    (1000, None, lambda cores: 1),
    (1, 1, lambda cores: 1),  # the vm_size cap
    (1, 10_000, lambda cores: cores),
])
def test_threads_per_run(max_nodes: int, cap: int | None, expected: object) -> None:
    settings = TargetSettings("cpu-cluster", max_nodes, 60, cap)
    assert callable(expected)
    assert settings.threads_per_run == expected(_cores())


def test_the_local_target_gives_each_run_a_share_of_the_cores(ws: runlab.Workspace) -> None:
    local = TargetSettings.load(ws.folder, LOCAL)
    assert local.threads_per_run == max(1, _cores() // local.max_nodes)


@pytest.mark.slow
def test_a_submitted_run_gets_them_without_a_known_vm_size(ws: runlab.Workspace, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    for var in THREAD_VARS:
        monkeypatch.delenv(var, raising=False)  # the agent inherits this process's environment
    config = runlab.AmlCompute.provisioning_configuration(vm_size="SOME_CUSTOM_SIZE", max_nodes=1)
    runlab.ComputeTarget.create(ws, "cpu-cluster", config)
    src = tmp_path / "src"
    src.mkdir()
    (src / "threads.py").write_text(
        "import json, os\n"
        f"print('THREADS', json.dumps({{v: os.environ.get(v) for v in {THREAD_VARS!r}}}))\n")
    try:
        run = runlab.Experiment(ws, "threads").submit(
            runlab.ScriptRunConfig(source_directory=str(src), script="threads.py", compute_target="cpu-cluster"))
        run.wait_for_completion(timeout_seconds=120)
        with run.open_file("azureml-logs/70_driver_log.txt") as f:
            line = next(x for x in f.read().decode().splitlines() if x.startswith("THREADS "))
    finally:
        stop_agents(ws)
    assert json.loads(line.split(" ", 1)[1]) == {var: str(_cores()) for var in THREAD_VARS}
