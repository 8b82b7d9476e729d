"""Evaluation logs (Azure ML's log_confusion_matrix, log_accuracy_table, log_residuals,
log_predictions): round trips through get_metrics(), and the shapes they refuse."""

from __future__ import annotations

import copy
import json
import math
import time
from typing import Any

import numpy as np
import pytest

import runlab
from runlab.core.errors import InvalidValueError
from runlab.tracking.evaluation import MAX_NUMBERS

CM = {"schema_type": "confusion_matrix", "schema_version": "1.0.0",
      "data": {"class_labels": ["cat", "dog", "bird"], "matrix": [[13, 2, 0], [1, 17, 3], [0, 4, 9]]}}
ACCURACY = {"schema_type": "accuracy_table", "schema_version": "1.0.2", "data": {
    "probability_tables": [[[5, 5, 0, 0], [4, 1, 4, 1], [0, 0, 5, 5]], [[5, 5, 0, 0], [3, 2, 3, 2], [0, 0, 5, 5]]],
    "percentile_tables": [[[5, 5, 0, 0], [0, 0, 5, 5]], [[5, 5, 0, 0], [0, 0, 5, 5]]],
    "class_labels": [0, 1], "probability_thresholds": [0.0, 0.5, 1.0], "percentile_thresholds": [0.0, 100.0]}}
RESIDUALS = {"schema_type": "residuals", "schema_version": "1.0.0",
             "data": {"bin_edges": [-1.0, -0.5, 0.0, 0.5, 1.0], "bin_counts": [3, 10, 12, 4]}}
PREDICTIONS = {"schema_type": "predictions", "schema_version": "1.0.0", "data": {
    "bin_averages": [0.3, 0.7, None], "bin_errors": [0.05, 0.1, None], "bin_counts": [40, 35, 0],
    "bin_edges": [0.0, 0.5, 1.0, 1.5]}}


@pytest.fixture
def run(ws: runlab.Workspace) -> Any:
    r = runlab.Experiment(ws, "eval").start_logging()
    yield r
    r.complete()


def _log(run: Any, value: Any) -> None:
    getattr(run, f"log_{value['schema_type']}")("m", value)


def test_each_kind_round_trips_through_get_metrics_unchanged(run: Any) -> None:
    given = [copy.deepcopy(v) for v in (CM, ACCURACY, RESIDUALS, PREDICTIONS)]
    run.log_confusion_matrix("cm", given[0], description="test set")
    run.log_accuracy_table("acc", given[1])
    run.log_residuals("res", json.dumps(given[2]))  # JSON text, as Azure also takes
    run.log_predictions("pred", given[3])
    given[0]["data"]["matrix"][0][0] = 999  # a later change of the caller's dict is not logged
    metrics = run.get_metrics()
    assert metrics == {"cm": CM, "acc": ACCURACY, "res": RESIDUALS, "pred": PREDICTIONS}
    summaries = {s.name: s for s in run.get_metric_summaries()}
    assert {n: s.kind for n, s in summaries.items()} == {
        "cm": "confusion_matrix", "acc": "accuracy_table", "res": "residuals", "pred": "predictions"}
    assert summaries["cm"].description == "test set"
    assert run.get_metrics(name="cm") == {"cm": CM}


def test_a_fresh_reader_and_numpy_input(ws: runlab.Workspace) -> None:
    run = runlab.Experiment(ws, "eval").start_logging()
    value = {"schema_type": "confusion_matrix", "schema_version": "1.0.0",
             "data": {"class_labels": np.array(["a", "b", "c"]), "matrix": np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]])}}
    run.log_confusion_matrix("cm", value)
    run.log_confusion_matrix("cm", CM)  # logged twice: a list of both, as Azure returns repeated metrics
    run.complete()
    again = ws.get_run(run.id).get_metrics()
    first = {"schema_type": "confusion_matrix", "schema_version": "1.0.0",
             "data": {"class_labels": ["a", "b", "c"], "matrix": [[1, 2, 3], [4, 5, 6], [7, 8, 9]]}}
    assert again == {"cm": [first, CM]}
    assert type(again["cm"][0]["data"]["matrix"][0][0]) is int


