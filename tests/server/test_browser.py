"""The studio's pages in a real browser (Debian's Chromium, driven by Playwright) against a real
server: sort the runs table, read a chart, watch a run log live, compare runs, empty states.
Screenshots go to test-output/screenshots/."""

from __future__ import annotations

import io
import threading
import time
from typing import Any

import pytest
from studio_fixtures import LiveServer, screenshot

import runlab

pytestmark = pytest.mark.slow

READY = "body[data-ready='1']"


def open_page(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_selector(READY)


def column_values(page: Any, metric: str) -> list[float]:
    texts = page.eval_on_selector_all(f"#runs-table tbody td[data-metric='{metric}']", "cells => cells.map(c => c.textContent)")
    return [float(t) for t in texts]


def test_runs_table_sorts_by_a_metric(populated: runlab.Workspace, live_server: LiveServer, page: Any) -> None:
    open_page(page, f"{live_server.url}/runs?experiment=mnist")
    rows = page.locator("#runs-table tbody tr")
    assert rows.count() == 12  # top-level runs only
    assert page.locator("#range").inner_text() == "1–12 of 12 runs"
    assert page.locator("#runs-table tbody tr[data-run-id='mnist_run_08'] .status").inner_text() == "Failed"

    page.click("#runs-table th[data-sort='metric:loss']")
    page.wait_for_selector("#runs-table th[data-sort='metric:loss'] .arrow")
    page.wait_for_selector(READY)
    values = column_values(page, "loss")
    assert values == sorted(values, reverse=True) and len(values) == 12
    assert "sort=metric%3Aloss" in page.url or "sort=metric:loss" in page.url

    page.click("#runs-table th[data-sort='metric:loss']")
    page.wait_for_function("() => document.querySelector(\"th[data-sort='metric:loss'] .arrow\").textContent === '▲'")
    page.wait_for_selector(READY)
    values = column_values(page, "loss")
    assert values == sorted(values)

    page.click("#status-filter [data-status='Failed']")
    page.wait_for_function("() => document.querySelectorAll('#runs-table tbody tr').length === 1")
    page.click("#status-filter [data-status='Failed']")
    page.wait_for_function("() => document.querySelectorAll('#runs-table tbody tr').length === 12")
    page.fill("#search", "#1")  # display names 'lr 0.01 #1', '#10', '#11'
    page.wait_for_function("() => document.querySelectorAll('#runs-table tbody tr').length === 3")
    page.fill("#search", "")
    page.wait_for_function("() => document.querySelectorAll('#runs-table tbody tr').length === 12")
    page.fill("#tag-filter", "lr=0.1")
    page.wait_for_function("() => document.querySelectorAll('#runs-table tbody tr').length === 4")
    page.fill("#tag-filter", "")
    page.wait_for_function("() => document.querySelectorAll('#runs-table tbody tr').length === 12")
    page.wait_for_selector(READY)
    screenshot(page, "runs-table")


def test_run_page_chart_shows_every_point_and_the_last_value(populated: runlab.Workspace, live_server: LiveServer,
                                                             page: Any) -> None:
    run = runlab.Run(populated.folder, "mnist_run_11")
    history = run.get_metric_history("loss")
    open_page(page, f"{live_server.url}/runs/mnist_run_11#metrics")
    card = page.wait_for_selector(".chart-card[data-metric='loss'][data-points]")
    points, last = page.evaluate(
        "() => { const g = document.querySelector(\".chart-card[data-metric='loss'] .js-plotly-plot\");"
        " const y = g.data[0].y; return [y.length, y[y.length - 1]]; }")
    assert points == len(history) == 95
    assert last == pytest.approx(float(history.values[-1]))
    assert card.get_attribute("data-points") == "95"
    assert "95 points" in page.locator(".chart-card[data-metric='loss'] .meta").inner_text()
    screenshot(page, "run-metrics")

    page.click("#tabs a[data-tab='overview']")
    assert page.locator("#timeline li[data-status='Completed']").get_attribute("data-state") == "done"
    assert page.locator("#details dd[data-field='User']").inner_text() == "ada"
    assert "git.branch" in page.locator("#properties").inner_text()
    screenshot(page, "run-overview")

    page.click("#tabs a[data-tab='files']")
    page.wait_for_selector("#files-tree li.file[data-name='outputs/model.json']")
    page.click("#tabs a[data-tab='children']")
    page.wait_for_selector("#children tr[data-run-id='mnist_run_11_child']")
    page.click("#tabs a[data-tab='snapshot']")
    page.wait_for_selector("#snapshot .empty")
    assert "no snapshot" in page.locator("#snapshot").inner_text().lower()


def test_new_log_line_and_metric_point_appear_while_a_run_logs(ws: runlab.Workspace, live_server: LiveServer,
                                                                page: Any) -> None:
    run = runlab.Experiment(ws, "live").start_logging(display_name="training live")
    run.tag("model", "cnn")
    for step in range(5):
        run.log("loss", 1.0 / (step + 1))
    run.upload_file("azureml-logs/70_driver_log.txt", io.BytesIO(b"starting training\n"))
    run.flush()
    stop = threading.Event()
    logged = {"steps": 5}

    def train() -> None:  # what a submitted run's script and agent do: log metrics, append to the driver log
        step = 5
        while not stop.is_set() and step < 400:
            run.log("loss", 1.0 / (step + 1))
            run.flush()
            ws.folder.artifacts.append_bytes(run.id, "azureml-logs/70_driver_log.txt", f"step {step} done\n".encode())
            logged["steps"] = step + 1
            step += 1
            stop.wait(0.15)

    open_page(page, f"{live_server.url}/runs/{run.id}#logs")
    page.wait_for_function("() => document.querySelector('#log-text').textContent.includes('starting training')")
    trainer = threading.Thread(target=train, name="trainer")
    trainer.start()
    try:
        page.wait_for_function("() => document.querySelector('#log-text').textContent.includes('step 8 done')")
        assert page.locator("#run-status .status").inner_text() == "Running"
        screenshot(page, "run-live-logs")

        page.click("#tabs a[data-tab='metrics']")
        page.wait_for_selector(".chart-card[data-metric='loss'][data-points]")
        first = int(page.get_attribute(".chart-card[data-metric='loss']", "data-points"))
        page.wait_for_function(
            f"() => Number(document.querySelector(\".chart-card[data-metric='loss']\").dataset.points) >= {first + 3}")
        grown, last = page.evaluate(
            "() => { const g = document.querySelector(\".chart-card[data-metric='loss'] .js-plotly-plot\");"
            " const y = g.data[0].y; return [y.length, y[y.length - 1]]; }")
        assert grown >= first + 3
        assert last == pytest.approx(1.0 / grown)  # the chart's last point is the last value logged
        screenshot(page, "run-live-metrics")
    finally:
        stop.set()
        trainer.join(10)
    run.complete()
    page.wait_for_function("() => document.querySelector('#run-status .status').textContent === 'Completed'")
    page.wait_for_function(  # the final points arrive with the final status, and are drawn
        f"() => document.querySelector(\".chart-card[data-metric='loss']\").dataset.points === '{logged['steps']}'")


def test_compare_two_runs(populated: runlab.Workspace, live_server: LiveServer, page: Any) -> None:
    open_page(page, f"{live_server.url}/runs?experiment=mnist")
    page.check("#runs-table tr[data-run-id='mnist_run_00'] input[type=checkbox]")
    page.check("#runs-table tr[data-run-id='mnist_run_01'] input[type=checkbox]")
    assert page.locator("#compare-button").inner_text() == "Compare selected (2)"
    page.click("#compare-button")
    page.wait_for_url("**/compare?*")
    page.wait_for_selector(READY)
    assert page.locator("#compare-chart").get_attribute("data-traces") == "2"
    traces = page.evaluate("() => document.getElementById('compare-chart').data.map(t => [t.meta, t.y.length])")
    assert sorted(traces) == [["mnist_run_00", 40], ["mnist_run_01", 45]]
    assert page.locator("#metric-select").input_value() == "loss"
    lr_cells = page.locator("#compare-table tr[data-row='lr'] td")
    assert [lr_cells.nth(i).inner_text() for i in (1, 2)] == ["0.1", "0.01"]
    assert "diff" in (lr_cells.nth(1).get_attribute("class") or "")
    assert page.locator("#compare-table tr[data-row='accuracy']").count() == 1
    screenshot(page, "compare")

    page.select_option("#metric-select", "accuracy")
    page.wait_for_selector(READY)
    page.check("#only-diff")
    assert page.locator("#compare-table tr[data-row='Experiment']").count() == 0


def test_empty_states_explain_what_to_do(ws: runlab.Workspace, live_server: LiveServer, page: Any) -> None:
    open_page(page, f"{live_server.url}/experiments")
    assert "No experiments yet" in page.locator("#experiments").inner_text()
    open_page(page, f"{live_server.url}/runs")
    assert "No runs yet" in page.locator("#runs-empty").inner_text()
    for path, text in (("/compute", "No compute targets yet"), ("/environments", "No environments yet"),
                       ("/models", "No models yet")):
        open_page(page, live_server.url + path)
        assert text in page.locator("#assets").inner_text()
    open_page(page, f"{live_server.url}/datasets")
    assert "No datasets yet" in page.locator("#datasets").inner_text()
    open_page(page, f"{live_server.url}/datastores")  # workspaceblobstore is always there, empty
    assert "No files yet" in page.locator("#datastores").inner_text()
    open_page(page, f"{live_server.url}/compare")
    assert "Pick runs to compare" in page.locator("#main").inner_text()
    page.goto(f"{live_server.url}/runs/no-such-run")
    assert "does not exist" in page.locator("#main").inner_text()


def test_experiments_page(populated: runlab.Workspace, live_server: LiveServer, page: Any) -> None:
    open_page(page, f"{live_server.url}/experiments")
    row = page.locator("#experiments-table tr[data-experiment='mnist']")
    assert row.locator("td").nth(1).inner_text() == "12"
    assert "Completed 10" in row.inner_text() and "Failed 1" in row.inner_text()
    screenshot(page, "experiments")
    row.locator("a").first.click()
    page.wait_for_url("**/runs?experiment=mnist*")
    page.wait_for_selector(READY)
    assert page.locator("#runs-title").inner_text() == "mnist"


def test_portal_url_is_the_run_page(populated: runlab.Workspace, live_server: LiveServer, page: Any,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNLAB_STUDIO_URL", live_server.url)
    run = runlab.Run(populated.folder, "mnist_run_03")
    open_page(page, run.get_portal_url())
    assert page.locator("#run-id").inner_text() == "mnist_run_03"
    assert page.locator("#run-title").inner_text() == "lr 0.1 #3"
    time.sleep(0)  # keep the page open until the assertions ran
