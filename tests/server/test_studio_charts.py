"""The studio's charts (issue 12, Charts): smoothing, log scale, the x axis by step or time, hover,
outlier clipping, full screen, the view in the URL, search and groups of many metrics, compare of
many runs, the dark theme and times with their zone. Real Chromium (Playwright) against a real
server on 127.0.0.1; what is checked is read from plotly's own state of the drawn chart."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs, unquote, urlparse

import pytest
from studio_fixtures import LiveServer, add_run

import runlab
from runlab.core.entities import MetricBatch

pytestmark = pytest.mark.slow

READY = "body[data-ready='1']"
T0 = 1_767_000_000.0  # created_at of the chart run: its points are logged at T0 + 1 + i


def open_page(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_selector(READY)


def card(name: str) -> str:
    return f".chart-card[data-metric='{name}']"


def trace(page: Any, name: str, index: int = 0) -> dict[str, Any]:
    return page.evaluate("""([sel, i]) => { const g = document.querySelector(sel + ' .js-plotly-plot');
        const t = g.data[i]; if (!t) return null;
        return { x: Array.from(t.x), y: Array.from(t.y), opacity: t.opacity === undefined ? 1 : t.opacity, n: g.data.length,
                 name: t.name, color: t.line.color }; }""", [card(name), index])


def axis(page: Any, name: str, which: str = "yaxis") -> dict[str, Any]:
    return page.evaluate("""([sel, which]) => { const a = document.querySelector(sel + ' .js-plotly-plot')._fullLayout[which];
        return { type: a.type, range: Array.from(a.range) }; }""", [card(name), which])


def ema(values: list[float], weight: float) -> list[float]:
    out, acc = [], 0.0
    for n, v in enumerate(values, start=1):
        acc = acc * weight + (1 - weight) * v
        out.append(acc / (1 - weight ** n))
    return out


LOSS = [2.0 * 0.97 ** s + 0.3 * ((s * 7) % 5) / 5 for s in range(120)]
SPIKY = [1.0 + 0.01 * ((s * 3) % 7) for s in range(120)]
SPIKY[60] = 1000.0


@pytest.fixture
def charted(ws: runlab.Workspace) -> runlab.Workspace:
    """One run with metrics of three prefixes (train/, val/, sys/), one without, and a spike."""
    metrics = {"loss": LOSS, "train/loss": LOSS, "train/accuracy": [0.5 + 0.004 * s for s in range(120)],
               "val/loss": [v * 1.1 for v in LOSS], "spiky": SPIKY, "sys/cpu_percent": [10.0 + s % 9 for s in range(120)]}
    add_run(ws.folder, "charts", "chart_run", metrics=metrics, created_at=T0, display_name="<b>x</b>")
    return ws


def url(server: LiveServer, query: str = "") -> str:
    return f"{server.url}/runs/chart_run{'?' + query if query else ''}#metrics"


def drawn(page: Any, name: str, **data: str) -> None:
    attrs = "".join(f"[data-{k}='{v}']" for k, v in data.items())
    page.wait_for_selector(f"{card(name)}[data-points]{attrs}", state="attached")


def query_of(page: Any) -> dict[str, list[str]]:
    return parse_qs(urlparse(page.url).query)


# -- the series API: times, and a window of times ----------------------------------------------


def test_series_come_with_their_times_and_a_time_window_is_read_at_full_resolution(ws: runlab.Workspace,
                                                                                  client: Any) -> None:
    n = 10_000
    add_run(ws.folder, "timed", "timed_api")
    times = [T0 + i * 0.25 for i in range(n)]
    ws.folder.store.append_metrics("timed_api", [MetricBatch(name="m", kind="scalar", steps=list(range(n)), times=times,
                                                             values=[float(i % 97) for i in range(n)])])
    whole = client.get("/api/runs/timed_api/metrics/m", params={"points": 400}).json()
    assert whole["downsampled"] and len(whole["times"]) == len(whole["steps"]) <= 400
    assert whole["times"] == [times[s] for s in whole["steps"]]  # each point's own time
    lo, hi = times[5_000], times[5_149]
    part = client.get("/api/runs/timed_api/metrics/m", params={"points": 400, "min_time": lo, "max_time": hi}).json()
    assert not part["downsampled"]
    assert part["steps"] == list(range(5_000, 5_150)) and part["times"] == times[5_000:5_150]
    assert part["values"] == [float(i % 97) for i in range(5_000, 5_150)]
    assert part["start"] == 5_000
    after = client.get("/api/runs/timed_api/metrics/m", params={"points": 100_000, "min_time": times[-3]}).json()
    assert after["steps"] == [n - 3, n - 2, n - 1]
    before = client.get("/api/runs/timed_api/metrics/m", params={"points": 100_000, "max_time": T0 - 1}).json()
    assert before["steps"] == [] and before["count"] == n
    both = client.get("/api/runs/timed_api/metrics/m",  # a step window and a time window together
                      params={"points": 100_000, "min_step": 5_100, "min_time": lo, "max_time": hi}).json()
    assert both["steps"] == list(range(5_100, 5_150))
    assert client.get("/api/runs/timed_api/metrics/m", params={"min_time": "soon"}).status_code == 422


# -- the run page -------------------------------------------------------------------------------


def test_smoothing_draws_the_moving_average_over_a_faint_raw_line(charted: runlab.Workspace, live_server: LiveServer,
                                                                  page: Any) -> None:
    open_page(page, url(live_server))
    drawn(page, "loss")
    before = trace(page, "loss")
    assert before["n"] == 1 and before["y"] == pytest.approx(LOSS)
    page.locator("#chart-smooth").fill("0.9")
    drawn(page, "loss", smooth="0.9")
    raw, smooth = trace(page, "loss", 0), trace(page, "loss", 1)
    assert raw["n"] == 2
    assert raw["y"] == pytest.approx(LOSS)  # the raw line stays, faint
    assert raw["opacity"] < 0.5 and smooth["opacity"] == 1
    assert smooth["y"] == pytest.approx(ema(LOSS, 0.9))
    assert smooth["y"] != pytest.approx(LOSS)
    assert smooth["x"] == raw["x"] == list(range(120))
    drawn(page, "val/loss", smooth="0.9")  # the page's setting: every chart takes it
    assert query_of(page)["smooth"] == ["0.9"]
    # one chart on its own: smoothing off for val/loss only
    page.click(f"{card('val/loss')} .c-settings")
    page.locator(f"{card('val/loss')} .c-smooth").fill("0")
    drawn(page, "val/loss", smooth="0")
    assert trace(page, "val/loss")["n"] == 1
    assert trace(page, "loss")["n"] == 2
    assert json.loads(query_of(page)["charts"][0]) == {"val/loss": {"smooth": 0}}


def test_log_scale_sets_the_axis_type_for_the_page_and_for_one_chart(charted: runlab.Workspace,
                                                                     live_server: LiveServer, page: Any) -> None:
    open_page(page, url(live_server))
    drawn(page, "loss")
    assert axis(page, "loss")["type"] == "linear"
    page.check("#chart-log")
    drawn(page, "loss", log="1")
    drawn(page, "train/loss", log="1")
    assert axis(page, "loss")["type"] == "log" and axis(page, "train/loss")["type"] == "log"
    lo, hi = axis(page, "loss")["range"]  # log10 units around the values
    assert lo < math.log10(min(LOSS)) < math.log10(max(LOSS)) < hi < 1
    page.click(f"{card('train/loss')} .c-settings")
    page.uncheck(f"{card('train/loss')} .c-log")
    drawn(page, "train/loss", log="0")
    assert axis(page, "train/loss")["type"] == "linear" and axis(page, "loss")["type"] == "log"


def test_x_axis_by_wall_time_and_relative_time(charted: runlab.Workspace, live_server: LiveServer, page: Any) -> None:
    open_page(page, url(live_server))
    drawn(page, "loss")
    assert trace(page, "loss")["x"][:3] == [0, 1, 2]
    page.select_option("#chart-x", "wall")
    drawn(page, "loss", x="wall")
    t = trace(page, "loss")
    assert axis(page, "loss", "xaxis")["type"] == "date"
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}", x) for x in t["x"])
    seconds = page.evaluate("xs => xs.map(Studio.fromPlotDate)", t["x"])  # the dates are the times logged
    assert seconds == pytest.approx([T0 + 1 + i for i in range(120)])
    title = page.locator(f"{card('loss')} .xtitle").text_content()
    assert title.startswith("wall time (") and page.evaluate("Studio.zoneName()") in title
    page.select_option("#chart-x", "relative")
    drawn(page, "loss", x="relative")
    started = page.request.get(f"{live_server.url}/api/runs/chart_run").json()["started_at"]
    assert trace(page, "loss")["x"] == pytest.approx([T0 + 1 + i - started for i in range(120)])  # seconds since the start


def test_a_zoom_on_a_time_axis_fetches_the_visible_times_at_full_resolution(ws: runlab.Workspace,
                                                                           live_server: LiveServer, page: Any) -> None:
    n = 20_000
    add_run(ws.folder, "big", "timed")
    times = [T0 + i * 0.5 for i in range(n)]
    ws.folder.store.append_metrics("timed", [MetricBatch(name="loss", kind="scalar", steps=list(range(n)), times=times,
                                                         values=[math.sin(i / 300) for i in range(n)])])
    open_page(page, f"{live_server.url}/runs/timed?x=wall#metrics")
    drawn(page, "loss", x="wall")
    assert int(page.get_attribute(card("loss"), "data-points")) <= 2000
    page.evaluate(f"""() => Plotly.relayout(document.querySelector("{card('loss')} .js-plotly-plot"),
        {{'xaxis.range[0]': Studio.plotDate({times[10_000]}), 'xaxis.range[1]': Studio.plotDate({times[10_299]})}})""")
    page.wait_for_selector(f"{card('loss')}[data-zoom]")
    page.wait_for_function(f"() => document.querySelector(\"{card('loss')}\").dataset.points === '300'")
    seconds = page.evaluate(f"() => document.querySelector(\"{card('loss')} .js-plotly-plot\").data[0].x.map(Studio.fromPlotDate)")
    assert seconds == pytest.approx(times[10_000:10_300])


def test_outlier_clipping_narrows_the_y_range_of_a_series_with_a_spike(charted: runlab.Workspace,
                                                                       live_server: LiveServer, page: Any) -> None:
    open_page(page, url(live_server))
    drawn(page, "spiky")
    assert axis(page, "spiky")["range"][1] > 900  # the spike sets the axis
    page.check("#chart-clip")
    drawn(page, "spiky", clip="1")
    lo, hi = axis(page, "spiky")["range"]
    assert 0.9 < lo < 1.0 and 1.06 < hi < 1.2  # the values, not the spike
    assert max(trace(page, "spiky")["y"]) == 1000.0  # clipped from the view, not from the data


def test_hover_shows_run_step_value_and_time_with_markup_as_text(charted: runlab.Workspace, live_server: LiveServer,
                                                                 page: Any) -> None:
    open_page(page, url(live_server))
    drawn(page, "loss")
    page.evaluate(f"""() => Plotly.Fx.hover(document.querySelector("{card('loss')} .js-plotly-plot"),
        [{{curveNumber: 0, pointNumber: 7}}])""")
    page.wait_for_selector(f"{card('loss')} .hoverlayer .hovertext")
    text = page.locator(f"{card('loss')} .hoverlayer .hovertext").text_content()
    zone = page.evaluate(f"Studio.zoneName({T0})")
    when = page.evaluate(f"Studio.fmtTime({T0 + 8})")
    assert "<b>x</b>" in text  # the run's display name, as written
    assert "step 7" in text
    value = re.search(r"value (-?[\d.]+(?:e[-+]?\d+)?)", text)
    assert value and float(value.group(1)) == pytest.approx(LOSS[7], rel=1e-3)
    assert f"{when} {zone}" in text
    assert page.locator(f"{card('loss')} svg b, {card('loss')} svg a").count() == 0
    # smoothed: the smoothed value and the raw one
    page.locator("#chart-smooth").fill("0.5")
    drawn(page, "loss", smooth="0.5")
    page.evaluate(f"""() => Plotly.Fx.hover(document.querySelector("{card('loss')} .js-plotly-plot"),
        [{{curveNumber: 1, pointNumber: 7}}])""")
    page.wait_for_function(f"() => (document.querySelector(\"{card('loss')} .hoverlayer .hovertext\") || {{}}).textContent?.includes('smoothed')")
    text = page.locator(f"{card('loss')} .hoverlayer .hovertext").text_content()
    assert "<b>x</b>" in text and "raw" in text and "step 7" in text


def test_full_screen_shows_one_chart_over_the_page_and_esc_closes_it(charted: runlab.Workspace,
                                                                    live_server: LiveServer, page: Any) -> None:
    open_page(page, url(live_server))
    drawn(page, "loss")
    small = page.evaluate(f"() => document.querySelector(\"{card('loss')} .js-plotly-plot\")._fullLayout.height")
    page.click(f"{card('loss')} .c-full")
    assert "fullscreen" in page.get_attribute(card("loss"), "class")
    assert query_of(page)["full"] == ["loss"]
    page.wait_for_function(f"() => document.querySelector(\"{card('loss')} .js-plotly-plot\")._fullLayout.height > {small + 200}")
    page.keyboard.press("Escape")
    assert "fullscreen" not in page.get_attribute(card("loss"), "class")
    assert "full" not in query_of(page)


def test_a_url_with_chart_state_reproduces_the_view_after_reload(charted: runlab.Workspace, live_server: LiveServer,
                                                                 page: Any) -> None:
    open_page(page, url(live_server))
    drawn(page, "loss")
    page.locator("#chart-smooth").fill("0.6")
    page.check("#chart-log")
    page.select_option("#chart-x", "relative")
    page.check("#chart-clip")
    page.click(f"{card('val/loss')} .c-settings")
    page.uncheck(f"{card('val/loss')} .c-log")
    page.click(f"{card('spiky')} .c-hide")
    drawn(page, "val/loss", log="0", smooth="0.6", x="relative", clip="1")
    link = page.url
    page.goto("about:blank")
    open_page(page, link)  # a link, opened afresh
    drawn(page, "loss", smooth="0.6", log="1", x="relative", clip="1")
    drawn(page, "val/loss", log="0", smooth="0.6")
    assert page.locator("#chart-smooth").input_value() == "0.6"
    assert page.is_checked("#chart-log") and page.is_checked("#chart-clip")
    assert page.locator("#chart-x").input_value() == "relative"
    assert not page.is_checked(f"{card('val/loss')} .c-log")
    assert trace(page, "loss")["n"] == 2 and axis(page, "loss")["type"] == "log"
    assert axis(page, "val/loss")["type"] == "linear"
    assert page.locator(card("spiky")).is_hidden() and page.locator(card("loss")).is_visible()
    assert "1 hidden" in page.locator("#chart-show-all").inner_text()
    page.click("#chart-show-all")
    assert page.locator(card("spiky")).is_visible()


def test_the_search_box_hides_charts_that_do_not_match(charted: runlab.Workspace, live_server: LiveServer,
                                                       page: Any) -> None:
    open_page(page, url(live_server))
    drawn(page, "loss")
    page.fill("#chart-search", "LOSS")
    page.wait_for_function("() => document.querySelector(\".chart-card[data-metric='spiky']\").hidden")
    visible = page.eval_on_selector_all(".chart-card", "els => els.filter(e => e.offsetParent !== null).map(e => e.dataset.metric)")
    assert sorted(visible) == ["loss", "train/loss", "val/loss"]
    assert page.locator("#system-section").is_hidden()  # no sys/ chart matches
    assert query_of(page)["q"] == ["LOSS"]
    page.reload()
    page.wait_for_selector(READY)
    assert page.locator("#chart-search").input_value() == "LOSS"
    assert page.locator(card("train/accuracy")).is_hidden()
    page.fill("#chart-search", "")
    page.wait_for_function("() => !document.querySelector(\".chart-card[data-metric='spiky']\").hidden")


def test_charts_are_grouped_by_prefix_and_a_collapsed_group_stays_collapsed(charted: runlab.Workspace,
                                                                            live_server: LiveServer, page: Any) -> None:
    open_page(page, url(live_server))
    drawn(page, "train/loss")
    groups = page.eval_on_selector_all(".chart-group", "els => els.map(e => e.dataset.group)")
    assert groups == ["train", "val"]
    assert page.locator(".chart-group[data-group='train'] .chart-card").count() == 2
    assert page.locator("#system-charts .chart-card[data-metric='sys/cpu_percent']").count() == 1
    assert page.locator("#charts .charts[data-group=''] .chart-card[data-metric='loss']").count() == 1
    page.click(".chart-group[data-group='train'] .group-head")
    assert page.locator(card("train/loss")).is_hidden()
    page.click("#system-section .group-head")
    assert page.locator(card("sys/cpu_percent")).is_hidden()
    page.reload()
    page.wait_for_selector(READY)
    drawn(page, "train/loss")
    assert page.get_attribute(".chart-group[data-group='train'] .group-head", "aria-expanded") == "false"
    assert page.locator(card("train/loss")).is_hidden() and page.locator(card("sys/cpu_percent")).is_hidden()
    assert page.locator(card("val/loss")).is_visible()
    page.click(".chart-group[data-group='train'] .group-head")  # open again: drawn at its size
    assert page.locator(card("train/loss")).is_visible()
    width = page.evaluate(f"() => document.querySelector(\"{card('train/loss')} .main-svg\").getBoundingClientRect().width")
    assert width > 300


def test_a_live_chart_keeps_its_settings_while_points_arrive(ws: runlab.Workspace, live_server: LiveServer,
                                                             page: Any) -> None:
    run = runlab.Experiment(ws, "live").start_logging()
    for step in range(5):
        run.log("loss", 1.0 / (step + 1))
    run.flush()
    open_page(page, f"{live_server.url}/runs/{run.id}?smooth=0.5&log=1#metrics")
    drawn(page, "loss", smooth="0.5")
    for step in range(5, 9):
        run.log("loss", 1.0 / (step + 1))
    run.flush()
    page.wait_for_function(f"() => document.querySelector(\"{card('loss')}\").dataset.points === '9'")
    raw, smooth = trace(page, "loss", 0), trace(page, "loss", 1)
    values = [1.0 / (s + 1) for s in range(9)]
    assert raw["y"] == pytest.approx(values) and smooth["y"] == pytest.approx(ema(values, 0.5))
    assert axis(page, "loss")["type"] == "log"
    run.complete()


def test_the_overview_renders_before_the_chart_library_runs(charted: runlab.Workspace, live_server: LiveServer,
                                                            page: Any, client: Any) -> None:
    html = client.get("/runs/chart_run").text
    assert '<script src="/vendor/plotly' not in html  # no blocking script: a preload, run when a chart is drawn
    href = re.search(r'<link rel="preload" id="plotly-src" href="([^"]+)" as="script">', html).group(1)
    response = client.get(href)
    assert response.status_code == 200 and "immutable" in response.headers["cache-control"]
    assert "max-age=31536000" in response.headers["cache-control"]
    held: list[Any] = []
    page.route("**/vendor/plotly*", lambda route: held.append(route))  # plotly.js does not arrive (yet)
    page.goto(f"{live_server.url}/runs/chart_run", wait_until="domcontentloaded")  # "load" waits for the preload
    page.wait_for_selector("#details dd[data-field='Display name']")
    page.wait_for_selector("#metric-summary tr[data-metric='loss']")
    assert page.locator("#details dd[data-field='Display name']").inner_text() == "<b>x</b>"
    assert page.evaluate("typeof window.Plotly") == "undefined" and held
    for route in held:
        route.continue_()
    page.unroute("**/vendor/plotly*")
    page.click("#tabs a[data-tab='metrics']")
    drawn(page, "loss")
    page.wait_for_selector(READY)
    assert trace(page, "loss")["y"] == pytest.approx(LOSS)


def test_the_overview_is_drawn_from_the_page_without_asking_the_api(charted: runlab.Workspace,
                                                                   live_server: LiveServer, page: Any,
                                                                   client: Any) -> None:
    """The run page carries the run's record as GET /api/runs/ID answers it: the overview needs no
    request, so it does not wait for the scripts to run and ask."""
    data = json.loads(re.search(r'<script id="page-data" type="application/json">(.*?)</script>',
                                client.get("/runs/chart_run").text, re.S).group(1))
    assert data["run"] == client.get("/api/runs/chart_run").json()
    asked: list[str] = []
    page.route(re.compile(r".*/api/runs/chart_run$"), lambda route: (asked.append(route.request.url), route.abort()))
    page.goto(f"{live_server.url}/runs/chart_run")
    page.wait_for_selector("#details dd[data-field='Display name']")
    assert page.locator("#details dd[data-field='Display name']").inner_text() == "<b>x</b>"
    assert asked == []


def test_the_run_page_carries_its_metric_list_and_asks_for_the_series_before_plotly_runs(
        charted: runlab.Workspace, live_server: LiveServer, page: Any, client: Any) -> None:
    """The page carries the metric list as GET /api/runs/ID/metrics answers it, so the charts' series
    are asked for as the script starts: while plotly.js has not arrived, every chart's series has been
    asked for, and the list never."""
    data = json.loads(re.search(r'<script id="page-data" type="application/json">(.*?)</script>',
                                client.get("/runs/chart_run").text, re.S).group(1))
    assert data["metrics"] == client.get("/api/runs/chart_run/metrics").json()
    asked: list[str] = []
    page.on("request", lambda r: asked.append(unquote(urlparse(r.url).path)))
    held: list[Any] = []
    page.route("**/vendor/plotly*", lambda route: held.append(route))
    page.goto(url(live_server), wait_until="commit")
    series = {f"/api/runs/chart_run/metrics/{name}" for name in ("loss", "train/loss", "train/accuracy", "val/loss",
                                                                   "spiky", "sys/cpu_percent")}
    page.wait_for_function("""(paths) => paths.every((p) => performance.getEntriesByType('resource')
        .some((e) => decodeURIComponent(new URL(e.name).pathname) === p && e.responseEnd > 0))""", arg=sorted(series))
    assert page.evaluate("typeof window.Plotly") == "undefined"
    assert series <= set(asked) and "/api/runs/chart_run/metrics" not in asked
    for route in held:
        route.continue_()
    page.unroute("**/vendor/plotly*")
    page.wait_for_selector(READY)
    drawn(page, "loss")
    assert trace(page, "loss")["y"] == pytest.approx(LOSS)
    assert "/api/runs/chart_run/metrics" not in asked


def test_charts_are_drawn_one_a_frame_in_page_order(charted: runlab.Workspace, live_server: LiveServer,
                                                    page: Any) -> None:
    """With every series in before plotly.js runs, the charts are drawn one per frame (the first shows
    before the next is drawn) from the top of the page down, whatever order the metrics were logged in
    (spiky, logged fifth, sits in the first group beside loss)."""
    page.add_init_script("""(() => { const log = (window.__draws = []); let frame = 0;
        const tick = () => { frame++; requestAnimationFrame(tick); }; requestAnimationFrame(tick);
        document.addEventListener('DOMContentLoaded', () => new MutationObserver((records) => records.forEach((r) => {
            if (r.attributeName === 'data-points' && !log.some((d) => d.name === r.target.dataset.metric))
              log.push({ name: r.target.dataset.metric, frame }); }))
          .observe(document.body, { subtree: true, attributes: true, attributeFilter: ['data-points'] })); })()""")
    held: list[Any] = []
    page.route("**/vendor/plotly*", lambda route: held.append(route))
    page.goto(url(live_server), wait_until="commit")
    page.wait_for_function("""() => ['loss', 'spiky', 'val%2Floss', 'sys%2Fcpu_percent'].every((n) =>
        performance.getEntriesByType('resource').some((e) => e.name.includes('/metrics/' + n + '?') && e.responseEnd > 0))""")
    page.wait_for_function("document.querySelectorAll('.chart-card').length === 6")
    for route in held:
        route.continue_()
    page.unroute("**/vendor/plotly*")
    page.wait_for_selector(READY)
    page.wait_for_function("window.__draws.length === 6")
    draws = page.evaluate("window.__draws")
    in_page = page.evaluate("[...document.querySelectorAll('#charts .chart-card, #system-charts .chart-card')]"
                            ".map((c) => c.dataset.metric)")
    assert [d["name"] for d in draws] == in_page
    assert in_page[:2] == ["loss", "spiky"]
    frames = [d["frame"] for d in draws]
    assert frames == sorted(frames) and len(set(frames)) == len(frames), draws


def test_the_overview_waits_for_none_of_the_deferred_scripts(charted: runlab.Workspace, live_server: LiveServer,
                                                             page: Any, client: Any) -> None:
    """evaluation.js, run_inputs.js and run_actions.js are deferred, after run.js: the overview is drawn
    while they have not arrived, and what they add comes once they do."""
    html = client.get("/runs/chart_run").text
    order = [m.group(1) for m in re.finditer(r'<script (?:defer )?src="/static/(\w+)\.js', html)]
    assert order == ["studio", "run", "run_inputs", "evaluation", "run_actions"]
    for name in ("run_inputs", "evaluation", "run_actions"):
        assert re.search(rf'<script defer src="/static/{name}\.js\?v=', html)
    held: list[Any] = []
    pattern = re.compile(r".*/static/(run_inputs|evaluation|run_actions)\.js.*")
    page.route(pattern, lambda route: held.append(route))
    page.goto(url(live_server), wait_until="commit")
    page.wait_for_selector("#details dd[data-field='Display name']", state="attached")
    page.wait_for_selector("#metric-summary tr[data-metric='loss']", state="attached")
    assert page.evaluate("[typeof window.RunInputs, typeof window.StudioEval]") == ["undefined", "undefined"]
    page.wait_for_function("() => document.querySelectorAll('.chart-card').length === 6")
    for route in held:
        route.continue_()
    page.unroute(pattern)
    page.wait_for_selector(READY)
    page.wait_for_selector("#run-write[data-ready='1']")  # run_actions.js started
    assert page.evaluate("typeof window.RunInputs") == "object"


def test_times_say_their_zone_as_an_offset_from_utc(browser: Any, charted: runlab.Workspace,
                                                    live_server: LiveServer) -> None:
    """Absolute times name their zone by its offset ("UTC+05:30"): unambiguous, and no Intl zone lookup
    on the way to the overview."""
    for zone, at_t0 in (("UTC", "UTC"), ("Asia/Kolkata", "UTC+05:30"), ("America/St_Johns", "UTC-03:30")):
        context = browser.new_context(timezone_id=zone)
        try:
            pg = context.new_page()
            pg.goto(f"{live_server.url}/runs/chart_run")
            pg.wait_for_selector("#details dd[data-field='Created'] time")
            assert pg.evaluate(f"Studio.zoneName({T0})") == at_t0
            created = pg.locator("#details dd[data-field='Created'] time").inner_text()
            assert created.endswith(f" {at_t0}"), created
        finally:
            context.close()


def test_a_logged_table_pages_through_all_its_rows_and_downloads_as_csv(ws: runlab.Workspace,
                                                                        live_server: LiveServer, page: Any,
                                                                        tmp_path: Any) -> None:
    run = runlab.Experiment(ws, "tables").start_logging()
    run.log_table("preds", {"i": list(range(250)), "label": [f"<b>{i}</b>, \"q\"" for i in range(250)]})
    png = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                        "1f15c4890000000d49444154789c6360f8cf00000301010018dd8db00000000049454e44ae426082")
    image_path = tmp_path / "sample.png"  # a 1x1 PNG
    image_path.write_bytes(png)
    run.log_image("sample", path=str(image_path))
    run.complete()
    open_page(page, f"{live_server.url}/runs/{run.id}#metrics")
    table = ".panel[data-metric='preds'] .row-table"
    page.wait_for_selector(table)
    assert page.get_attribute(table, "data-rows") == "250"
    assert page.locator(f"{table} tbody tr").count() == 100
    assert "rows 1–100 of 250" in page.locator(f"{table} .page-info").inner_text()
    page.click(f"{table} .page-next")
    page.click(f"{table} .page-next")
    assert page.locator(f"{table} tbody tr").count() == 50
    assert page.locator(f"{table} tbody tr >> nth=49 >> td >> nth=0").inner_text() == "249"
    assert page.locator(f"{table} tbody tr >> nth=49 >> td >> nth=1").inner_text() == '<b>249</b>, "q"'
    assert page.is_disabled(f"{table} .page-next")
    with page.expect_download() as info:
        page.click(f"{table} .table-csv")
    csv_text = Path(info.value.path()).read_text(encoding="utf-8")
    lines = csv_text.splitlines()
    assert lines[0] == "i,label" and len(lines) == 251
    assert lines[250] == '249,"<b>249</b>, ""q"""'
    figure = ".panel[data-metric='sample'] figure a"
    page.wait_for_selector(figure)
    page.click(figure)
    page.wait_for_selector(".image-view img")
    assert page.evaluate("() => document.querySelector('.image-view img').naturalWidth") == 1
    page.keyboard.press("Escape")
    assert page.locator(".image-view").count() == 0


