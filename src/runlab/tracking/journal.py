"""Append-only journal of what the store could not take yet, replayed when it can.

A journal file belongs to one process and one run: ``<run_id>@<host>-<pid>-<start>.jrnl``.
Only that process appends to it; anyone may replay it (replays are idempotent).

A record is ``MAGIC | meta length (u32) | blob length (u64) | crc32 (u32) | meta | blob``:
``meta`` is a small JSON object (the record's kind, the run, the batch id, and per metric its
name, kind, point count and how its arrays are encoded) and ``blob`` the points themselves as
packed arrays (int64 steps, float64 times, float64 or int64 values; JSON only for values that
are not numbers). A cycle of the flusher appends one record of the points it drained, so the
cost of journaling is that of the new points, never of what is already there.

Durability rules, each of which a test attacks:

- an append that fails (disk full) is truncated away, so a later append never follows a torn
  record;
- a torn or corrupt region (a process killed mid-write, a damaged disk) is skipped: the reader
  looks for the next record's magic and checks its checksum, so every whole record is kept;
- a journal is removed only after every record in it was applied (``replay`` stops at the first
  store failure and keeps the file).

Files written by runlab 0.1 (``length | crc32 | JSON``, no magic) are still read.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from runlab.core.entities import MetricBatch, MetricKind
from runlab.core.names import check_run_id
from runlab.core.process import current_identity, is_local_process_dead

SUFFIX = ".jrnl"
MAGIC = b"RLJ\x02"
_HEADER = struct.Struct("<4sIQI")  # magic, meta length, blob length, crc32(meta + blob)
_LEGACY_HEADER = struct.Struct("<II")  # runlab 0.1: length, crc32(JSON)
_MAX_META = 64 << 20
_MAX_FILE_NAME = 255

METRICS = "metrics"
STATUS = "status"  # the run's end: {"status", "error", "when"}
UPDATE = "update"  # a change of the run: {"op": "set_tags" | "remove_tags" | "add_properties", "args"}


def journal_name(run_id: str) -> str:
    """``<run id>@<host>-<pid>-<start>.jrnl``; a long run id is cut (and told apart by a hash) so the
    name stays within a file name's 255 bytes. Records carry the whole run id."""
    check_run_id(run_id)
    host, pid, start = current_identity().rsplit(":", 2)
    tail = f"@{host}-{pid}-{start}{SUFFIX}"
    if len(run_id) + len(tail) > _MAX_FILE_NAME:
        digest = hashlib.sha256(run_id.encode()).hexdigest()[:12]
        run_id = f"{run_id[: _MAX_FILE_NAME - len(tail) - len(digest) - 1]}-{digest}"
    return run_id + tail


def owner_of(path: Path) -> str | None:
    """The process identity (core.process) encoded in a journal file name."""
    try:
        tail = path.name[: -len(SUFFIX)].rsplit("@", 1)[1]
        host, pid, start = tail.rsplit("-", 2)
        return f"{host}:{pid}:{start}"
    except (IndexError, ValueError):
        return None


@dataclass
class Record:
    """One journal record: metric batches (METRICS), the run's end (STATUS) or a change (UPDATE)."""

    kind: str
    run_id: str
    batch_id: str
    batches: list[MetricBatch] = field(default_factory=list)
    status: Mapping[str, Any] | None = None  # STATUS: {"status": ..., "error": ..., "when": ...}
    update: Mapping[str, Any] | None = None  # UPDATE: {"op": ..., "args": ...}
    end: int = 0  # offset just past this record in its file

    @property
    def points(self) -> int:
        return sum(len(b.values) for b in self.batches)


