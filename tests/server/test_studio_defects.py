"""Defects of the studio found by using it as a demanding user would (issue 12), each checked in a
real browser (Debian's Chromium through Playwright) against a real server on 127.0.0.1."""

from __future__ import annotations

import io
from typing import Any

import pytest
from studio_fixtures import LiveServer, add_run

import runlab

pytestmark = pytest.mark.slow

READY = "body[data-ready='1']"


def open_page(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_selector(READY)


def test_api_docs_render_the_operations_of_openapi_3_1(populated: runlab.Workspace, live_server: LiveServer,
                                                      page: Any) -> None:
    spec = page.request.get(f"{live_server.url}/api/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    page.goto(f"{live_server.url}/api/docs")
    page.wait_for_selector(".opblock-summary-path")
    paths = page.eval_on_selector_all(".opblock-summary-path", "els => els.map(e => e.dataset.path || e.textContent)")
    assert "/api/runs/{run_id}" in paths and "/api/runs" in paths
    assert "Unable to render" not in page.locator("body").inner_text()
    # and an operation opens to its parameters
    page.locator(".opblock-summary-path[data-path='/api/runs/{run_id}']").first.click()
    page.wait_for_selector(".opblock.is-open .parameters-col_name")
    assert "run_id" in page.locator(".opblock.is-open .parameters").inner_text()


def test_no_page_makes_a_request_off_the_machine(populated: runlab.Workspace, live_server: LiveServer,
                                                 page: Any) -> None:
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    local = ("http://127.0.0.1:", "data:", "blob:", "about:")
    for path in ("/experiments", "/runs?experiment=mnist", "/runs/mnist_run_11#metrics",
                 "/compare?runs=mnist_run_00,mnist_run_01", "/environments", "/datastores", "/datasets", "/models"):
        open_page(page, live_server.url + path)
    page.goto(f"{live_server.url}/runs/mnist_run_11#metrics")
    page.wait_for_selector(".chart-card[data-metric='loss'] .modebar")
    page.hover(".chart-card[data-metric='loss'] .js-plotly-plot")
    titles = page.eval_on_selector_all(".modebar-btn", "els => els.map(e => e.dataset.title || '')")
    assert titles, "the chart has no mode bar"
    assert not [t for t in titles if any(word in t.lower() for word in ("share", "chart studio", "cloud", "plotly"))]
    assert page.locator("a[href*='plotly.com'], a[href*='plot.ly']").count() == 0
    page.goto(f"{live_server.url}/api/docs")
    page.wait_for_selector(".opblock-summary-path")
    page.wait_for_load_state("networkidle")
    assert requests, "no request was recorded"
    assert [url for url in requests if not url.startswith(local)] == []
    assert all(url.startswith(live_server.url) for url in requests if url.startswith("http"))


def test_eight_open_pages_of_live_runs_all_load_and_stay_live(ws: runlab.Workspace, live_server: LiveServer,
                                                              browser: Any) -> None:
    runs = [runlab.Experiment(ws, "live").start_logging(display_name=f"live {i}") for i in range(8)]
    for run in runs:
        run.log("loss", 1.0)
        run.log("loss", 0.5)
        run.upload_file("azureml-logs/70_driver_log.txt", io.BytesIO(b"starting\n"))
        run.flush()
    context = browser.new_context()
    try:
        pages = []
        for run in runs:  # each on its Logs tab, which used to hold two streams
            pg = context.new_page()
            pg.set_default_timeout(15_000)
            open_page(pg, f"{live_server.url}/runs/{run.id}#logs")
            pages.append(pg)
        for pg in pages:
            pg.wait_for_function("() => document.querySelector('#log-text').textContent.includes('starting')")
        ws.folder.artifacts.append_bytes(runs[-1].id, "azureml-logs/70_driver_log.txt", b"epoch 1 done\n")
        pages[-1].wait_for_function("() => document.querySelector('#log-text').textContent.includes('epoch 1 done')")
        pages[0].reload()  # and a page loads again while all are open
        pages[0].wait_for_selector(READY)
    finally:
        context.close()
        for run in runs:
            run.complete()


def test_a_hidden_tab_stops_polling_and_resumes_when_visible(ws: runlab.Workspace, live_server: LiveServer,
                                                             page: Any) -> None:
    run = runlab.Experiment(ws, "live").start_logging()
    run.upload_file("azureml-logs/70_driver_log.txt", io.BytesIO(b"starting\n"))
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    open_page(page, f"{live_server.url}/runs/{run.id}#logs")
    page.wait_for_function("() => document.querySelector('#log-text').textContent.includes('starting')")
    page.evaluate("""() => { Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
                             document.dispatchEvent(new Event('visibilitychange')); }""")
    page.wait_for_timeout(300)  # a poll that was in flight ends
    seen = len(requests)
    ws.folder.artifacts.append_bytes(run.id, "azureml-logs/70_driver_log.txt", b"while hidden\n")
    page.wait_for_timeout(2500)  # more than two poll intervals: a visible tab would have polled
    assert len(requests) == seen
    assert "while hidden" not in page.locator("#log-text").inner_text()
    page.evaluate("""() => { Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});
                             document.dispatchEvent(new Event('visibilitychange')); }""")
    page.wait_for_function("() => document.querySelector('#log-text').textContent.includes('while hidden')")
    run.complete()


def test_driver_log_box_has_a_fixed_height_line_numbers_search_and_follows_the_end(
        ws: runlab.Workspace, live_server: LiveServer, page: Any) -> None:
    run = runlab.Experiment(ws, "logs").start_logging()
    log = "azureml-logs/70_driver_log.txt"
    run.upload_file(log, io.BytesIO(b"".join(f"line {i}: loss {1 / i:.4f}\n".encode() for i in range(1, 3001))))
    open_page(page, f"{live_server.url}/runs/{run.id}#logs")
    page.wait_for_selector("#log-text > div[data-n='3000']")
    box = "() => { const b = document.getElementById('log-box'); return [b.clientHeight, b.scrollHeight, b.scrollTop]; }"
    height, scroll_height, top = page.evaluate(box)
    assert 200 < height < 1000 and scroll_height > 10 * height  # its own scroll, not a 54,000 px box
    assert page.evaluate("() => document.documentElement.scrollHeight") < 2000
    assert top + height >= scroll_height - 2  # at the end
    assert page.locator("#log-text > div").first.get_attribute("data-n") == "1"

    ws.folder.artifacts.append_bytes(run.id, log, b"".join(f"line {i}: more\n".encode() for i in range(3001, 3101)))
    page.wait_for_selector("#log-text > div[data-n='3100']")
    page.wait_for_function(f"() => {{ const [h, sh, t] = ({box})(); return t + h >= sh - 2; }}")  # followed
    assert page.evaluate(box)[0] == height

    page.uncheck("#log-follow")
    page.evaluate("() => { document.getElementById('log-box').scrollTop = 0; }")
    ws.folder.artifacts.append_bytes(run.id, log, b"line 3101: not followed\n")
    page.wait_for_selector("#log-text > div[data-n='3101']")
    assert page.evaluate(box)[2] == 0  # not following: the view stays where it was

    page.fill("#log-search", "line 1234:")
    page.wait_for_function("() => document.getElementById('log-search-count').textContent === '1 of 1'")
    hit = page.locator("#log-text > div.hit.current")
    assert hit.get_attribute("data-n") == "1234" and hit.is_visible()
    top = page.evaluate(box)[2]
    assert 0 < top < page.evaluate(box)[1] - height
    run.complete()


def test_log_range_reads_whole_lines_by_byte_offsets(ws: runlab.Workspace, client: Any) -> None:
    run = runlab.Experiment(ws, "logs").start_logging()
    log = "azureml-logs/70_driver_log.txt"
    lines = [f"line {i} é\n".encode() for i in range(1, 200_001)]  # ~2.6 MB, a two-byte character per line
    data = b"".join(lines)
    run.upload_file(log, io.BytesIO(data))
    url = f"/api/runs/{run.id}/logs/range"

    tail = client.get(url, params={"name": log, "offset": len(data) - 100_000, "length": 1_000_000}).json()
    assert tail["end"] == tail["size"] == len(data) and tail["text"].endswith("line 200000 é\n")
    first = tail["text"].split("\n")[0]
    assert tail["first_line"] == int(first.split()[1])  # numbered: the line after a cut one, whole
    assert data[:tail["start"]].count(b"\n") == tail["first_line"] - 1

    before = client.get(url, params={"name": log, "offset": tail["start"] - 50_000, "length": 50_000}).json()
    assert before["end"] == tail["start"]  # the page before ends where the tail starts, no line lost
    assert before["text"].split("\n")[-2] == f"line {tail['first_line'] - 1} é"

    run.upload_file("logs/partial.txt", io.BytesIO("one\ntwo é".encode()[:-1]))  # cut inside 'é'
    part = client.get(url, params={"name": "logs/partial.txt", "offset": 0, "length": 1000}).json()
    assert part["text"] == "one\ntwo " and part["end"] == len(b"one\ntwo ")
    ws.folder.artifacts.append_bytes(run.id, "logs/partial.txt", "é".encode()[1:] + b"!\n")
    rest = client.get(url, params={"name": "logs/partial.txt", "offset": part["end"], "exact": "true"}).json()
    assert rest["text"] == "é!\n"
    run.complete()


def test_zooming_a_downsampled_chart_fetches_the_visible_steps_at_full_resolution(
        ws: runlab.Workspace, live_server: LiveServer, page: Any) -> None:
    import numpy as np

    from runlab.core.entities import MetricBatch

    n = 1_000_000
    add_run(ws.folder, "big", "big_run")
    values = np.sin(np.arange(n) / 5000.0) + (np.arange(n) % 7) * 0.01
    ws.folder.store.append_metrics("big_run", [MetricBatch(name="loss", kind="scalar", steps=list(range(n)),
                                                           times=[1.0] * n, values=values.tolist())])
    open_page(page, f"{live_server.url}/runs/big_run#metrics")
    card = ".chart-card[data-metric='loss']"
    page.wait_for_selector(f"{card}[data-points]")
    coarse = int(page.get_attribute(card, "data-points"))
    assert coarse <= 2000
    page.evaluate(f"() => Plotly.relayout(document.querySelector(\"{card} .js-plotly-plot\"),"
                  " {'xaxis.range[0]': 500000, 'xaxis.range[1]': 500199})")
    page.wait_for_selector(f"{card}[data-zoom]")
    x, y = page.evaluate(f"() => {{ const d = document.querySelector(\"{card} .js-plotly-plot\").data[0];"
                         " return [Array.from(d.x), Array.from(d.y)]; }")
    assert x == list(range(500000, 500200))  # all 200 points of the visible steps
    assert y == pytest.approx(values[500000:500200].tolist())
    page.evaluate(f"() => Plotly.relayout(document.querySelector(\"{card} .js-plotly-plot\"), {{'xaxis.autorange': true}})")
    page.wait_for_function(f"() => !document.querySelector(\"{card}\").dataset.zoom")
    assert int(page.get_attribute(card, "data-points")) == coarse


def test_compare_shows_the_runs_that_exist_and_names_those_not_found(populated: runlab.Workspace,
                                                                     live_server: LiveServer, page: Any) -> None:
    open_page(page, f"{live_server.url}/compare?runs=mnist_run_00,mnist_run_01,nope")
    assert page.locator("#compare-chart").get_attribute("data-traces") == "2"
    assert page.locator("#compare-table th.run-col").count() == 2
    assert "nope" in page.locator("#compare-missing").inner_text()
    assert "not found" in page.locator("#compare-missing").inner_text().lower()


MARKUP_NAMES = ["<b>x</b>", '<a href="http://127.0.0.1:9/evil">click</a>']


def test_names_with_markup_are_shown_as_written_in_charts(ws: runlab.Workspace, live_server: LiveServer,
                                                          page: Any) -> None:
    for i, name in enumerate(MARKUP_NAMES):
        add_run(ws.folder, "markup", f"markup_{i}", display_name=name, metrics={"<i>loss</i>": [1.0, 0.5, 0.2]})
    open_page(page, f"{live_server.url}/compare?runs=markup_0,markup_1")
    legend = page.locator("#compare-chart .legendtext")
    assert legend.count() == 2
    assert sorted(legend.nth(i).text_content() for i in range(2)) == sorted(MARKUP_NAMES)
    assert page.locator("#compare-chart .legend b, #compare-chart .legend a, #compare-chart svg a").count() == 0
    assert page.locator("#compare-chart .ytitle").text_content() == "<i>loss</i>"
    open_page(page, f"{live_server.url}/runs/markup_0#metrics")
    page.wait_for_selector(".chart-card[data-points]")
    assert page.locator(".chart-card svg a, .chart-card svg b").count() == 0


@pytest.mark.parametrize("path", ["/runs/" + "x" * 400, "/experiments/" + "z" * 300, "/runs/no-such-run",
                                  "/datasets/" + "y" * 400, "/no/such/page"])
def test_a_page_with_a_bad_id_is_the_studios_html_not_found_page(populated: runlab.Workspace,
                                                                 live_server: LiveServer, page: Any, path: str) -> None:
    response = page.goto(live_server.url + path)
    assert response.status == 404
    assert response.headers["content-type"].startswith("text/html")
    assert page.locator("body[data-page='not_found'] .empty h2").count() == 1
    api = page.request.get(f"{live_server.url}/api/runs/{'x' * 400}")  # the API still answers JSON
    assert api.status == 422 and api.json()["error"]["type"] == "ValidationError"