# -- compare ------------------------------------------------------------------------------------


@pytest.fixture
def many(ws: runlab.Workspace) -> list[str]:
    """25 runs of different lengths, tagged by team, one with markup in its name."""
    ids = []
    for i in range(25):
        n = 10 + i * 3
        add_run(ws.folder, "many", f"r{i:02d}", created_at=T0 + i, tags={"team": ["a", "b", "c"][i % 3]},
                display_name="<b>bold</b>" if i == 3 else f"run {i}",
                metrics={"loss": [1 / (s + 1 + i) for s in range(n)], "acc": [s / n for s in range(n)]})
        ws.folder.store.add_properties(f"r{i:02d}", {"lr": str(0.1 / (i + 1))})
        ids.append(f"r{i:02d}")
    return ids


def compare_traces(page: Any, chart: str = "#compare-chart") -> list[dict[str, Any]]:
    return page.evaluate(f"""() => document.querySelector("{chart}").data.map(t => ({{ meta: t.meta, name: t.name,
        color: t.line.color, n: t.y.length, x: Array.from(t.x), opacity: t.opacity === undefined ? 1 : t.opacity }}))""")


def test_compare_25_runs_has_25_colours_and_every_length_on_one_axis(many: list[str], live_server: LiveServer,
                                                                     page: Any) -> None:
    open_page(page, f"{live_server.url}/compare?runs={','.join(many)}")
    traces = compare_traces(page)
    assert len(traces) == 25
    assert len({t["color"] for t in traces}) == 25
    assert sorted(t["n"] for t in traces) == [10 + i * 3 for i in range(25)]  # each as long as it is
    assert page.evaluate("() => document.getElementById('compare-chart')._fullLayout.showlegend") is True
    legend = page.locator("#compare-chart .legendtext")
    assert legend.count() == 25
    assert "<b>bold</b>" in [legend.nth(i).text_content() for i in range(25)]
    assert page.locator("#compare-chart .legend b, #compare-chart svg a").count() == 0