@dataclass
class Scan:
    """What a pass over a journal found besides its records."""

    skipped_bytes: int = 0
    skipped_regions: int = 0


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path

    # -- writing ---------------------------------------------------------------------------

    def append_metrics(self, batch_id: str, run_id: str, batches: list[MetricBatch]) -> None:
        specs, blobs = [], []
        for b in batches:
            spec, parts = _encode_batch(b)
            specs.append(spec)
            blobs.extend(parts)
        meta = {"t": METRICS, "run_id": run_id, "batch_id": batch_id, "batches": specs}
        self._append(meta, blobs)

    def append_change(self, record: Record) -> None:
        """Append a STATUS or UPDATE record (small: no arrays)."""
        meta: dict[str, Any] = {"t": record.kind, "run_id": record.run_id, "batch_id": record.batch_id}
        if record.kind == STATUS:
            meta["status"] = dict(record.status or {})
        elif record.kind == UPDATE:
            meta["update"] = dict(record.update or {})
        else:
            raise ValueError(f"append_change takes status and update records, not {record.kind!r}")
        self._append(meta, [])

    def _append(self, meta: dict[str, Any], blobs: list[bytes]) -> None:
        meta_bytes = json.dumps(meta, allow_nan=True, separators=(",", ":")).encode()
        blob_len = sum(len(b) for b in blobs)
        crc = zlib.crc32(meta_bytes)
        for blob in blobs:
            crc = zlib.crc32(blob, crc)
        header = _HEADER.pack(MAGIC, len(meta_bytes), blob_len, crc)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            start = os.fstat(fd).st_size
            try:
                _write_all(fd, header)
                _write_all(fd, meta_bytes)
                for blob in blobs:
                    _write_all(fd, blob)
                os.fsync(fd)
            except BaseException:
                # A partial record must not stay: the next append would follow a tear.
                try:
                    os.ftruncate(fd, start)
                    os.fsync(fd)
                except OSError:
                    pass  # the reader skips a torn region by its checksum all the same
                raise
        finally:
            os.close(fd)

    # -- reading ---------------------------------------------------------------------------

    def records(self, start: int = 0, scan: Scan | None = None) -> Iterator[Record]:
        """Every whole record from byte ``start`` on; torn or corrupt regions are skipped."""
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            return
        with f:
            size = os.fstat(f.fileno()).st_size
            if size <= start:
                return
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                if start == 0 and data[:4] != MAGIC and size >= _LEGACY_HEADER.size:
                    yield from _legacy_records(data)
                    return
                yield from _records(data, start, scan if scan is not None else Scan())

    def exists(self) -> bool:
        return self.path.exists()

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _records(data: mmap.mmap, pos: int, scan: Scan) -> Iterator[Record]:
    size = len(data)
    while pos + _HEADER.size <= size:
        magic, meta_len, blob_len, crc = _HEADER.unpack_from(data, pos)
        end = pos + _HEADER.size + meta_len + blob_len
        record = None
        if magic == MAGIC and meta_len <= _MAX_META and end <= size:
            body = pos + _HEADER.size
            meta_bytes = data[body : body + meta_len]
            blob = data[body + meta_len : end]
            if zlib.crc32(blob, zlib.crc32(meta_bytes)) == crc:
                try:
                    record = _decode(json.loads(meta_bytes), blob, end)
                except (ValueError, KeyError, TypeError, AttributeError):
                    record = None  # whole but not runlab's (a foreign or crafted file): skipped as damaged
        if record is None:
            nxt = data.find(MAGIC, pos + 1)
            skipped_to = size if nxt < 0 else nxt
            scan.skipped_bytes += skipped_to - pos
            scan.skipped_regions += 1
            pos = skipped_to
            continue
        pos = end
        yield record
    if pos < size:
        scan.skipped_bytes += size - pos
        scan.skipped_regions += 1


