"""Downsampling keeps each bucket's first, min, max and last point, and nothing more than asked."""

from __future__ import annotations

import time

import numpy as np
import pytest

from runlab.store.downsample import downsample, downsample_indices


def test_short_series_come_back_whole() -> None:
    assert downsample_indices(np.arange(10.0), 10).tolist() == list(range(10))
    assert downsample_indices(np.array([]), 100).tolist() == []
    kept = downsample(np.arange(3), np.array([1.0, 2.0, 3.0]), np.zeros(3), 100)
    assert not kept.is_downsampled and kept.values.tolist() == [1.0, 2.0, 3.0]


@pytest.mark.parametrize("n, points", [(1_000, 100), (1_001, 100), (99_999, 1000), (10, 4), (17, 8), (1_000_000, 1000)])
def test_at_most_points_and_every_bucket_keeps_its_extremes(n: int, points: int) -> None:
    rng = np.random.default_rng(n)
    values = rng.normal(size=n).cumsum()
    idx = downsample_indices(values, points)
    assert len(idx) <= points
    assert np.all(np.diff(idx) > 0) and idx[0] == 0 and idx[-1] == n - 1
    kept = set(idx.tolist())
    assert int(values.argmin()) in kept and int(values.argmax()) in kept
    size = -(-n // (points // 4))
    for start in range(0, n, size):  # each bucket: first, min, max and last are there
        bucket = values[start:start + size]
        for i in (start, start + int(bucket.argmin()), start + int(bucket.argmax()), min(start + size, n) - 1):
            assert i in kept


def test_a_single_spike_survives() -> None:
    values = np.zeros(1_000_000)
    values[123_457] = 9.0
    values[987_654] = -3.0
    kept = downsample(np.arange(values.size), values, np.zeros(values.size), 500)
    assert kept.values.max() == 9.0 and kept.values.min() == -3.0
    assert 123_457 in kept.steps.tolist() and kept.is_downsampled and kept.total == 1_000_000


def test_nan_is_ignored_for_extremes_but_series_with_nan_still_work() -> None:
    values = np.array([np.nan] * 50 + [1.0, 5.0, -2.0] + [np.nan] * 47)
    idx = downsample_indices(values, 8)
    assert {51, 52} <= set(idx.tolist()) and len(idx) <= 8
    assert len(downsample_indices(np.full(100, np.nan), 8)) <= 8


def test_integers_and_too_few_points() -> None:
    assert len(downsample_indices(np.arange(1000, dtype=np.int64), 40)) <= 40
    with pytest.raises(ValueError, match="at least 4"):
        downsample_indices(np.arange(10.0), 3)


def test_a_million_points_take_milliseconds() -> None:
    values = np.random.default_rng(0).normal(size=1_000_000)
    t0 = time.perf_counter()
    downsample(np.arange(values.size), values, np.zeros(values.size), 2000)
    assert time.perf_counter() - t0 < 0.5  # about 10 ms here; generous for slow CI machines