def test_compare_asks_for_its_series_before_plotly_runs(many: list[str], live_server: LiveServer, page: Any) -> None:
    """The compared metrics' series are asked for once the runs are known, while plotly.js (4.8 MB to
    run) has not arrived; the chart is drawn from that answer when it does."""
    held: list[Any] = []
    page.route("**/vendor/plotly*", lambda route: held.append(route))
    page.goto(f"{live_server.url}/compare?runs={','.join(many)}&metric=loss&metric=acc", wait_until="commit")
    page.wait_for_function("""() => ['loss', 'acc'].every((n) => performance.getEntriesByType('resource')
        .some((e) => e.name.includes('/api/series?') && e.name.includes('name=' + n) && e.responseEnd > 0))""")
    assert page.evaluate("typeof window.Plotly") == "undefined" and held
    for route in held:
        route.continue_()
    page.unroute("**/vendor/plotly*")
    page.wait_for_selector(READY)
    assert page.get_attribute("#compare-chart", "data-traces") == "25"
    assert page.evaluate("performance.getEntriesByType('resource').filter((e) => e.name.includes('/api/series?')).length") == 2


def test_compare_legend_hover_highlights_a_run(many: list[str], live_server: LiveServer, page: Any) -> None:
    open_page(page, f"{live_server.url}/compare?runs={','.join(many[:5])}")
    page.hover("#compare-chart .legend .traces >> nth=2")
    page.wait_for_function("() => document.getElementById('compare-chart').dataset.highlight === 'r02'")
    traces = compare_traces(page)
    assert [t["opacity"] for t in traces] == [0.15, 0.15, 1, 0.15, 0.15]
    page.mouse.move(5, 5)
    page.wait_for_function("() => !document.getElementById('compare-chart').dataset.highlight")
    assert {t["opacity"] for t in compare_traces(page)} == {1}


