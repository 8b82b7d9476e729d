"""What the store's records look like on the wire between ``runlab server`` and its clients.

Two formats:

- **JSON with tags** for the store interface's arguments and results: a record (a frozen dataclass of
  :mod:`runlab.core.entities` or :mod:`runlab.core.assets`) is ``{"__t": "RunRecord", ...fields}``; an enum is
  ``{"__e": "RunStatus", "v": "Running"}``; a tuple ``{"__tuple": [...]}``; a dict whose keys are not
  all plain strings (or that has a key starting with ``__``, such as a user's tag) ``{"__map": [[k, v],
  ...]}``; bytes and numpy arrays are base64 (``{"__b": ...}``, ``{"__nd": dtype, "b64": ...}``); a
  :class:`~runlab.store.base.MetricSeries` ``{"__series": ...}``. Decoding only builds the types named in
  :data:`RECORD_TYPES` (by :func:`record_type`) and :data:`ENUM_TYPES`: nothing a client sends can name
  another class.
- **Binary metric batches** (:func:`encode_batches`): what ``run.log`` sends, 8 bytes per step, time and
  number instead of a JSON object per point. Layout: ``b"RLMB1"``, a 4-byte big-endian length, a JSON
  header (run id, batch id, and per batch its name, kind, description, count, step mode and value
  encoding), then per batch its steps, times (float64) and values (float64, int64, or a 4-byte length
  and a JSON list for anything else: strings, lists, tables). Steps by the batch's ``"steps"`` mode:
  ``"next"`` every step is "next index" (no bytes: what ``run.log`` without ``step=`` sends),
  ``"given"`` int64 each, taken as they are (the whole int64 range), ``"mask"`` one byte per point
  (1: "next index") then int64 each; a header without the mode is the first format, where the int64
  :data:`NO_STEP` meant "next index" (still read).
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import json
import math
import struct
import sys
from typing import Any, Sequence

from runlab.core import entities
from runlab.core.entities import MetricBatch
from runlab.core.errors import UserError
from runlab.core.status import RunStatus, RunType

# The record types the wire carries, by name: the tracking records now, the assets' on first use (a
# training script that only logs never builds them).
RECORD_TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (entities.ExperimentRecord, entities.RunRecord, entities.RunNote, entities.MetricBatch,
                entities.MetricSummary)
}
_ASSET_RECORDS = ("EnvironmentRecord", "ComputeTargetRecord", "DatastoreRecord", "DatastoreFileRecord", "DatasetFile",
                  "DatasetRecord", "RunInputRecord", "ModelFile", "ModelDatasetRecord", "ModelRecord")


def record_type(name: str) -> type | None:
    """The record class the wire calls ``name``, or None when it names no record."""
    cls = RECORD_TYPES.get(name)
    if cls is None and name in _ASSET_RECORDS:
        from runlab.core import assets

        cls = RECORD_TYPES[name] = getattr(assets, name)
    return cls


ENUM_TYPES: dict[str, type[enum.Enum]] = {"RunStatus": RunStatus, "RunType": RunType}

MAGIC = b"RLMB1"
NO_STEP = -(2**63)  # a step of None ("next index") in the binary format


class WireError(UserError):
    """A request or response body that is not what the protocol says."""


# -- JSON with tags ------------------------------------------------------------------------------


def to_wire(value: Any) -> Any:
    """``value`` as JSON-able data (see the module docstring)."""
    if isinstance(value, enum.Enum) and type(value).__name__ in ENUM_TYPES:  # before str: they are str enums
        return {"__e": type(value).__name__, "v": value.value}
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"__f": repr(value)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        name = type(value).__name__
        if record_type(name) is not type(value):
            raise WireError(f"{name} cannot be sent to the server")
        return {"__t": name, **{f.name: to_wire(getattr(value, f.name)) for f in dataclasses.fields(value)}}
    if isinstance(value, dict) or hasattr(value, "items") and hasattr(value, "keys"):
        items = list(value.items())
        if all(isinstance(k, str) and not k.startswith("__") for k, _ in items):
            return {k: to_wire(v) for k, v in items}
        return {"__map": [[to_wire(k), to_wire(v)] for k, v in items]}
    if isinstance(value, tuple):
        return {"__tuple": [to_wire(v) for v in value]}
    if isinstance(value, (list, set, frozenset)):
        return [to_wire(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"__b": base64.b64encode(bytes(value)).decode()}
    if type(value).__name__ == "MetricSeries":
        return {"__series": {"name": value.name, "kind": value.kind, "steps": to_wire(value.steps),
                             "times": to_wire(value.times), "values": to_wire(value.values)}}
    if type(value).__module__ == "numpy":
        return _numpy_to_wire(value)
    if hasattr(value, "__fspath__"):
        return str(value)
    raise WireError(f"a {type(value).__name__} cannot be sent to the server")


def _numpy_to_wire(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.ndarray):
        if value.dtype.kind in "iufb":
            return {"__nd": value.dtype.str, "b64": base64.b64encode(np.ascontiguousarray(value).tobytes()).decode()}
        return [to_wire(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return to_wire(value.item())
    raise WireError(f"a numpy {type(value).__name__} cannot be sent to the server")


def from_wire(data: Any) -> Any:
    """The value :func:`to_wire` made ``data`` from."""
    if isinstance(data, list):
        return [from_wire(v) for v in data]
    if not isinstance(data, dict):
        return data
    if "__t" in data:
        cls = record_type(data["__t"]) if isinstance(data["__t"], str) else None
        if cls is None:
            raise WireError(f"unknown record type {data['__t']!r}")
        fields = {k: from_wire(v) for k, v in data.items() if k != "__t"}
        try:
            return cls(**fields)
        except TypeError as exc:
            raise WireError(f"malformed {data['__t']}: {exc}") from exc
    if "__e" in data:
        enum_cls = ENUM_TYPES.get(data["__e"]) if isinstance(data["__e"], str) else None
        if enum_cls is None:
            raise WireError(f"unknown enum {data['__e']!r}")
        return enum_cls(data["v"])
    if "__tuple" in data:
        return tuple(from_wire(v) for v in _list(data["__tuple"]))
    if "__map" in data:
        return {_hashable(from_wire(k)): from_wire(v) for k, v in _list(data["__map"])}
    if "__f" in data:
        return float(data["__f"])
    if "__b" in data:
        return base64.b64decode(data["__b"])
    if "__nd" in data:
        import numpy as np

        return np.frombuffer(base64.b64decode(data["b64"]), dtype=np.dtype(data["__nd"])).copy()
    if "__series" in data:
        from runlab.store.base import MetricSeries

        s = data["__series"]
        return MetricSeries(s["name"], s["kind"], _array(from_wire(s["steps"])), _array(from_wire(s["times"])),
                            _array(from_wire(s["values"])))
    return {k: from_wire(v) for k, v in data.items()}


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise WireError("malformed body: a list was expected")
    return value


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _array(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.ndarray):
        return value
    return np.array(value, dtype=object) if value and not all(isinstance(v, (int, float)) for v in value) \
        else np.asarray(value, dtype=float)


def dumps(value: Any) -> bytes:
    return json.dumps(to_wire(value), separators=(",", ":"), allow_nan=False).encode()


def loads(body: bytes) -> Any:
    try:
        return from_wire(json.loads(body))
    except (ValueError, KeyError) as exc:
        raise WireError(f"malformed body: {exc}") from exc


# -- binary metric batches -----------------------------------------------------------------------

def _value_encoding(values: Sequence[Any]) -> str:
    types = set(map(type, values))  # one pass in C: this runs for every point a training script logs
    if types <= {float}:
        return "f8"
    if types <= {int} and (not values or (-(2**63) <= min(values) and max(values) < 2**63)):
        return "i8"
    return "json"


def _big_endian(arr: Any) -> bytes:
    if arr.itemsize != 8:
        raise WireError("this platform's C long long or double is not 8 bytes")
    if sys.byteorder == "little":
        arr.byteswap()
    return bytes(arr.tobytes())


def encode_batches(run_id: str, batches: Sequence[MetricBatch], batch_id: str | None) -> bytes:
    """The binary body that sends ``batches`` of run ``run_id`` (see the module docstring)."""
    import array

    header: dict[str, Any] = {"run_id": run_id, "batch_id": batch_id, "batches": []}
    parts: list[bytes] = []
    for batch in batches:
        n = len(batch.values)
        if len(batch.steps) != n or len(batch.times) != n:
            raise WireError(f"metric {batch.name!r}: steps, times and values differ in length")
        encoding = _value_encoding(batch.values)
        steps: list[Any] = list(batch.steps)
        nones = steps.count(None)
        mode = "next" if nones == n else "given" if nones == 0 else "mask"
        header["batches"].append({"name": batch.name, "kind": batch.kind, "description": batch.description,
                                  "n": n, "steps": mode, "values": encoding})
        if mode == "mask":
            parts.append(bytes(s is None for s in steps))
            steps = [0 if s is None else s for s in steps]
        if mode != "next":
            parts.append(_big_endian(array.array("q", map(int, steps))))
        parts.append(_big_endian(array.array("d", map(float, batch.times))))
        if encoding == "json":
            blob = json.dumps([to_wire(v) for v in batch.values], separators=(",", ":"), allow_nan=False).encode()
            parts.append(struct.pack(">I", len(blob)) + blob)
        else:
            parts.append(_big_endian(array.array("d" if encoding == "f8" else "q", batch.values)))
    head = json.dumps(header, separators=(",", ":")).encode()
    return MAGIC + struct.pack(">I", len(head)) + head + b"".join(parts)


def decode_batches(body: bytes, max_points: int = 10_000_000) -> tuple[str, list[MetricBatch], str | None]:
    """(run id, batches, batch id) from a body :func:`encode_batches` made; :class:`WireError` for
    anything else (truncated, lengths that do not add up, more than ``max_points`` points).

    Numbers stay numpy arrays (native byte order): steps an int64 array, or a list where some step is
    None; times float64; values float64 or int64 (a list for JSON values). A server ingesting millions of
    points a second spent its time building a Python object per number."""
    import numpy as np

    view = memoryview(body)
    if bytes(view[:5]) != MAGIC or len(view) < 9:
        raise WireError("not a runlab metric batch (it must start with RLMB1)")
    (head_len,) = struct.unpack(">I", view[5:9])
    pos = 9 + head_len
    if pos > len(view):
        raise WireError("metric batch truncated in its header")
    try:
        header = json.loads(bytes(view[9:pos]))
        run_id, batch_id, specs = header["run_id"], header.get("batch_id"), header["batches"]
    except (ValueError, KeyError, TypeError) as exc:
        raise WireError(f"malformed metric batch header: {exc}") from exc
    if not isinstance(run_id, str) or not isinstance(specs, list) or not (batch_id is None or isinstance(batch_id, str)):
        raise WireError("malformed metric batch header")
    total = 0
    batches = []
    for spec in specs:
        try:
            name, kind, n, encoding = spec["name"], spec["kind"], int(spec["n"]), spec["values"]
            description = str(spec.get("description", ""))
            mode = spec.get("steps", "sentinel")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise WireError(f"malformed metric batch header: {exc}") from exc
        total += n
        if n < 0 or total > max_points or not isinstance(name, str) or not isinstance(kind, str):
            raise WireError(f"metric batch holds a bad or too large count ({total} points; at most {max_points})")
        if mode not in ("next", "given", "mask", "sentinel"):
            raise WireError(f"unknown step mode {mode!r} (next, given or mask)")
        for what, text in (("name", name), ("kind", kind), ("description", description)):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:  # JSON's \ud800 escapes: a lone surrogate no store can hold
                raise WireError(f"metric {what} {ascii(text)} is not valid Unicode text (a lone surrogate): "
                                "no store can hold it") from None

        def take(size: int) -> memoryview:
            nonlocal pos
            if pos + size > len(view):
                raise WireError("metric batch truncated")
            chunk = view[pos:pos + size]
            pos += size
            return chunk

        steps: Any
        if mode == "next":
            steps = [None] * n
        else:
            mask = np.frombuffer(take(n), dtype=np.uint8) if mode == "mask" else None
            given = np.frombuffer(take(8 * n), dtype=">i8").astype(np.int64)
            if mode == "sentinel":
                mask = given == NO_STEP
            if mask is None or not mask.any():
                steps = given
            else:
                steps = [None if m else s for m, s in zip(mask.tolist(), given.tolist())]
        times: Any = np.frombuffer(take(8 * n), dtype=">f8").astype(np.float64)
        values: Any
        if encoding == "json":
            (size,) = struct.unpack(">I", take(4))
            try:
                values = [from_wire(v) for v in json.loads(bytes(take(size)))]
            except ValueError as exc:
                raise WireError(f"malformed metric values: {exc}") from exc
            if len(values) != n:
                raise WireError("metric batch: values and steps differ in length")
        elif encoding in ("f8", "i8"):
            values = np.frombuffer(take(8 * n), dtype=">" + encoding).astype(np.float64 if encoding == "f8" else np.int64)
        else:
            raise WireError(f"unknown value encoding {encoding!r}")
        batches.append(MetricBatch(name=name, kind=kind, steps=steps, times=times, values=values,
                                   description=description))
    if pos != len(view):
        raise WireError("metric batch has bytes after its last batch")
    return run_id, batches, batch_id


# -- one series, as the server sends it ---------------------------------------------------------

SERIES_MAGIC = b"RLMS1"


def encode_series(series: Any) -> bytes:
    """A :class:`~runlab.store.base.MetricSeries` as bytes: ``b"RLMS1"``, a 4-byte big-endian length, a
    JSON header (name, kind, count, value encoding), then steps (int64), times (float64) and values
    (float64 or int64; JSON for anything else), little-endian: 24 bytes a point rather than ~60 of JSON."""
    import numpy as np

    steps = np.ascontiguousarray(series.steps, dtype="<i8")
    times = np.ascontiguousarray(series.times, dtype="<f8")
    values = series.values
    blob: Any
    if isinstance(values, np.ndarray) and values.dtype.kind in "if":
        encoding = "i8" if values.dtype.kind == "i" else "f8"
        blob = np.ascontiguousarray(values, dtype="<" + encoding).data.cast("B")
    else:
        encoding = "json"
        blob = json.dumps([to_wire(v) for v in list(values)], separators=(",", ":"), allow_nan=False).encode()
    head = json.dumps({"name": series.name, "kind": series.kind, "n": len(steps), "values": encoding}).encode()
    # one copy of the arrays into the body (``+`` copied the growing body at each step: 24 MB, 5 times)
    return b"".join((SERIES_MAGIC, struct.pack(">I", len(head)), head, steps.data.cast("B"), times.data.cast("B"), blob))


def decode_series(body: bytes) -> Any:
    import numpy as np

    from runlab.store.base import MetricSeries

    if body[:5] != SERIES_MAGIC or len(body) < 9:
        raise WireError("not a runlab metric series (it must start with RLMS1)")
    (head_len,) = struct.unpack(">I", body[5:9])
    try:
        head = json.loads(body[9:9 + head_len])
        n, encoding = int(head["n"]), head["values"]
    except (ValueError, KeyError, TypeError) as exc:
        raise WireError(f"malformed metric series header: {exc}") from exc
    pos = 9 + head_len
    if n < 0 or len(body) < pos + 16 * n:
        raise WireError("metric series truncated")
    steps = np.frombuffer(body, dtype="<i8", count=n, offset=pos).astype(np.int64)
    times = np.frombuffer(body, dtype="<f8", count=n, offset=pos + 8 * n).astype(np.float64)
    if encoding in ("f8", "i8"):
        if len(body) - (pos + 16 * n) != 8 * n:
            raise WireError("metric series values truncated")
        values: Any = np.frombuffer(body, dtype="<" + encoding, count=n, offset=pos + 16 * n).astype(
            np.float64 if encoding == "f8" else np.int64)
    elif encoding == "json":
        values = [from_wire(v) for v in json.loads(body[pos + 16 * n:])]
    else:
        raise WireError(f"unknown value encoding {encoding!r}")
    return MetricSeries(str(head["name"]), str(head["kind"]), steps, times, values)


__all__ = ["MAGIC", "NO_STEP", "SERIES_MAGIC", "WireError", "decode_batches", "decode_series", "dumps",
           "encode_batches", "encode_series", "from_wire", "loads", "to_wire"]
