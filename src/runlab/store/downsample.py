"""Downsampling of metric series for charts, keeping every bucket's extremes (M4).

A chart a few hundred pixels wide cannot show a million points, and sending them costs seconds.
:func:`downsample_indices` splits a series into equal buckets of consecutive points and keeps, for
each bucket, its first, smallest, largest and last point (the M4 scheme of Jugel et al., VLDB 2014).
Drawn as a line, the result looks like the full series at the chart's resolution: no spike and no
dip is lost, unlike taking every k-th point. Everything is vectorized with numpy (a 1,000,000-point
series takes a few milliseconds).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

MIN_POINTS = 4  # one bucket: first, min, max, last


@dataclass(frozen=True)
class Downsampled:
    """The kept points as parallel arrays, and whether anything was dropped."""

    indices: Any  # int64 indices into the original series, increasing
    steps: Any
    values: Any
    times: Any
    total: int

    @property
    def is_downsampled(self) -> bool:
        return len(self.indices) < self.total


def downsample_indices(values: Any, max_points: int) -> Any:
    """Indices (increasing, int64) of at most ``max_points`` points of ``values`` that keep, for
    each of ``max_points // 4`` buckets of consecutive points, the first, min, max and last point.

    ``values`` is a 1-d numeric array; NaN is ignored for min and max. A series that already has
    ``max_points`` points or fewer comes back whole. Raises ``ValueError`` when ``max_points < 4``.
    """
    if max_points < MIN_POINTS:
        raise ValueError(f"max_points must be at least {MIN_POINTS}, got {max_points}")
    n = len(values)
    if n <= max_points:
        return np.arange(n, dtype=np.int64)
    arr = np.asarray(values, dtype=np.float64)
    buckets = max_points // 4
    size = -(-n // buckets)  # ceil: every bucket but the last is full
    buckets = -(-n // size)
    pad = buckets * size - n
    nan = np.isnan(arr)
    has_nan = bool(nan.any())
    low = np.where(nan, np.inf, arr) if has_nan else arr
    high = np.where(nan, -np.inf, arr) if has_nan else arr
    if pad:
        low = np.concatenate([low, np.full(pad, np.inf)])
        high = np.concatenate([high, np.full(pad, -np.inf)])
    starts = np.arange(buckets, dtype=np.int64) * size
    imin = starts + low.reshape(buckets, size).argmin(axis=1)
    imax = starts + high.reshape(buckets, size).argmax(axis=1)
    ends = np.minimum(starts + size - 1, n - 1)
    kept = np.unique(np.concatenate([starts, imin, imax, ends]))
    return kept[kept < n]


def downsample(steps: Any, values: Any, times: Any, max_points: int) -> Downsampled:
    """Keep at most ``max_points`` points of a numeric series (see :func:`downsample_indices`).

    ``steps``, ``values`` and ``times`` are parallel 1-d arrays of one series, in log order.
    """
    total = len(values)
    idx = downsample_indices(values, max_points)
    if len(idx) == total:
        return Downsampled(idx, np.asarray(steps), np.asarray(values), np.asarray(times), total)
    return Downsampled(idx, np.asarray(steps)[idx], np.asarray(values)[idx], np.asarray(times)[idx], total)
