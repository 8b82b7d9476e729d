"""The metric series' wire format of the client protocol (runlab.store.remote.codec): what the server
sends for get_metric_series comes back the same, and a damaged body is an error, never wrong data."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from runlab.core.entities import MetricBatch
from runlab.store.base import MetricSeries
from runlab.store.remote import codec


def _round_trip(series: MetricSeries) -> MetricSeries:
    return codec.decode_series(codec.encode_series(series))


def test_float_int_and_json_values_round_trip() -> None:
    n = 10_000
    floats = np.random.default_rng(0).random(n)
    floats[[3, 4, 5]] = [math.nan, math.inf, -math.inf]
    series = MetricSeries("loss", "scalar", np.arange(n, dtype=np.int64), np.arange(n) + 1e9, floats)
    back = _round_trip(series)
    assert back.name == "loss" and back.kind == "scalar"
    assert np.array_equal(back.steps, series.steps) and np.array_equal(back.times, series.times)
    assert np.array_equal(back.values, floats, equal_nan=True) and back.values.dtype == np.float64
    ints = _round_trip(MetricSeries("n", "scalar", np.arange(3), np.zeros(3), np.array([1, -2, 2**62])))
    assert ints.values.dtype == np.int64 and list(ints.values) == [1, -2, 2**62]
    mixed = _round_trip(MetricSeries("note", "scalar", np.arange(3), np.zeros(3), ["é\0", 1, None]))
    assert mixed.values == ["é\0", 1, None]
    empty = _round_trip(MetricSeries("e", "scalar", np.empty(0, np.int64), np.empty(0), np.empty(0)))
    assert len(empty.steps) == 0 and len(empty.values) == 0


def test_decoded_arrays_are_the_caller_s_own() -> None:
    """The arrays are copies, not read-only views of the body's bytes: the caller may change them."""
    back = _round_trip(MetricSeries("x", "scalar", np.arange(4), np.arange(4.0), np.arange(4.0)))
    for array in (back.steps, back.times, back.values):
        assert array.flags.writeable
        array[0] = 7


def test_a_damaged_body_is_an_error() -> None:
    body = codec.encode_series(MetricSeries("x", "scalar", np.arange(100), np.arange(100.0), np.arange(100.0)))
    for bad in (body[:-1], body[:-800], body + b"\0" * 8, b"XXXXX" + body[5:], body[:7]):
        with pytest.raises(codec.WireError):
            codec.decode_series(bad)


# -- metric batches: what run.log sends ------------------------------------------------------------

def _batches_round_trip(*batches: MetricBatch) -> list[MetricBatch]:
    run_id, back, batch_id = codec.decode_batches(codec.encode_batches("run-1", batches, "b-1"))
    assert (run_id, batch_id) == ("run-1", "b-1")
    return back


def test_every_int64_step_is_a_step_and_none_is_next_index() -> None:
    """The first format sent -(2**63) for "next index": a run that logged that step read it back as the
    next index over a server, where the embedded workspace stored it."""
    lo, hi = -(2**63), 2**63 - 1
    given, mixed, nxt = _batches_round_trip(
        MetricBatch("given", "scalar", [lo, hi, 0], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0]),
        MetricBatch("mixed", "scalar", [None, lo, None, 5], [1.0] * 4, [1, 2, 3, 4]),
        MetricBatch("next", "scalar", [None, None], [1.0, 2.0], ["a", {"b": [1]}]),
    )
    assert list(given.steps) == [lo, hi, 0]
    assert list(mixed.steps) == [None, lo, None, 5] and list(mixed.values) == [1, 2, 3, 4]
    assert list(nxt.steps) == [None, None] and list(nxt.values) == ["a", {"b": [1]}]
    assert list(given.times) == [1.0, 2.0, 3.0]


def test_a_batch_of_the_first_format_still_reads() -> None:
    """A client of the first format (no step mode; -(2**63) meant "next index") is still understood."""
    import struct

    head = json.dumps({"run_id": "r", "batch_id": None, "batches": [
        {"name": "x", "kind": "scalar", "description": "", "n": 2, "values": "f8"}]}).encode()
    body = (codec.MAGIC + struct.pack(">I", len(head)) + head + struct.pack(">qq", codec.NO_STEP, 7)
            + struct.pack(">dd", 1.0, 2.0) + struct.pack(">dd", 0.5, 0.25))
    _, (batch,), _ = codec.decode_batches(body)
    assert list(batch.steps) == [None, 7] and list(batch.values) == [0.5, 0.25]


def test_a_run_s_numbers_keep_their_type_and_bits() -> None:
    values = [0.1, math.nan, math.inf, -0.0, 5e-324]
    (f,), (i,) = _batches_round_trip(MetricBatch("f", "scalar", [None] * 5, [0.0] * 5, values)), \
        _batches_round_trip(MetricBatch("i", "scalar", [None] * 3, [0.0] * 3, [-(2**63), 0, 2**63 - 1]))
    assert np.array_equal(np.asarray(f.values), np.array(values), equal_nan=True)
    assert math.copysign(1.0, f.values[3]) == -1.0
    assert i.values.dtype == np.int64 and i.values.tolist() == [-(2**63), 0, 2**63 - 1]
    (big,) = _batches_round_trip(MetricBatch("big", "scalar", [None], [0.0], [2**64]))
    assert list(big.values) == [2**64]  # beyond int64: JSON, exactly


@pytest.mark.parametrize("cut", [1, 8, 9, 30])
def test_a_damaged_batch_is_an_error(cut: int) -> None:
    body = codec.encode_batches("r", [MetricBatch("x", "scalar", [None, 3], [1.0, 2.0], [1.0, 2.0])], None)
    with pytest.raises(codec.WireError):
        codec.decode_batches(body[:-cut])
    with pytest.raises(codec.WireError):
        codec.decode_batches(body + b"\0" * cut)
    bad_mode = body.replace(b'"steps":"mask"', b'"steps":"oops"')
    assert bad_mode != body
    with pytest.raises(codec.WireError, match="step mode"):
        codec.decode_batches(bad_mode)


def test_a_name_no_store_can_hold_is_a_clear_error_not_a_server_bug() -> None:
    """A journal of an older runlab can hold a metric name with a lone surrogate (JSON carries it as
    \\ud800): the server said "internal error (UnicodeEncodeError): this is a bug in runlab"."""
    for field in ("name", "description"):
        spec = {"name": "x", "kind": "scalar", "description": "", "n": 1, "steps": "next", "values": "f8"}
        spec[field] = "bad\ud800"
        head = json.dumps({"run_id": "r", "batch_id": None, "batches": [spec]}).encode()
        import struct

        body = codec.MAGIC + struct.pack(">I", len(head)) + head + struct.pack(">d", 1.0) + struct.pack(">d", 2.0)
        with pytest.raises(codec.WireError, match=f"metric {field} .* not valid Unicode"):
            codec.decode_batches(body)


def test_every_record_class_of_core_crosses_the_wire() -> None:
    """The codec names the asset records without importing them (a script that only logs never builds
    them): that list must hold every record of runlab.core.assets, and the tracking ones every one of
    runlab.core.entities."""
    import dataclasses

    from runlab.core import assets, entities

    def records(module: object) -> set[str]:
        return {n for n, v in vars(module).items() if isinstance(v, type) and dataclasses.is_dataclass(v)
                and v.__module__ == module.__name__}  # type: ignore[attr-defined]

    assert set(codec._ASSET_RECORDS) == records(assets)
    assert records(entities) <= set(codec.RECORD_TYPES)
    assert all(codec.record_type(n) is getattr(assets, n) for n in codec._ASSET_RECORDS)
