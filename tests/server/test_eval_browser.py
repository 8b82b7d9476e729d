"""The run page draws evaluation logs and system metrics, in a real browser (Debian's Chromium
through Playwright) against a real server. Screenshots go to test-output/screenshots/."""

from __future__ import annotations

import time
from typing import Any

import pytest
from studio_fixtures import LiveServer, screenshot

import runlab

pytestmark = pytest.mark.slow

CM = {"schema_type": "confusion_matrix", "schema_version": "1.0.0",
      "data": {"class_labels": ["cat", "dog", "bird"], "matrix": [[13, 2, 0], [1, 17, 3], [0, 4, 9]]}}
ACCURACY = {"schema_type": "accuracy_table", "schema_version": "1.0.2", "data": {
    "probability_tables": [[[5, 5, 0, 0], [4, 1, 4, 1], [0, 0, 5, 5]], [[5, 5, 0, 0], [3, 2, 3, 2], [0, 0, 5, 5]]],
    "percentile_tables": [[[5, 5, 0, 0], [0, 0, 5, 5]], [[5, 5, 0, 0], [0, 0, 5, 5]]],
    "class_labels": ["no", "yes"], "probability_thresholds": [0.0, 0.5, 1.0], "percentile_thresholds": [0.0, 100.0]}}
RESIDUALS = {"schema_type": "residuals", "schema_version": "1.0.0",
             "data": {"bin_edges": [-1.0, -0.5, 0.0, 0.5, 1.0], "bin_counts": [3, 10, 12, 4]}}
PREDICTIONS = {"schema_type": "predictions", "schema_version": "1.0.0", "data": {
    "bin_averages": [0.3, 0.7, 1.2], "bin_errors": [0.05, 0.1, 0.2], "bin_counts": [40, 35, 5],
    "bin_edges": [0.0, 0.5, 1.0, 1.5]}}


def test_run_page_draws_evaluation_logs_and_a_system_section(ws: runlab.Workspace, live_server: LiveServer,
                                                             page: Any) -> None:
    run = runlab.Experiment(ws, "evaluated").start_logging(system_metrics=0.05)
    for step in range(5):
        run.log("loss", 1 / (step + 1))
    run.log_confusion_matrix("test confusion", CM)
    run.log_accuracy_table("accuracy", ACCURACY)
    run.log_residuals("residuals", RESIDUALS)
    run.log_predictions("predicted vs true", PREDICTIONS)
    deadline = time.monotonic() + 20
    while "sys/cpu_percent" not in run.get_metrics() or len(run.get_metric_history("sys/cpu_percent")) < 3:
        assert time.monotonic() < deadline, "no system metrics"
        time.sleep(0.05)
    run.complete()

    page.goto(f"{live_server.url}/runs/{run.id}#metrics")
    page.wait_for_selector("body[data-ready='1']")
    heatmap = ".panel[data-metric='test confusion'] .eval-confusion_matrix[data-ready='1']"
    page.wait_for_selector(heatmap)
    cells = page.evaluate(f"""() => {{ const g = document.querySelector("{heatmap}");
        const at = (t) => {{ const r = t.getBoundingClientRect(); return [r.y + r.height / 2, r.x + r.width / 2, t.textContent]; }};
        return {{ z: g.data[0].z, x: g.data[0].x, y: g.data[0].y, type: g.data[0].type,
                 cells: [...g.querySelectorAll('.heatmaplayer text')].map(at),
                 rows: [...g.querySelectorAll('.yaxislayer-above .ytick text')].map(at),
                 columns: [...g.querySelectorAll('.xaxislayer-above .xtick text')].map(at) }}; }}""")
    assert cells["type"] == "heatmap"
    assert cells["z"] == CM["data"]["matrix"] and cells["x"] == cells["y"] == ["cat", "dog", "bird"]
    # what is on screen: the numbers written in the cells, read row by row (top to bottom, left to right)
    on_screen = sorted(cells["cells"])
    assert len(on_screen) == 9
    grid = [[int(t) for _, _, t in sorted(on_screen[r * 3:(r + 1) * 3], key=lambda c: c[1])] for r in range(3)]
    assert grid == CM["data"]["matrix"]
    assert [t for _, _, t in sorted(cells["rows"])] == ["cat", "dog", "bird"]  # true classes, top to bottom
    assert [t for _, _, t in sorted(cells["columns"], key=lambda c: c[1])] == ["cat", "dog", "bird"]

    roc = ".panel[data-metric='accuracy'] .eval-accuracy_table[data-ready='1']"
    page.wait_for_selector(roc)
    curves = page.evaluate(f"""() => document.querySelector("{roc}").data
        .filter((t) => t.name).map((t) => [t.name, t.xaxis, t.x, t.y])""")
    roc_no = next(c for c in curves if c[0] == "no" and c[1] == "x")
    assert roc_no[2] == [1.0, 0.2, 0.0] and roc_no[3] == [1.0, 0.8, 0.0]  # FPR = FP/(FP+TN), TPR = TP/(TP+FN)
    assert any(c[0] == "yes" and c[1] == "x2" for c in curves)  # precision-recall beside it

    page.wait_for_selector(".panel[data-metric='residuals'] .eval-residuals[data-ready='1']")
    bars = page.evaluate("""() => { const g = document.querySelector(".panel[data-metric='residuals'] .eval-chart");
        return g.data[0].y; }""")
    assert bars == RESIDUALS["data"]["bin_counts"]
    page.wait_for_selector(".panel[data-metric='predicted vs true'] .eval-predictions[data-ready='1']")

    system = page.locator("#system-section")
    assert system.is_visible()
    page.wait_for_selector("#system-charts .chart-card[data-metric='sys/cpu_percent'][data-points]")
    assert page.locator("#charts .chart-card[data-metric='loss']").count() == 1
    assert page.locator("#charts .chart-card[data-metric^='sys/']").count() == 0  # not among the run's own
    screenshot(page, "run-evaluation-and-system", full_page=True)


def test_no_system_section_without_system_metrics(ws: runlab.Workspace, live_server: LiveServer, page: Any) -> None:
    run = runlab.Experiment(ws, "plain").start_logging()
    for step in range(3):
        run.log("loss", 1 / (step + 1))
    run.complete()
    page.goto(f"{live_server.url}/runs/{run.id}#metrics")
    page.wait_for_selector("#charts .chart-card[data-metric='loss'][data-points]")
    assert page.locator("#system-section").is_hidden()


def test_evaluation_charts_drawn_when_their_tab_opens(ws: runlab.Workspace, live_server: LiveServer,
                                                      page: Any) -> None:
    """Opened on the overview, the metrics tab is hidden: its charts are drawn once it is shown."""
    run = runlab.Experiment(ws, "evaluated").start_logging()
    run.log_confusion_matrix("cm", CM)
    run.complete()
    page.goto(f"{live_server.url}/runs/{run.id}")
    page.wait_for_selector("body[data-ready='1']")
    page.click("#tabs a[data-tab='metrics']")
    chart = page.wait_for_selector(".panel[data-metric='cm'] .eval-confusion_matrix[data-ready='1']")
    box = chart.bounding_box()
    assert box is not None and box["width"] > 200 and box["height"] > 200  # measured once visible
    assert page.evaluate("() => document.querySelector('.eval-confusion_matrix').data[0].z") == CM["data"]["matrix"]