def test_extra_keys_and_other_schema_versions_are_kept(run: Any) -> None:
    value = copy.deepcopy(CM)
    value["schema_version"] = "v1"  # the R SDK's examples
    value["data"]["normalized"] = False
    value["generated_by"] = "sklearn"
    run.log_confusion_matrix("cm", value)
    assert run.get_metrics()["cm"] == value


def _refused(run: Any, value: Any, match: str, method: str | None = None) -> None:
    log = getattr(run, method) if method else (lambda n, v: _log(run, v))
    with pytest.raises(InvalidValueError, match=match):
        log("m", value)


def _with(base: dict[str, Any], **data: Any) -> dict[str, Any]:
    value = copy.deepcopy(base)
    value["data"].update(data)
    return value


def test_a_confusion_matrix_whose_rows_do_not_match_its_labels(run: Any) -> None:
    _refused(run, _with(CM, matrix=[[1, 2, 3], [4, 5, 6]]), r"data.matrix has 2 entries but 3 \(one row per class")
    _refused(run, _with(CM, matrix=[[1, 2, 3], [4, 5], [7, 8, 9]]), r"data.matrix\[1\] has 2 entries but 3")
    _refused(run, _with(CM, class_labels=["a", "b"]), r"data.matrix has 3 entries but 2")
    _refused(run, _with(CM, class_labels=["a", "b", "a"]), "names 'a' more than once")
    _refused(run, _with(CM, class_labels=[]), "class_labels must have at least 1 entry")
    _refused(run, _with(CM, class_labels=[["a"], "b", "c"]), r"class_labels\[0\] must be a str or a number")
    _refused(run, _with(CM, matrix="[[1]]"), "data.matrix must be a list, got str")
    _refused(run, _with(CM, matrix=[[1, 2, 3], [4, "5", 6], [7, 8, 9]]), r"data.matrix\[1\]\[1\] must be a number")
    _refused(run, _with(CM, matrix=[[1, 2, 3], [4, -5, 6], [7, 8, 9]]), "counts cannot be negative")
    _refused(run, _with(CM, matrix=[[1, 2, 3], [4, True, 6], [7, 8, 9]]), "must be a number, got True")
    assert run.get_metrics() == {}


def test_nan_and_infinity_in_a_matrix(run: Any) -> None:
    for bad in (math.nan, math.inf, -math.inf):
        _refused(run, _with(CM, matrix=[[1.0, 0.0, 0.0], [0.0, bad, 0.0], [0.0, 0.0, 1.0]]),
                 r"data.matrix\[1\]\[1\] is (nan|inf|-inf): numbers must be finite")
    text = '{"schema_type": "confusion_matrix", "schema_version": "1.0.0", "data": {"class_labels": [0], "matrix": [[NaN]]}}'
    _refused(run, text, "must be finite", "log_confusion_matrix")  # json.loads takes NaN: refused all the same
    value = copy.deepcopy(CM)
    value["note"] = math.nan  # outside the known keys too: the value must be plain JSON
    _refused(run, value, "plain JSON, with finite numbers", "log_confusion_matrix")
    normalized = _with(CM, matrix=[[0.8, 0.2, 0.0], [0.1, 0.9, 0.0], [0.0, 0.3, 0.7]])  # floats are fine
    run.log_confusion_matrix("norm", normalized)
    assert run.get_metrics()["norm"] == normalized


