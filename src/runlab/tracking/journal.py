"""Append-only journal of metric batches the store could not take, replayed when it can.

A journal file belongs to one process and one run: ``<run_id>@<host>-<pid>-<start>.jrnl``.
Each record is ``length (4 bytes) | crc32 (4 bytes) | JSON``; a torn last record (the process
died mid-write) fails its checksum and is ignored. Each record carries a batch id, so that
replaying a record the store already took is a no-op.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterator

from runlab.core.entities import MetricBatch
from runlab.core.process import current_identity, is_local_process_dead

_HEADER = struct.Struct("<II")
SUFFIX = ".jrnl"


def journal_name(run_id: str) -> str:
    host, pid, start = current_identity().rsplit(":", 2)
    return f"{run_id}@{host}-{pid}-{start}{SUFFIX}"


def owner_of(path: Path) -> str | None:
    """The process identity (core.process) encoded in a journal file name."""
    try:
        tail = path.name[: -len(SUFFIX)].rsplit("@", 1)[1]
        host, pid, start = tail.rsplit("-", 2)
        return f"{host}:{pid}:{start}"
    except (IndexError, ValueError):
        return None


def run_id_of(path: Path) -> str:
    return path.name[: -len(SUFFIX)].rsplit("@", 1)[0]


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, batch_id: str, run_id: str, batches: list[MetricBatch]) -> None:
        payload = json.dumps(
            {"batch_id": batch_id, "run_id": run_id, "batches": [_batch_dict(b) for b in batches]},
            allow_nan=True,
            separators=(",", ":"),
        ).encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as f:
            f.write(_HEADER.pack(len(payload), zlib.crc32(payload)) + payload)
            f.flush()
            os.fsync(f.fileno())

    def records(self) -> Iterator[tuple[str, str, list[MetricBatch]]]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        pos = 0
        while pos + _HEADER.size <= len(data):
            length, crc = _HEADER.unpack_from(data, pos)
            payload = data[pos + _HEADER.size : pos + _HEADER.size + length]
            if len(payload) < length or zlib.crc32(payload) != crc:
                return  # torn tail
            pos += _HEADER.size + length
            record = json.loads(payload)
            yield record["batch_id"], record["run_id"], [MetricBatch(**b) for b in record["batches"]]

    def exists(self) -> bool:
        return self.path.exists()

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def _batch_dict(batch: MetricBatch) -> dict[str, Any]:
    d = asdict(batch)
    d["steps"], d["times"], d["values"] = list(batch.steps), list(batch.times), list(batch.values)
    return d


def orphan_journals(journal_dir: Path) -> list[Path]:
    """Journals whose process is gone: nobody else will replay them."""
    if not journal_dir.is_dir():
        return []
    return sorted(p for p in journal_dir.glob("*" + SUFFIX) if is_local_process_dead(owner_of(p)))


def replay(journal: Journal, store: Any) -> int:
    """Apply every record to ``store`` (idempotent), then delete the journal. Returns points."""
    points = 0
    for batch_id, run_id, batches in journal.records():
        store.append_metrics(run_id, batches, batch_id=batch_id)
        points += sum(len(b.values) for b in batches)
    journal.remove()
    return points
