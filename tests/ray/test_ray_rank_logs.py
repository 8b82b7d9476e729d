"""How the Ray agent splits a distributed job's log into per-rank files (``70_driver_log_<i>.txt``), on
logs that arrive in pieces: no Ray cluster needed (the agent's step is called on the pieces directly)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from runlab.execution.ray_target import RANK_LINE_MAX, RayAgent, RayJob


class _Agent(SimpleNamespace):
    def __init__(self, folder: Path) -> None:
        super().__init__(folder=folder, said=[])

    def _log_path(self, run_id: str, name: str) -> Path:
        path: Path = self.folder / run_id / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def _run_log(self, slot: Any, line: str) -> None:
        self.said.append(line)


def _split(agent: _Agent, job: RayJob, *pieces: bytes) -> None:
    slot = SimpleNamespace(run_id="r1")
    for piece in pieces:
        RayAgent._split_ranks(agent, slot, job, piece)  # type: ignore[arg-type]
    RayAgent._split_ranks(agent, slot, job, b"", final=True)  # type: ignore[arg-type]


def _rank(agent: _Agent, rank: int) -> bytes:
    path = agent.folder / "r1" / "azureml-logs" / f"70_driver_log_{rank}.txt"
    return path.read_bytes() if path.exists() else b""


def test_lines_split_across_polls_and_strange_prefixes(tmp_path: Path) -> None:
    agent, job = _Agent(tmp_path), RayJob(job_id="runlab-r1", ranks=2)
    _split(agent, job,
           b"runlab: 2 processes (RANK 0 to 1)\n[rank 0] hel", b"lo\n[rank 1] one\n[ra", b"nk 1] two\n",
           b"[rank 7] no such rank\n[rank 01] not a rank's prefix\n[rank 0] [rank 1] said by rank 0\n",
           b"[rank 1]no space\n  [rank 1] indented\n[rank 0] \xff bytes\n[rank 1] last, without newline")
    assert _rank(agent, 0) == b"hello\n[rank 1] said by rank 0\n\xff bytes\n"
    assert _rank(agent, 1) == b"one\ntwo\nlast, without newline\n"
    assert not (tmp_path / "r1" / "azureml-logs" / "70_driver_log_7.txt").exists()
    assert job.rank_partial == b""


def test_a_line_without_end_is_written_in_pieces_not_kept_in_memory(tmp_path: Path) -> None:
    agent, job = _Agent(tmp_path), RayJob(job_id="runlab-r1", ranks=2)
    slot = SimpleNamespace(run_id="r1")
    chunk = b"x" * (RANK_LINE_MAX // 4)
    RayAgent._split_ranks(agent, slot, job, b"[rank 0] " + chunk)  # type: ignore[arg-type]
    for _ in range(8):
        RayAgent._split_ranks(agent, slot, job, chunk)  # type: ignore[arg-type]
        assert len(job.rank_partial) <= RANK_LINE_MAX
    assert _rank(agent, 0).startswith(b"x" * 1000)  # the line's first part is in rank 0's file already
    RayAgent._split_ranks(agent, slot, job, b"end\n[rank 1] next\n")  # type: ignore[arg-type]
    # every x of the line went to rank 0's file (in pieces of at most RANK_LINE_MAX), none to rank 1's
    assert _rank(agent, 0).replace(b"\n", b"") == b"x" * (9 * len(chunk)) + b"end"
    assert _rank(agent, 1) == b"next\n"


def test_an_unwritable_rank_file_is_said_and_the_others_still_written(tmp_path: Path) -> None:
    agent, job = _Agent(tmp_path), RayJob(job_id="runlab-r1", ranks=2)
    (tmp_path / "r1" / "azureml-logs" / "70_driver_log_1.txt").mkdir(parents=True)  # a folder: open fails
    _split(agent, job, b"[rank 0] zero\n[rank 1] one\n")
    assert _rank(agent, 0) == b"zero\n"
    assert any("70_driver_log_1.txt" in line for line in agent.said), agent.said