def test_wrong_schema_type_and_envelope(run: Any) -> None:
    _refused(run, ACCURACY, "schema_type must be 'confusion_matrix', got 'accuracy_table': use "
             r"run.log_accuracy_table\(...\)", "log_confusion_matrix")
    _refused(run, {**CM, "schema_type": "confusion-matrix"}, "got 'confusion-matrix'$", "log_confusion_matrix")
    _refused(run, {k: v for k, v in CM.items() if k != "schema_type"}, "got None", "log_confusion_matrix")
    _refused(run, {**CM, "schema_version": 1}, "schema_version must be a non-empty str", "log_confusion_matrix")
    _refused(run, {**CM, "data": [[1]]}, "data must be a dict, got list", "log_confusion_matrix")
    _refused(run, [CM], "takes a dict", "log_confusion_matrix")
    _refused(run, "{not json", "the value is text but not JSON", "log_confusion_matrix")
    _refused(run, {**CM, 1: "x"}, "has a key 1 that is not a str", "log_confusion_matrix")
    _refused(run, _with(CM, matrix={1, 2}), "is a set", "log_confusion_matrix")


def test_accuracy_table_shapes(run: Any) -> None:
    _refused(run, _with(ACCURACY, probability_tables=ACCURACY["data"]["probability_tables"][:1]),
             r"data.probability_tables has 1 entries but 2 \(one per class label\)")
    short = copy.deepcopy(ACCURACY["data"]["percentile_tables"])
    short[1] = short[1][:1]
    _refused(run, _with(ACCURACY, percentile_tables=short),
             r"data.percentile_tables\[1\] has 1 entries but 2 \(one per percentile_thresholds entry\)")
    three = copy.deepcopy(ACCURACY["data"]["probability_tables"])
    three[0][2] = [0, 0, 5]
    _refused(run, _with(ACCURACY, probability_tables=three), r"probability_tables\[0\]\[2\] has 3 entries but 4 \(TP, FP, TN, FN\)")
    _refused(run, _with(ACCURACY, probability_thresholds=[0.0, math.nan, 1.0]), "must be finite")
    _refused(run, _with(ACCURACY, percentile_thresholds=None), "data.percentile_thresholds must be a list, got nothing")


def test_residuals_and_predictions_shapes(run: Any) -> None:
    _refused(run, _with(RESIDUALS, bin_edges=[0.0, 1.0]), r"data.bin_edges has 2 entries but 5 \(one more than bin_counts\)")
    _refused(run, _with(RESIDUALS, bin_edges=[0.0, 1.0, 0.5, 2.0, 3.0]), r"must ascend: \[1\] is 1.0 but \[2\] is 0.5")
    _refused(run, _with(RESIDUALS, bin_counts=[]), "bin_counts must have at least 1 entry")
    _refused(run, _with(PREDICTIONS, bin_errors=[0.1, 0.2]), r"data.bin_errors has 2 entries but 3")
    _refused(run, _with(PREDICTIONS, bin_averages=[0.3, math.nan, 0.1]), r"null marks an empty bin")
    _refused(run, _with(PREDICTIONS, bin_counts=[1, None, 0]), r"bin_counts\[1\] must be a number, got None")


def test_huge_matrices(run: Any) -> None:
    n = int(MAX_NUMBERS ** 0.5) + 1  # just over the limit: refused before any row is read
    labels = list(range(n))
    t0 = time.perf_counter()
    _refused(run, _with(CM, class_labels=labels, matrix=[]), f"more than {MAX_NUMBERS:,} numbers", "log_confusion_matrix")
    _refused(run, _with(CM, class_labels=[0], matrix=np.zeros((5000, 5000))), "more than", "log_confusion_matrix")
    runaway = [[0] * 3000 for _ in range(3000)]  # a list of lists: copying stops early
    _refused(run, _with(CM, class_labels=[0], matrix=runaway), "more than", "log_confusion_matrix")
    assert time.perf_counter() - t0 < 5
    big = 300  # 90,000 cells: logged, stored and read back whole
    value = _with(CM, class_labels=[f"c{i}" for i in range(big)],
                  matrix=[[(i * 7 + j) % 11 for j in range(big)] for i in range(big)])
    run.log_confusion_matrix("big", value)
    assert run.get_metrics(name="big") == {"big": value}
