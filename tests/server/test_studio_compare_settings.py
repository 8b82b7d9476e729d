"""Issue 12, the rest of Charts: compare's charts take the run page's settings (smoothing, log
scale, x axis, outlier clipping) for every chart and per chart, open full screen, and keep the view
in the URL; the run page has a metric picker; the run page carries its run's record. Real Chromium
(Playwright) against a real server on 127.0.0.1; what is checked is read from plotly's own state of
the drawn charts (`.data`, `._fullLayout`)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from studio_fixtures import LiveServer, add_run, screenshot

import runlab
from runlab.core.status import RunStatus

pytestmark = pytest.mark.slow

READY = "body[data-ready='1']"
T0 = 1_767_000_000.0
N = 60
MAIN = "#compare-main"
ACC = ".compare-extra[data-metric='acc']"


def loss_of(i: int) -> list[float]:
    values = [1.5 * 0.95 ** s + 0.05 * i + 0.02 * ((s * 7) % 5) for s in range(N)]
    if i == 2:
        values[30] = 1000.0  # a spike: clipping leaves it out of the view
    return values


def acc_of(i: int) -> list[float]:
    return [0.5 + 0.005 * s + 0.01 * i for s in range(N)]


def ema(values: list[float], weight: float) -> list[float]:
    out, acc = [], 0.0
    for n, v in enumerate(values, start=1):
        acc = acc * weight + (1 - weight) * v
        out.append(acc / (1 - weight ** n))
    return out


@pytest.fixture
def compared(ws: runlab.Workspace) -> list[str]:
    """Three runs with loss (one with a spike) and acc; one's display name holds markup."""
    ids = []
    for i in range(3):
        add_run(ws.folder, "cmp", f"c{i}", created_at=T0 + 100 * i, display_name="<b>x</b>" if i == 1 else f"run {i}",
                metrics={"loss": loss_of(i), "acc": acc_of(i)})
        ids.append(f"c{i}")
    return ids


def compare_url(server: LiveServer, query: str = "") -> str:
    return f"{server.url}/compare?runs=c0,c1,c2&metric=loss&metric=acc{'&' + query if query else ''}"