def test_compare_colours_runs_by_a_tag_and_draws_several_metrics(many: list[str], live_server: LiveServer,
                                                                 page: Any) -> None:
    open_page(page, f"{live_server.url}/compare?runs={','.join(many[:6])}")
    page.select_option("#colour-by", "tag:team")
    page.wait_for_selector(READY)
    traces = compare_traces(page)
    by_team: dict[str, set[str]] = {}
    for t in traces:
        by_team.setdefault(["a", "b", "c"][int(t["meta"][1:]) % 3], set()).add(t["color"])
    assert all(len(c) == 1 for c in by_team.values()) and len(set.union(*by_team.values())) == 3
    assert query_of(page)["colour"] == ["tag:team"]
    page.check("#metric-picks input[value='acc']")
    page.wait_for_selector(".compare-extra[data-metric='acc'] .js-plotly-plot")
    page.wait_for_selector(READY)
    assert len(compare_traces(page, ".compare-extra[data-metric='acc'] .chart")) == 6
    assert query_of(page)["metric"] == ["loss", "acc"]
    page.reload()
    page.wait_for_selector(".compare-extra[data-metric='acc'] .js-plotly-plot")
    assert page.locator("#colour-by").input_value() == "tag:team"


def test_compare_x_axis_by_relative_time_and_smoothing(many: list[str], live_server: LiveServer, page: Any) -> None:
    open_page(page, f"{live_server.url}/compare?runs={','.join(many[:3])}&x=relative&smooth=0.5")
    traces = compare_traces(page)
    mains = [t for t in traces if t["meta"]]  # smoothing draws the averages (the raw lines faint, not in the legend)
    assert [t["meta"] for t in mains] == ["r00", "r01", "r02"]
    raw = [t for t in traces if not t["meta"]]
    assert len(raw) == 3 and {t["opacity"] for t in raw} == {0.25}
    for i, t in enumerate(mains):  # seconds since each run started: runs started apart start together
        started = page.request.get(f"{live_server.url}/api/runs/r{i:02d}").json()["started_at"]
        assert t["x"][:3] == pytest.approx([T0 + i + 1 + s - started for s in range(3)])
        assert t["x"][0] < 5


