"""Defects of the studio in what it shows (issue 12, the last item of its list): a constant series, values
that JSON cannot hold, a tag without a value, a failed environment build, and sort headers for the
keyboard. Each checked in a real browser (Debian's Chromium through Playwright) against a real server."""

from __future__ import annotations

import math
from typing import Any

import pytest
from studio_fixtures import LiveServer, add_run

import runlab

pytestmark = pytest.mark.slow

READY = "body[data-ready='1']"


def open_page(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_selector(READY)


def y_axis(page: Any, selector: str) -> dict[str, Any]:
    """The y axis plotly drew in ``selector`` (a plot's div): its range and tick labels."""
    return page.evaluate("""(sel) => { const d = document.querySelector(sel);
        return { range: d._fullLayout.yaxis.range, ticks: Array.from(d.querySelectorAll('.ytick text')).map((t) => t.textContent) }; }""",
                         selector)


def test_a_constant_series_is_drawn_on_an_axis_around_its_value(ws: runlab.Workspace, live_server: LiveServer,
                                                                page: Any) -> None:
    add_run(ws.folder, "const", "const_a", metrics={"lr": [0.001] * 30, "zero": [0.0] * 30,
                                                    "loss": [1.0 / (s + 1) for s in range(30)]})
    add_run(ws.folder, "const", "const_b", metrics={"lr": [0.001] * 20})
    open_page(page, f"{live_server.url}/runs/const_a#metrics")
    for name in ("lr", "zero", "loss"):
        page.wait_for_selector(f".chart-card[data-metric='{name}'][data-points]")
    lr = y_axis(page, ".chart-card[data-metric='lr'] .js-plotly-plot")
    low, high = lr["range"]
    assert low < 0.001 < high and high - low < 0.001  # around the value, not 0 on a -1..1 axis
    assert "0.001" in lr["ticks"]
    zero = y_axis(page, ".chart-card[data-metric='zero'] .js-plotly-plot")
    assert zero["range"][0] < 0 < zero["range"][1]
    low, high = y_axis(page, ".chart-card[data-metric='loss'] .js-plotly-plot")["range"]
    assert low <= 1 / 30 and high >= 1.0 and high - low < 1.5  # a varying series keeps plotly's autorange

    open_page(page, f"{live_server.url}/compare?runs=const_a,const_b&metric=lr")
    page.wait_for_selector("#compare-chart[data-traces='2']")
    low, high = y_axis(page, "#compare-chart")["range"]
    assert low < 0.001 < high and high - low < 0.001


def test_infinite_values_are_shown_as_inf_in_summaries_and_tables(ws: runlab.Workspace, live_server: LiveServer,
                                                                  client: Any, page: Any) -> None:
    add_run(ws.folder, "inf", "inf_a", metrics={"x": [1.0, math.inf, 2.0, -math.inf, 3.0], "up": [1.0, 2.0, math.inf]})
    add_run(ws.folder, "inf", "inf_b", metrics={"x": [0.5, 0.25], "up": [1.0, 2.0]})
    summary = {m["name"]: m for m in client.get("/api/runs/inf_a/metrics").json()}
    assert (summary["x"]["min"], summary["x"]["max"], summary["x"]["last"]) == ("-inf", "inf", 3.0)
    assert summary["up"]["last"] == "inf"
    rows = client.get("/api/runs", params={"experiment": "inf", "metric": ["up"], "sort": "run_id",
                                        "order": "asc"}).json()["runs"]
    assert [r["metrics"]["up"] for r in rows] == ["inf", 2.0]

    open_page(page, f"{live_server.url}/runs/inf_a")
    cells = page.locator("#metric-summary tr[data-metric='x'] td")
    assert [cells.nth(i).inner_text() for i in range(1, 4)] == ["3", "-inf", "inf"]  # last, min, max
    up = page.locator("#metric-summary tr[data-metric='up'] td")
    assert (up.nth(1).inner_text(), up.nth(3).inner_text()) == ("inf", "inf")
    page.goto(f"{live_server.url}/runs/inf_a#metrics")  # a series ending at inf is still charted
    page.wait_for_selector(".chart-card[data-metric='up'][data-points]")
    assert "last inf" in page.locator(".chart-card[data-metric='up'] .meta").inner_text()

    open_page(page, f"{live_server.url}/runs?experiment=inf&metric=up")
    assert page.locator("#runs-table tr[data-run-id='inf_a'] td[data-metric='up']").inner_text() == "inf"
    open_page(page, f"{live_server.url}/compare?runs=inf_a,inf_b")
    assert page.locator("#compare-table tr[data-row='up'] td").nth(1).inner_text() == "inf"


def test_a_tag_set_without_a_value_is_shown_as_set(ws: runlab.Workspace, live_server: LiveServer, client: Any,
                                                   page: Any) -> None:
    experiment = runlab.Experiment(ws, "tags")
    tagged = experiment.start_logging()
    tagged.tag("reviewed")
    tagged.tag("stage", "dev")
    tagged.complete()
    other = experiment.start_logging()
    other.tag("stage", "prod")
    other.complete()
    assert client.get(f"/api/runs/{tagged.id}").json()["tags"] == {"reviewed": "", "stage": "dev"}

    open_page(page, f"{live_server.url}/runs/{tagged.id}")
    chip = page.locator("#tags .tag[data-tag='reviewed']")
    assert chip.locator("b").inner_text() == "reviewed"
    assert chip.locator(".empty-value").inner_text() == "(no value)"
    assert page.locator("#tags .tag[data-tag='stage']").inner_text() == "stage: dev"

    open_page(page, f"{live_server.url}/runs?experiment=tags")
    assert page.locator(f"#runs-table tr[data-run-id='{tagged.id}'] .tag[data-tag='reviewed'] .empty-value").count() == 1
    assert page.locator(f"#runs-table tr[data-run-id='{other.id}'] .tag[data-tag='reviewed']").count() == 0

    open_page(page, f"{live_server.url}/compare?runs={tagged.id},{other.id}")
    cells = page.locator("#compare-table tr[data-row='reviewed'] td")
    assert cells.nth(1).locator(".empty-value").inner_text() == "(no value)"  # set, without a value
    assert cells.nth(2).inner_text() == "" and cells.nth(2).locator(".empty-value").count() == 0  # not set


def test_an_environment_whose_build_failed_shows_failed_with_its_build_log(ws: runlab.Workspace, app: Any,
                                                                          live_server: LiveServer, client: Any,
                                                                          page: Any) -> None:
    from runlab.core.errors import RunlabError
    from runlab.execution.environments import EnvironmentDefinition, build_environment

    store = ws.folder.store
    broken = EnvironmentDefinition(name="broken-env", pip_requirements=("this-package-does-not-exist-runlab",))
    store.register_environment("broken-env", broken.content_hash(), broken.to_dict())
    later = EnvironmentDefinition(name="later-env", python_version="3.11", pip_requirements=("numpy",))
    store.register_environment("later-env", later.content_hash(), later.to_dict())
    with pytest.raises(RunlabError):
        build_environment(broken, app.state.studio.settings.environments_dir)

    envs = {e["name"]: e for e in client.get("/api/environments").json()}
    assert envs["broken-env"]["build_status"] == "Failed"
    assert envs["broken-env"]["build_log"] == "/api/environments/broken-env/1/build-log"
    log = client.get(envs["broken-env"]["build_log"])
    assert log.status_code == 200 and "this-package-does-not-exist-runlab" in log.text and "(exit code" in log.text
    assert (envs["later-env"]["build_status"], envs["later-env"]["build_log"]) == ("Not built", None)

    open_page(page, f"{live_server.url}/environments")
    row = page.locator("#assets tr", has_text="broken-env")
    status = row.locator(".status[data-build='Failed']")
    assert status.inner_text() == "Failed" and "Failed" in (status.get_attribute("class") or "")
    assert row.locator("a", has_text="build log").get_attribute("href") == envs["broken-env"]["build_log"]
    assert page.locator("#assets tr", has_text="later-env").locator(".status").inner_text() == "Not built"


def test_sort_headers_are_reached_and_used_with_the_keyboard(populated: runlab.Workspace, live_server: LiveServer,
                                                             page: Any) -> None:
    open_page(page, f"{live_server.url}/runs?experiment=mnist")
    focused_sort = "() => document.activeElement.closest('th')?.dataset.sort || null"
    page.focus("#runs-table thead input[type=checkbox]")
    page.keyboard.press("Tab")
    assert page.evaluate(focused_sort) == "run_id"
    page.keyboard.press("Enter")
    page.wait_for_selector("#runs-table th[data-sort='run_id'][aria-sort='ascending'] .arrow")
    page.wait_for_selector(READY)
    ids = page.eval_on_selector_all("#runs-table tbody tr", "rows => rows.map((r) => r.dataset.runId)")
    assert ids == sorted(ids) and len(ids) > 5
    assert page.evaluate(focused_sort) == "run_id"  # the header keeps the focus through the redraw
    page.keyboard.press("Tab")
    assert page.evaluate(focused_sort) == "status"
    page.keyboard.press("Space")
    page.wait_for_selector("#runs-table th[data-sort='status'][aria-sort='ascending']")
    page.wait_for_selector(READY)
    ids = page.eval_on_selector_all("#runs-table tbody tr", "rows => rows.map((r) => r.dataset.runId)")
    by_status = page.request.get(f"{live_server.url}/api/runs", params={"experiment": "mnist", "sort": "status",
                                                                        "order": "asc"}).json()["runs"]
    assert ids == [r["run_id"] for r in by_status] and len({r["status"] for r in by_status}) > 1
    assert "sort=status" in page.url
    page.keyboard.press("Enter")  # again: the other order
    page.wait_for_selector("#runs-table th[data-sort='status'][aria-sort='descending']")
    assert page.locator("#runs-table th[data-sort='run_id']").get_attribute("aria-sort") == "none"