def open_page(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_selector(READY)


def open_compare(page: Any, url: str) -> None:
    open_page(page, url)
    page.wait_for_selector(f"{ACC} .js-plotly-plot", state="attached")
    page.wait_for_selector(READY)


def traces(page: Any, card: str) -> list[dict[str, Any]]:
    return page.evaluate("""(sel) => document.querySelector(sel + ' .js-plotly-plot').data.map(t => ({
        meta: t.meta || null, y: Array.from(t.y), x: Array.from(t.x), opacity: t.opacity === undefined ? 1 : t.opacity }))""", card)


def axis(page: Any, card: str, which: str = "yaxis") -> dict[str, Any]:
    return page.evaluate("""([sel, which]) => { const a = document.querySelector(sel + ' .js-plotly-plot')._fullLayout[which];
        return { type: a.type, range: Array.from(a.range) }; }""", [card, which])


def drawn(page: Any, card: str, **data: str) -> None:
    attrs = "".join(f"[data-{k}='{v}']" for k, v in data.items())
    page.wait_for_selector(f"{card}{attrs}", state="attached")
    page.wait_for_selector(READY)


def query_of(page: Any) -> dict[str, list[str]]:
    return parse_qs(urlparse(page.url).query, keep_blank_values=True)


def mains(rows: list[dict[str, Any]]) -> dict[str, list[float]]:
    return {t["meta"]: t["y"] for t in rows if t["meta"]}


# -- compare: the settings ----------------------------------------------------------------------


def test_compare_smoothing_for_every_chart_and_for_one(compared: list[str], live_server: LiveServer, page: Any) -> None:
    open_compare(page, compare_url(live_server))
    assert len(traces(page, MAIN)) == 3 and len(traces(page, ACC)) == 3
    page.locator("#compare-smooth").fill("0.8")
    drawn(page, MAIN, smooth="0.8")
    drawn(page, ACC, smooth="0.8")
    main = traces(page, MAIN)
    assert len(main) == 6  # each run's raw line, faint, and its moving average
    assert sorted(t["opacity"] for t in main if not t["meta"]) == [0.25] * 3
    assert mains(main)["c0"] == pytest.approx(ema(loss_of(0), 0.8))
    assert mains(traces(page, ACC))["c1"] == pytest.approx(ema(acc_of(1), 0.8))
    assert page.locator("#compare-smooth-value").inner_text() == "0.80"
    # one chart's own: acc unsmoothed, loss keeps the page's
    page.click(f"{ACC} .c-settings")
    assert page.locator(f"{ACC} .c-smooth").input_value() == "0.8"  # it starts from the page's
    page.locator(f"{ACC} .c-smooth").fill("0")
    drawn(page, ACC, smooth="0")
    assert mains(traces(page, ACC))["c2"] == pytest.approx(acc_of(2)) and len(traces(page, ACC)) == 3
    assert len(traces(page, MAIN)) == 6
    assert json.loads(query_of(page)["charts"][0]) == {"acc": {"smooth": 0}}
    assert "own-settings" in page.get_attribute(ACC, "class")
    # the page's setting again: every chart takes it, their own values of it go
    page.locator("#compare-smooth").fill("0.5")
    drawn(page, ACC, smooth="0.5")
    assert "charts" not in query_of(page)
    screenshot(page, "compare-settings", full_page=True)
    assert page.locator(f"{ACC} .c-smooth").input_value() == "0.5"


def test_compare_log_scale_x_axis_and_clipping_change_the_drawn_charts(compared: list[str], live_server: LiveServer,
                                                                       page: Any) -> None:
    open_compare(page, compare_url(live_server))
    assert axis(page, MAIN)["range"][1] > 900  # the spike sets the axis
    # clipping, the first chart only
    page.click(f"{MAIN} .c-settings")
    page.check(f"{MAIN} .c-clip")
    drawn(page, MAIN, clip="1")
    lo, hi = axis(page, MAIN)["range"]
    assert -0.3 < lo < 0.2 and 1.5 < hi < 5  # the values, not the spike
    assert max(mains(traces(page, MAIN))["c2"]) == 1000.0  # left out of the view, not out of the data
    assert page.get_attribute(ACC, "data-clip") == "0"
    # log scale, acc only
    page.click(f"{ACC} .c-settings")
    page.check(f"{ACC} .c-log")
    drawn(page, ACC, log="1")
    assert axis(page, ACC)["type"] == "log" and axis(page, MAIN)["type"] == "linear"
    # the x axis for every chart: wall time, then relative time
    page.select_option("#compare-x", "wall")
    drawn(page, MAIN, x="wall")
    drawn(page, ACC, x="wall")
    assert axis(page, MAIN, "xaxis")["type"] == "date" and axis(page, ACC, "xaxis")["type"] == "date"
    assert page.locator(f"{ACC} .c-x").input_value() == "wall"
    page.select_option(f"{ACC} .c-x", "relative")  # one chart's own x axis
    drawn(page, ACC, x="relative")
    assert axis(page, ACC, "xaxis")["type"] == "linear" and axis(page, MAIN, "xaxis")["type"] == "date"
    acc = {t["meta"]: t["x"] for t in traces(page, ACC) if t["meta"]}
    assert all(xs[0] < 5 for xs in acc.values())  # seconds since each run started: the runs start together
    assert json.loads(query_of(page)["charts"][0]) == {"loss": {"clip": True}, "acc": {"log": True, "x": "relative"}}
    assert query_of(page)["x"] == ["wall"]


def test_a_compare_setting_redraws_from_the_series_already_read(compared: list[str], live_server: LiveServer,
                                                                page: Any) -> None:
    open_compare(page, compare_url(live_server))
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/api/" in r.url else None)
    page.check("#compare-log")
    drawn(page, ACC, log="1")
    page.locator("#compare-smooth").fill("0.3")
    drawn(page, MAIN, smooth="0.3")
    assert axis(page, MAIN)["type"] == "log"
    assert asked == []  # no request: the curves were read once


def test_a_compare_link_reproduces_the_view_after_reload(compared: list[str], live_server: LiveServer, page: Any) -> None:
    open_compare(page, compare_url(live_server))
    page.locator("#compare-smooth").fill("0.6")
    page.check("#compare-clip")
    page.select_option("#compare-x", "relative")
    page.click(f"{ACC} .c-settings")
    page.check(f"{ACC} .c-log")
    page.uncheck(f"{ACC} .c-clip")
    drawn(page, ACC, log="1", clip="0", smooth="0.6", x="relative")
    page.click(f"{ACC} .c-full")
    link = page.url
    page.goto("about:blank")
    open_compare(page, link)  # a link, opened afresh
    drawn(page, MAIN, smooth="0.6", clip="1", x="relative", log="0")
    drawn(page, ACC, smooth="0.6", clip="0", x="relative", log="1")
    assert page.locator("#compare-smooth").input_value() == "0.6"
    assert page.is_checked("#compare-clip") and not page.is_checked("#compare-log")
    assert page.locator("#compare-x").input_value() == "relative"
    assert page.locator(f"{ACC} .chart-controls").is_visible()  # its own settings show
    screenshot(page, "compare-settings-full-screen")
    assert page.is_checked(f"{ACC} .c-log") and not page.is_checked(f"{ACC} .c-clip")
    assert axis(page, ACC)["type"] == "log" and axis(page, MAIN)["type"] == "linear"
    assert len(traces(page, MAIN)) == 6 and axis(page, MAIN)["range"][1] < 5
    assert "fullscreen" in page.get_attribute(ACC, "class")
    page.keyboard.press("Escape")
    assert "fullscreen" not in page.get_attribute(ACC, "class")


def test_compare_full_screen_opens_and_esc_closes_it(compared: list[str], live_server: LiveServer, page: Any) -> None:
    open_compare(page, compare_url(live_server))
    small = page.evaluate(f"() => document.querySelector(\"{ACC} .js-plotly-plot\")._fullLayout.height")
    page.click(f"{ACC} .c-full")
    assert "fullscreen" in page.get_attribute(ACC, "class")
    assert page.get_attribute(f"{ACC} .c-full", "aria-pressed") == "true"
    assert query_of(page)["full"] == ["acc"]
    page.wait_for_function(f"() => document.querySelector(\"{ACC} .js-plotly-plot\")._fullLayout.height > {small + 200}")
    page.keyboard.press("Escape")
    assert "fullscreen" not in page.get_attribute(ACC, "class")
    assert "full" not in query_of(page)
    page.wait_for_function(f"() => document.querySelector(\"{ACC} .js-plotly-plot\")._fullLayout.height < {small + 50}")
    # the first chart, and its button closes it again
    page.click(f"{MAIN} .c-full")
    assert "fullscreen" in page.get_attribute(MAIN, "class") and query_of(page)["full"] == ["loss"]
    page.click(f"{MAIN} .c-full")
    assert "fullscreen" not in page.get_attribute(MAIN, "class")
    # a chart that goes (its metric unticked) takes its full screen with it
    page.click(f"{ACC} .c-full")
    page.evaluate("document.querySelector(\"#metric-picks input[value='acc']\").click()")  # under the full screen's shade
    page.wait_for_selector(ACC, state="detached")
    assert "full" not in query_of(page)
    assert not page.evaluate("document.body.classList.contains('chart-fullscreen')")


def test_hand_edited_compare_links_are_read_safely(ws: runlab.Workspace, compared: list[str], live_server: LiveServer,
                                                  page: Any) -> None:
    bad = 'charts={"acc":{"smooth":"9","log":"yes","x":"<b>","clip":0},"loss":7,"__proto__":{"log":true}}'
    open_compare(page, compare_url(live_server, f"smooth=-3&x=nope&full=no-such-chart&{bad}"))
    drawn(page, ACC, smooth="0.99", log="1", x="step", clip="0")  # clamped, kept to known values
    drawn(page, MAIN, smooth="0", log="0", x="step")
    assert not page.evaluate("document.body.classList.contains('chart-fullscreen')")
    open_compare(page, compare_url(live_server, "charts=%7Bnot json"))
    drawn(page, MAIN, smooth="0", log="0")
    # metrics named like an object's own keys are metrics like any other
    for i in range(2):
        add_run(ws.folder, "odd", f"odd{i}", metrics={"constructor": [1.0, 2.0, 3.0], "__proto__": [3.0, 2.0, 1.0]})
    open_page(page, f"{live_server.url}/compare?runs=odd0,odd1&metric=constructor&metric=__proto__")
    odd = ".compare-extra[data-metric='__proto__']"
    page.wait_for_selector(f"{odd} .js-plotly-plot")
    assert "own-settings" not in page.get_attribute(MAIN, "class") and "own-settings" not in page.get_attribute(odd, "class")
    page.click(f"{odd} .c-settings")
    page.check(f"{odd} .c-log")
    drawn(page, odd, log="1")
    assert json.loads(query_of(page)["charts"][0]) == {"__proto__": {"log": True}}
    page.reload()
    page.wait_for_selector(f"{odd}[data-log='1'] .js-plotly-plot")
    drawn(page, MAIN, log="0")


def test_markup_in_names_stays_text_in_compare_cards_full_screen_and_the_picker(ws: runlab.Workspace,
                                                                               live_server: LiveServer, page: Any) -> None:
    names = ["<b>x</b>", '<a href="http://127.0.0.1:9/evil">click</a>']
    for i, name in enumerate(names):
        add_run(ws.folder, "markup", f"m{i}", display_name=name, metrics={"<i>loss</i>": [1.0, 0.5, 0.2], "acc": [0.1, 0.2, 0.3]})
    open_page(page, f"{live_server.url}/compare?runs=m0,m1&metric=acc&metric=%3Ci%3Eloss%3C/i%3E")
    extra = ".compare-extra[data-metric='<i>loss</i>']"
    page.wait_for_selector(f"{extra} .js-plotly-plot")
    assert page.locator(f"{extra} .chart-head h2").inner_text() == "<i>loss</i>"
    page.click(f"{extra} .c-full")
    assert "fullscreen" in page.get_attribute(extra, "class")
    legend = page.locator(f"{extra} .legendtext")
    assert sorted(legend.nth(i).text_content() for i in range(2)) == sorted(names)
    page.click(f"{extra} .c-settings")
    page.locator(f"{extra} .c-smooth").fill("0.5")
    drawn(page, extra, smooth="0.5")
    assert page.locator(f"{extra} .ytitle").text_content() == "<i>loss</i>"
    assert page.locator(f"{extra} i, {extra} b, {extra} svg a, {MAIN} b, {MAIN} svg a").count() == 0
    assert json.loads(query_of(page)["charts"][0]) == {"<i>loss</i>": {"smooth": 0.5}}
    # the run page's picker lists the metric by its name, as written
    open_page(page, f"{live_server.url}/runs/m0#metrics")
    page.wait_for_selector(".chart-card[data-points]")
    page.click("#chart-picker summary")
    label = page.locator("#chart-picker-list label[data-metric='<i>loss</i>']")
    assert label.inner_text() == "<i>loss</i>"
    assert page.locator("#chart-picker i, #chart-picker b, .chart-card h2 i").count() == 0


# -- the run page: the metric picker ----------------------------------------------------------


@pytest.fixture
def picked(ws: runlab.Workspace) -> str:
    metrics = {"loss": loss_of(0), "val/loss": loss_of(1), "train/accuracy": acc_of(0), "spiky": loss_of(2),
               "sys/cpu_percent": [10.0 + s % 9 for s in range(N)]}
    return add_run(ws.folder, "picker", "picked_run", metrics=metrics, created_at=T0)


def run_url(server: LiveServer, query: str = "") -> str:
    return f"{server.url}/runs/picked_run{'?' + query if query else ''}#metrics"


def shown_charts(page: Any) -> list[str]:
    return sorted(page.eval_on_selector_all(".chart-card", "els => els.filter(e => e.offsetParent !== null).map(e => e.dataset.metric)"))


ALL = sorted(["loss", "val/loss", "train/accuracy", "spiky", "sys/cpu_percent"])


def test_the_metric_picker_hides_and_shows_charts_and_the_url_keeps_it(picked: str, live_server: LiveServer,
                                                                       page: Any) -> None:
    open_page(page, run_url(live_server))
    page.wait_for_selector(".chart-card[data-metric='spiky'][data-points]", state="attached")
    assert shown_charts(page) == ALL
    page.click("#chart-picker summary")
    labels = page.eval_on_selector_all("#chart-picker-list label", "els => els.map(e => e.dataset.metric)")
    assert sorted(labels) == ALL  # every chart of the run, the sys/ ones too
    assert page.locator("#chart-picker-list input:checked").count() == 5
    assert page.locator("#chart-picker-count").inner_text() == "(5)"
    page.uncheck("#chart-picker-list input[value='spiky']")
    page.uncheck("#chart-picker-list input[value='sys/cpu_percent']")
    assert shown_charts(page) == sorted(["loss", "val/loss", "train/accuracy"])
    assert page.locator("#system-section").is_hidden()
    assert page.locator("#chart-picker-count").inner_text() == "(3 of 5)"
    assert sorted(query_of(page)["metric"]) == sorted(["loss", "val/loss", "train/accuracy"])
    page.reload()
    page.wait_for_selector(READY)
    assert shown_charts(page) == sorted(["loss", "val/loss", "train/accuracy"])
    page.click("#chart-picker summary")
    assert not page.is_checked("#chart-picker-list input[value='spiky']")
    assert page.is_checked("#chart-picker-list input[value='loss']")
    page.check("#chart-picker-list input[value='spiky']")
    assert "spiky" in shown_charts(page)
    # the × of a chart and the picker are one list
    page.keyboard.press("Escape")
    page.click(".chart-card[data-metric='loss'] .c-hide")
    page.click("#chart-picker summary")
    assert not page.is_checked("#chart-picker-list input[value='loss']")
    # hide all, then show one: none is not all
    page.click("#chart-picker-none")
    assert shown_charts(page) == []
    assert query_of(page)["metric"] == [""]
    assert page.locator("#chart-note").inner_text() == "no chart matches"
    page.reload()
    page.wait_for_selector(READY)
    page.wait_for_selector(".chart-card[data-metric='spiky']", state="attached")
    assert shown_charts(page) == []
    page.click("#chart-picker summary")
    page.check("#chart-picker-list input[value='val/loss']")
    assert shown_charts(page) == ["val/loss"]
    page.click("#chart-picker-all")
    assert shown_charts(page) == ALL
    assert "metric" not in query_of(page)
    page.wait_for_selector(".chart-card[data-metric='val/loss'] .js-plotly-plot")


def test_the_metric_picker_filters_its_list_and_closes_on_esc_and_outside_clicks(picked: str, live_server: LiveServer,
                                                                                 page: Any) -> None:
    open_page(page, run_url(live_server))
    page.wait_for_selector(".chart-card[data-points]", state="attached")
    page.click("#chart-picker summary")
    assert page.evaluate("document.getElementById('chart-picker').open")
    page.wait_for_function("document.activeElement.id === 'chart-picker-filter'")  # typing filters at once
    page.keyboard.type("LOSS")
    screenshot(page, "run-metric-picker")
    visible = page.eval_on_selector_all("#chart-picker-list label", "els => els.filter(e => !e.hidden).map(e => e.dataset.metric)")
    assert sorted(visible) == ["loss", "val/loss"]
    assert shown_charts(page) == ALL  # the filter narrows the list, not the charts
    page.keyboard.type("zzz")
    assert page.locator("#chart-picker-empty").is_visible()
    page.keyboard.press("Escape")
    assert not page.evaluate("document.getElementById('chart-picker').open")
    assert page.evaluate("document.activeElement.closest('summary') !== null")
    page.click("#chart-picker summary")
    assert page.evaluate("document.getElementById('chart-picker').open")
    page.click("h1")  # outside
    assert not page.evaluate("document.getElementById('chart-picker').open")
    # a chart hidden while it is full screen leaves full screen
    page.click(".chart-card[data-metric='loss'] .c-full")
    assert query_of(page)["full"] == ["loss"]
    page.evaluate("document.querySelector(\".chart-card[data-metric='loss'] .c-hide\").click()")
    assert "full" not in query_of(page)
    assert not page.evaluate("document.body.classList.contains('chart-fullscreen')")


# -- the run page carries its run's record -----------------------------------------------------


def test_the_run_page_reads_no_run_record_and_the_write_actions_use_the_page_s(
        picked: str, live_server: LiveServer, page: Any) -> None:
    reads: list[str] = []
    page.on("request", lambda r: reads.append(r.method) if urlparse(r.url).path == "/api/runs/picked_run" else None)
    open_page(page, f"{live_server.url}/runs/picked_run")
    page.wait_for_selector("#run-write[data-ready='1']")
    page.wait_for_selector("#metric-summary tr[data-metric='loss']")
    assert reads == []  # the page carries the run's record: run.js reads none, run_actions.js uses it
    assert page.locator("#run-archive").inner_text() == "Archive"
    assert page.locator("#edit-name").input_value() == ""
    # a write's answer redraws the page: the header, the Details card, the Tags card
    page.click("#run-edit-button")
    page.fill("#edit-name", "<b>renamed</b>")
    page.fill("#edit-description", "a description")
    page.click("#edit-save")
    page.wait_for_selector("#run-action-message:has-text('saved')")
    assert page.locator("#run-title").inner_text() == "<b>renamed</b>"
    assert page.locator("#details dd[data-field='Display name']").inner_text() == "<b>renamed</b>"
    assert page.locator("#details dd[data-field='Description']").inner_text() == "a description"
    assert page.locator("#details b, #run-title b").count() == 0
    page.fill("#tag-key", "stage")
    page.fill("#tag-value", "dev")
    page.click("#tag-add")
    page.wait_for_selector("#tags .tag[data-tag='stage']")
    assert page.locator("#edit-tags .tag-edit[data-tag='stage']").count() == 1
    page.click("#run-archive")
    page.wait_for_selector("#run-archive:has-text('Unarchive')")
    assert reads == ["PATCH", "PATCH"]  # the writes' answers, no read (archive is POST .../archive)


def test_a_live_runs_new_status_reaches_the_write_actions(ws: runlab.Workspace, live_server: LiveServer,
                                                          page: Any) -> None:
    add_run(ws.folder, "live", "live_run", status=RunStatus.RUNNING, metrics={"loss": [1.0, 0.9]})
    open_page(page, f"{live_server.url}/runs/live_run")
    page.wait_for_selector("#run-write[data-ready='1']")
    assert page.locator("#run-cancel").is_visible() and page.locator("#run-delete").is_disabled()
    page.click("#run-edit-button")
    page.fill("#edit-name", "typed, not saved")
    ws.folder.store.set_status("live_run", RunStatus.COMPLETED)
    page.wait_for_selector("#run-status [data-status='Completed']")
    page.wait_for_selector("#run-cancel", state="hidden")
    assert page.locator("#run-delete").is_enabled()
    assert page.locator("#edit-name").input_value() == "typed, not saved"  # what is being typed stays