def test_compare_parallel_coordinates_and_scatter_of_many_runs(many: list[str], live_server: LiveServer,
                                                               page: Any) -> None:
    open_page(page, f"{live_server.url}/compare?runs={','.join(many)}")
    page.locator("#many-panel").scroll_into_view_if_needed()  # drawn when it comes into view
    assert page.locator("#parcoords").is_hidden()  # parallel coordinates (WebGL) when asked for
    page.click("#parcoords-toggle")
    page.wait_for_selector("#parcoords.js-plotly-plot")
    assert query_of(page)["pc"] == ["1"]
    par = page.evaluate("() => { const t = document.querySelector('#parcoords').data[0];"
                        " return { type: t.type, labels: t.dimensions.map(d => d.label), n: t.dimensions[0].values.length }; }")
    assert par["type"] == "parcoords" and par["n"] == 25
    assert "lr" in par["labels"] and "loss" in par["labels"]
    page.select_option("#scatter-x", "prop:lr")
    page.select_option("#scatter-y", "metric:loss")
    page.wait_for_function("() => document.querySelector('#scatter').data?.[0]?.x.length === 25")
    xy = page.evaluate("() => { const t = document.querySelector('#scatter').data[0]; return [Array.from(t.x), Array.from(t.y), t.type]; }")
    assert xy[2] == "scatter"
    assert xy[0] == pytest.approx([0.1 / (i + 1) for i in range(25)])
    assert xy[1] == pytest.approx([1 / (10 + i * 3 + i) for i in range(25)])  # the last loss of each run


