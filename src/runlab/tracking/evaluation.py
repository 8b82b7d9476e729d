"""Evaluation logs: the values of Azure ML's ``run.log_confusion_matrix``, ``log_accuracy_table``,
``log_residuals`` and ``log_predictions``, checked before they are logged.

Each value is a dict, or that dict as JSON text, as Azure ML's scripts pass it::

    {"schema_type": "confusion_matrix", "schema_version": "1.0.0",
     "data": {"class_labels": ["cat", "dog"], "matrix": [[5, 1], [2, 7]]}}

=================== ===========================================================================
schema_type         ``data``
=================== ===========================================================================
confusion_matrix    ``class_labels`` (C labels), ``matrix`` (C rows of C counts: row = true
                    class, column = predicted class)
accuracy_table      ``class_labels`` (C), ``probability_thresholds`` (T), ``percentile_thresholds``
                    (P), ``probability_tables`` (C x T x 4) and ``percentile_tables`` (C x P x 4):
                    TP, FP, TN, FN per class (one vs rest) and threshold, in that order
residuals           ``bin_edges`` (N + 1, ascending), ``bin_counts`` (N)
predictions         ``bin_edges`` (N + 1, ascending), ``bin_counts``, ``bin_averages`` (the mean
                    prediction of the true values in each bin), ``bin_errors`` (its spread) (N each)
=================== ===========================================================================

Numbers must be finite (counts also 0 or more); an empty bin's ``bin_averages`` and ``bin_errors``
may be null. A wrong shape raises :class:`~runlab.core.errors.InvalidValueError` saying which
entry is wrong. Keys beyond these are kept as given. What is logged is a plain copy (lists, not
numpy arrays), and ``get_metrics()`` returns it as logged.
"""

from __future__ import annotations

import json
import math
from typing import Any, NoReturn

from runlab.core.entities import MetricKind
from runlab.core.errors import InvalidValueError

# A value holds at most this many numbers (a 1,000-class confusion matrix): it is stored as one point.
MAX_NUMBERS = 1_000_000

METHODS = {
    MetricKind.CONFUSION_MATRIX: "log_confusion_matrix",
    MetricKind.ACCURACY_TABLE: "log_accuracy_table",
    MetricKind.RESIDUALS: "log_residuals",
    MetricKind.PREDICTIONS: "log_predictions",
}


def check_evaluation(schema_type: str, name: str, value: Any) -> dict[str, Any]:
    """``value`` (a dict or JSON text) as a plain dict, checked against ``schema_type``'s shape."""
    check = _Check(METHODS[schema_type], name)
    if isinstance(value, (str, bytes, bytearray)):
        try:
            value = json.loads(value)
        except ValueError as exc:
            check.fail(f"the value is text but not JSON ({exc})")
    value = check.plain(value, "the value")
    if not isinstance(value, dict):
        check.fail(f"takes a dict (or its JSON text) with schema_type, schema_version and data, "
                   f"got {type(value).__name__}")
    given = value.get("schema_type")
    if given != schema_type:
        other = METHODS.get(given) if isinstance(given, str) else None
        hint = f": use run.{other}(...) for it" if other else ""
        check.fail(f"schema_type must be {schema_type!r}, got {given!r}{hint}")
    if not isinstance(value.get("schema_version"), str) or not value["schema_version"]:
        check.fail(f"schema_version must be a non-empty str such as '1.0.0', got {value.get('schema_version')!r}")
    data = value.get("data")
    if not isinstance(data, dict):
        check.fail(f"data must be a dict, got {type(data).__name__}")
    _SHAPES[schema_type](check, data)
    try:
        json.dumps(value, allow_nan=False)
    except ValueError as exc:  # a non-finite number in a key runlab does not know
        check.fail(f"the value must be plain JSON, with finite numbers ({exc})")
    return value