def _legacy_records(data: mmap.mmap) -> Iterator[Record]:
    pos = 0
    while pos + _LEGACY_HEADER.size <= len(data):
        length, crc = _LEGACY_HEADER.unpack_from(data, pos)
        payload = data[pos + _LEGACY_HEADER.size : pos + _LEGACY_HEADER.size + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            return  # that format had no way past a tear
        pos += _LEGACY_HEADER.size + length
        raw = json.loads(payload)
        yield Record(METRICS, raw["run_id"], raw["batch_id"], [MetricBatch(**b) for b in raw["batches"]], end=pos)


# -- the binary form of a batch ------------------------------------------------------------


def _encode_batch(b: MetricBatch) -> tuple[dict[str, Any], list[bytes]]:
    import numpy as np  # on first use: a training script's ``import runlab`` stays light

    from runlab.store import series

    n = len(b.values)
    parts: list[bytes] = []
    spec: dict[str, Any] = {"name": b.name, "kind": b.kind, "description": b.description, "n": n}
    steps = list(b.steps)
    nones = steps.count(None)
    if nones == n:
        spec["steps"] = "auto"
    elif nones == 0:
        spec["steps"] = "i8"
        parts.append(np.asarray(steps, dtype=np.int64).tobytes())
    else:  # some points have steps, some take the next index: keep which is which
        spec["steps"] = "i8+mask"
        parts.append(np.asarray([0 if s is None else s for s in steps], dtype=np.int64).tobytes())
        parts.append(np.asarray([s is None for s in steps], dtype=np.bool_).tobytes())
    parts.append(np.asarray(b.times, dtype=np.float64).tobytes())
    values = list(b.values)
    if b.kind == MetricKind.SCALAR:
        encoding, blob = series.encode_values(values)
    else:
        encoding, blob = "json", series.dumps_value(values).encode()
    spec["values"] = encoding
    spec["values_bytes"] = len(blob)
    parts.append(blob)
    return spec, parts


def _decode(meta: dict[str, Any], blob: bytes, end: int) -> Record:
    import numpy as np

    if meta["t"] == STATUS:
        return Record(STATUS, meta["run_id"], meta["batch_id"], status=meta["status"], end=end)
    if meta["t"] == UPDATE:
        return Record(UPDATE, meta["run_id"], meta["batch_id"], update=meta["update"], end=end)
    batches = []
    pos = 0

    def take(nbytes: int) -> bytes:
        nonlocal pos
        out = blob[pos : pos + nbytes]
        pos += nbytes
        return out

    for spec in meta["batches"]:
        n = spec["n"]
        steps: list[int | None]
        if spec["steps"] == "auto":
            steps = [None] * n
        elif spec["steps"] == "i8":
            steps = np.frombuffer(take(8 * n), dtype=np.int64).tolist()
        else:
            raw = np.frombuffer(take(8 * n), dtype=np.int64).tolist()
            mask = np.frombuffer(take(n), dtype=np.bool_).tolist()
            steps = [None if m else s for s, m in zip(raw, mask)]
        times = np.frombuffer(take(8 * n), dtype=np.float64).tolist()
        values_blob = take(spec["values_bytes"])
        if spec["values"] == "f8":
            values: list[Any] = np.frombuffer(values_blob, dtype=np.float64).tolist()
        elif spec["values"] == "i8":
            values = np.frombuffer(values_blob, dtype=np.int64).tolist()
        else:
            values = json.loads(values_blob)
        if not (len(steps) == len(times) == len(values) == n) or not isinstance(values, list):
            raise ValueError(f"a batch of {n} points whose arrays do not hold {n} points")
        batches.append(MetricBatch(name=spec["name"], kind=spec["kind"], steps=steps, times=times,
                                   values=values, description=spec.get("description", "")))
    return Record(METRICS, meta["run_id"], meta["batch_id"], batches, end=end)


def orphan_journals(journal_dir: Path) -> list[Path]:
    """Journals whose process is gone: nobody else will replay them."""
    if not journal_dir.is_dir():
        return []
    return sorted(p for p in journal_dir.glob("*" + SUFFIX) if is_local_process_dead(owner_of(p)))