# -- theme and times ----------------------------------------------------------------------------


@pytest.fixture
def themed_page(browser: Any, request: Any) -> Iterator[Any]:
    scheme, zone = request.param
    context = browser.new_context(viewport={"width": 1440, "height": 900}, color_scheme=scheme, timezone_id=zone)
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield pg
    finally:
        context.close()
    assert errors == []


@pytest.mark.parametrize("themed_page", [("dark", "Asia/Tokyo")], indirect=True)
def test_dark_theme_follows_the_system_and_charts_match(charted: runlab.Workspace, live_server: LiveServer,
                                                        themed_page: Any) -> None:
    page = themed_page
    open_page(page, url(live_server))
    drawn(page, "loss")
    body = page.evaluate("getComputedStyle(document.body).backgroundColor")
    panel = page.evaluate("getComputedStyle(document.querySelector('.chart-card')).backgroundColor")
    paper = page.evaluate(f"() => document.querySelector(\"{card('loss')} .js-plotly-plot\")._fullLayout.paper_bgcolor")
    assert body == "rgb(13, 17, 23)" and panel == "rgb(22, 27, 34)"
    assert paper in ("#161b22", "rgb(22, 27, 34)")


@pytest.mark.parametrize("themed_page", [("light", "Asia/Tokyo")], indirect=True)
def test_times_show_their_zone_and_the_relative_time_on_hover(charted: runlab.Workspace, live_server: LiveServer,
                                                              themed_page: Any) -> None:
    page = themed_page
    open_page(page, f"{live_server.url}/runs/chart_run")
    created = page.locator("#details dd[data-field='Created'] time")
    # T0 is 2025-12-29 09:20:00 UTC: 18:20 in Tokyo (UTC+09:00, no daylight saving)
    assert created.inner_text() == "2025-12-29 18:20:00 UTC+09:00"
    assert re.fullmatch(r"\d+ (mo|y) ago", created.get_attribute("title"))  # T0 is months ago
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(244, 246, 249)"  # light: as before
