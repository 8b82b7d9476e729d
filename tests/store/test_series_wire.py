"""The metric series' wire format of the client protocol (runlab.store.remote.codec): what the server
sends for get_metric_series comes back the same, and a damaged body is an error, never wrong data."""

from __future__ import annotations

import math

import numpy as np
import pytest

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