class _Check:
    def __init__(self, method: str, name: str) -> None:
        self.method, self.name, self.numbers, self.copied = method, name, 0, 0

    def fail(self, message: str) -> NoReturn:
        raise InvalidValueError(f"metric {self.name!r}: {self.method}: {message}", name=self.name)

    def plain(self, value: Any, path: str) -> Any:
        """A copy in plain JSON types: numpy arrays and scalars through .tolist() / .item()."""
        if type(value) in _PLAIN:
            return value
        if isinstance(value, (str, bool, int, float)):  # subclasses (numpy.float64 is a float)
            return bool(value) if isinstance(value, bool) else float(value) if isinstance(value, float) \
                else int(value) if isinstance(value, int) else str(value)
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    self.fail(f"{path} has a key {key!r} that is not a str")
                out[key] = self.plain(item, f"{path}.{key}")
            return out
        if isinstance(value, (list, tuple)):
            self.copied += len(value)
            if self.copied > 2 * MAX_NUMBERS:  # a runaway value: stop copying it (the shape checks are exact)
                self.room_for(self.copied)
            if all(type(item) in _PLAIN for item in value):  # a row of numbers: no path per entry
                return list(value)
            return [self.plain(item, f"{path}[{i}]") for i, item in enumerate(value)]
        tolist = getattr(value, "tolist", None)  # numpy arrays and scalars, without importing numpy
        if callable(tolist):
            size = getattr(value, "size", 0)
            if isinstance(size, int) and size > MAX_NUMBERS:  # before .tolist() makes it a list
                self.room_for(size)
            return self.plain(tolist(), path)
        item = getattr(value, "item", None)  # 0-d tensors
        if callable(item):
            return self.plain(item(), path)
        self.fail(f"{path} is a {type(value).__name__}: the value must hold only dicts, lists, str and numbers")

    def room_for(self, n: int) -> None:
        """Refuse, before reading them, more numbers than a value may hold."""
        if self.numbers + n > MAX_NUMBERS:
            self.fail(f"the value holds more than {MAX_NUMBERS:,} numbers; log a smaller one "
                      f"(fewer classes, thresholds or bins)")

    def counted(self, n: int) -> None:
        self.room_for(n)
        self.numbers += n

    def sequence(self, data: dict[str, Any], key: str, length: int | None = None, *,
                 what: str = "", at_least: int = 1) -> list[Any]:
        value = data.get(key)
        return self.items(value, f"data.{key}", length, what=what, at_least=at_least)

    def items(self, value: Any, path: str, length: int | None = None, *, what: str = "",
              at_least: int = 0) -> list[Any]:
        if not isinstance(value, list):
            self.fail(f"{path} must be a list, got {'nothing' if value is None else type(value).__name__}")
        if length is not None and len(value) != length:
            self.fail(f"{path} has {len(value)} entries but {what or length} are needed")
        if len(value) < at_least:
            self.fail(f"{path} must have at least {at_least} entr{'y' if at_least == 1 else 'ies'}")
        return value

    def numbers_at(self, values: list[Any], path: str, *, count: bool = False, nullable: bool = False) -> None:
        self.counted(len(values))
        for i, v in enumerate(values):
            if v is None and nullable:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                self.fail(f"{path}[{i}] must be a number, got {v!r}")
            if isinstance(v, float) and not math.isfinite(v):
                hint = " (null marks an empty bin)" if nullable else ""
                self.fail(f"{path}[{i}] is {v}: numbers must be finite{hint}")
            if count and v < 0:
                self.fail(f"{path}[{i}] is {v}: counts cannot be negative")

    def labels(self, data: dict[str, Any]) -> list[Any]:
        labels = self.sequence(data, "class_labels")
        for i, label in enumerate(labels):
            if isinstance(label, bool) or not isinstance(label, (str, int, float)) or (
                    isinstance(label, float) and not math.isfinite(label)):
                self.fail(f"data.class_labels[{i}] must be a str or a number, got {label!r}")
        seen: set[str] = set()
        for label in labels:  # by repr: the label 1 and the label "1" are two classes
            if repr(label) in seen:
                self.fail(f"data.class_labels names {label!r} more than once")
            seen.add(repr(label))
        return labels

    def table(self, value: Any, path: str, classes: int, thresholds: int, threshold_key: str) -> None:
        self.room_for(classes * thresholds * 4)
        per_class = self.items(value, path, classes, what=f"{classes} (one per class label)")
        for c, rows in enumerate(per_class):
            rows = self.items(rows, f"{path}[{c}]", thresholds, what=f"{thresholds} (one per {threshold_key} entry)")
            for t, row in enumerate(rows):
                row = self.items(row, f"{path}[{c}][{t}]", 4, what="4 (TP, FP, TN, FN)")
                self.numbers_at(row, f"{path}[{c}][{t}]", count=True)

    def edges(self, data: dict[str, Any], bins: int) -> None:
        edges = self.sequence(data, "bin_edges", bins + 1, what=f"{bins + 1} (one more than bin_counts)")
        self.numbers_at(edges, "data.bin_edges")
        for i in range(1, len(edges)):
            if edges[i] < edges[i - 1]:
                self.fail(f"data.bin_edges must ascend: [{i - 1}] is {edges[i - 1]} but [{i}] is {edges[i]}")


def _confusion_matrix(check: _Check, data: dict[str, Any]) -> None:
    labels = check.labels(data)
    n = len(labels)
    check.room_for(n * n)  # before reading the rows: a huge matrix is refused at once
    rows = check.sequence(data, "matrix", n, what=f"{n} (one row per class label)")
    for i, row in enumerate(rows):
        row = check.items(row, f"data.matrix[{i}]", n, what=f"{n} (one per class label)")
        check.numbers_at(row, f"data.matrix[{i}]", count=True)


def _accuracy_table(check: _Check, data: dict[str, Any]) -> None:
    labels = check.labels(data)
    for key in ("probability_thresholds", "percentile_thresholds"):
        check.numbers_at(check.sequence(data, key), f"data.{key}")
    for table, key in (("probability_tables", "probability_thresholds"), ("percentile_tables", "percentile_thresholds")):
        check.table(data.get(table), f"data.{table}", len(labels), len(data[key]), key)


def _residuals(check: _Check, data: dict[str, Any]) -> None:
    counts = check.sequence(data, "bin_counts")
    check.numbers_at(counts, "data.bin_counts", count=True)
    check.edges(data, len(counts))


def _predictions(check: _Check, data: dict[str, Any]) -> None:
    counts = check.sequence(data, "bin_counts")
    check.numbers_at(counts, "data.bin_counts", count=True)
    n = len(counts)
    for key in ("bin_averages", "bin_errors"):
        check.numbers_at(check.sequence(data, key, n, what=f"{n} (one per bin of bin_counts)"), f"data.{key}",
                         nullable=True)
    check.edges(data, n)


_PLAIN = frozenset({str, bool, int, float, type(None)})

_SHAPES = {
    MetricKind.CONFUSION_MATRIX: _confusion_matrix,
    MetricKind.ACCURACY_TABLE: _accuracy_table,
    MetricKind.RESIDUALS: _residuals,
    MetricKind.PREDICTIONS: _predictions,
}

__all__ = ["MAX_NUMBERS", "METHODS", "check_evaluation"]
