"""Encoding of metric points into compact chunks, and back.

A chunk holds parallel arrays: steps (int64), times (float64) and values, encoded as ``f8``
(float64), ``i8`` (int64) or ``json`` (bools, strings, lists, table rows, mixed types).
NaN and infinities survive every encoding (JSON uses the literals NaN and Infinity).
"""

from __future__ import annotations

import json
from typing import Any, Sequence

import numpy as np

_I8_MIN, _I8_MAX = -(2**63), 2**63 - 1


def encode_values(values: Sequence[Any]) -> tuple[str, bytes]:
    if isinstance(values, np.ndarray) and values.dtype in (np.float64, np.int64):  # decoded from the wire
        return ("f8" if values.dtype == np.float64 else "i8"), values.tobytes()
    types = set(map(type, values))
    if types <= {float}:
        return "f8", np.asarray(values, dtype=np.float64).tobytes()
    if types <= {int}:
        if all(_I8_MIN <= v <= _I8_MAX for v in (min(values), max(values))):
            return "i8", np.asarray(values, dtype=np.int64).tobytes()
    elif types <= {int, float}:
        try:
            return "f8", np.asarray(values, dtype=np.float64).tobytes()
        except OverflowError:  # an int beyond float range: JSON keeps it exactly
            pass
    return "json", json.dumps(list(values), allow_nan=True, separators=(",", ":")).encode()


def decode_values(encoding: str, blob: bytes) -> Any:
    if encoding == "f8":
        return np.frombuffer(blob, dtype=np.float64)
    if encoding == "i8":
        return np.frombuffer(blob, dtype=np.int64)
    if encoding == "json":
        return json.loads(blob)
    raise ValueError(f"unknown chunk encoding {encoding!r}")


def encode_steps(steps: Any) -> bytes:
    """A chunk's steps (int64). Consecutive steps (``run.log`` without ``step=``, the common case) are
    stored as their first alone, 8 bytes for the whole chunk instead of 8 a point: a third of what
    PostgreSQL compressed and wrote ahead for each point (migration 0012_steps_int64_runs)."""
    steps = np.asarray(steps, dtype=np.int64)
    n = len(steps)
    # the ends compared as Python ints: a difference of int64s wraps (2**63 - 1 then -(2**63) is "+1")
    if n > 1 and int(steps[-1]) - int(steps[0]) == n - 1 and bool((np.diff(steps) == 1).all()):
        return bytes(steps[:1].tobytes())
    return bytes(steps.tobytes())


def decode_steps(blob: bytes, count: int) -> Any:
    """The int64 steps of a chunk of ``count`` points that :func:`encode_steps` wrote."""
    steps = np.frombuffer(blob, dtype=np.int64)
    if len(steps) == count:
        return steps
    if len(steps) == 1:
        return np.arange(int(steps[0]), int(steps[0]) + count, dtype=np.int64)
    raise ValueError(f"a chunk of {count} points holds {len(steps)} steps: the store is damaged")


def decode_chunks(chunks: Sequence[Any]) -> tuple[Any, Any, Any]:
    """(steps, times, values) of a series' chunk rows (encoding, steps, times, values), in order: arrays,
    or a list of values when some chunk holds JSON."""
    if not chunks:
        return np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0, np.float64)
    steps = _concat([decode_steps(ch[1], len(ch[2]) // 8) for ch in chunks])
    times = _concat([np.frombuffer(ch[2], dtype=np.float64) for ch in chunks])
    encodings = {ch[0] for ch in chunks}
    if encodings <= {"f8", "i8"}:
        dtype = np.int64 if encodings == {"i8"} else np.float64
        values: Any = _concat([decode_values(ch[0], ch[3]).astype(dtype, copy=False) for ch in chunks])
    else:
        values = []
        for ch in chunks:
            decoded = decode_values(ch[0], ch[3])
            values.extend(decoded.tolist() if isinstance(decoded, np.ndarray) else decoded)
    return steps, times, values


def _concat(parts: list[Any]) -> Any:
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def encode_floats(values: Sequence[float]) -> bytes:
    return np.asarray(values, dtype=np.float64).tobytes()


def numeric_summary(encoding: str, values: Sequence[Any]) -> tuple[float | None, float | None]:
    """(min, max) of numeric values, NaN ignored; (None, None) when nothing numeric."""
    if encoding in ("f8", "i8"):
        arr = np.asarray(values, dtype=np.float64)
    else:
        nums = [n for n in map(as_number, values) if n is not None]
        if not nums:
            return None, None
        arr = np.asarray(nums, dtype=np.float64)
    finite = arr[~np.isnan(arr)]
    if finite.size == 0:
        return None, None
    return float(finite.min()), float(finite.max())


def dumps_value(value: Any) -> str:
    return json.dumps(value, allow_nan=True, separators=(",", ":"))


def loads_value(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def as_number(value: Any) -> float | None:
    """The value as a float for sorting, or None (bools and strings do not sort as numbers)."""
    if type(value) in (int, float):
        try:
            return float(value)
        except OverflowError:  # an int beyond float range sorts as no number
            return None
    return None
