"""The runs table and the write actions in Chromium: the query box, a bad query's message, the column
picker, bulk select and compare, keyboard shortcuts, the CSV export, editing tags and cancelling
from the run page, and lists that refresh when a run ends."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import pytest
from studio_fixtures import LiveServer, add_run, screenshot

import runlab
from runlab.core.status import RunStatus

pytestmark = pytest.mark.slow

READY = "body[data-ready='1']"


def open_page(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_selector(READY)


def row_ids(page: Any) -> list[str]:
    return page.eval_on_selector_all("#runs-table tbody tr", "rows => rows.map(r => r.dataset.runId)")


def wait_rows(page: Any, n: int) -> None:
    page.wait_for_function(f"() => document.querySelectorAll('#runs-table tbody tr').length === {n} && "
                           "document.body.dataset.ready === '1'")


def test_query_box_filters_the_table(populated: runlab.Workspace, live_server: LiveServer, page: Any) -> None:
    open_page(page, f"{live_server.url}/runs?experiment=mnist")
    wait_rows(page, 12)
    page.fill("#query", 'tags.team = "vision" and tags.lr = "0.01" and status = "Completed"')
    page.press("#query", "Enter")
    wait_rows(page, 2)
    assert sorted(row_ids(page)) == ["mnist_run_01", "mnist_run_07"]
    assert "q=" in page.url  # the view is in the URL
    assert page.locator("#query-error").is_hidden()
    # the same filter after a reload
    page.reload()
    page.wait_for_selector(READY)
    wait_rows(page, 2)
    assert page.input_value("#query").startswith("tags.team")
    page.click("#query-clear")
    wait_rows(page, 12)


def test_a_bad_query_shows_its_message(populated: runlab.Workspace, live_server: LiveServer, page: Any) -> None:
    open_page(page, f"{live_server.url}/runs?experiment=mnist")
    wait_rows(page, 12)
    page.fill("#query", 'metrics.loss < 0.5 or 1=1')
    page.press("#query", "Enter")
    page.wait_for_selector("#query-error:not([hidden])")
    text = page.inner_text("#query-error")
    assert "joined by AND only" in text and "position 19" in text and "'or'" in text
    caret = page.inner_text("#query-error pre")
    assert caret.splitlines()[1] == " " * 19 + "^^"
    assert page.get_attribute("#query", "aria-invalid") == "true"
    assert len(row_ids(page)) == 12  # the table stays as it was
    screenshot(page, "runs-bad-query")
    page.fill("#query", "metrics.loss < 100")
    page.press("#query", "Enter")
    page.wait_for_selector("#query-error[hidden]", state="attached")


def test_the_table_asks_for_its_rows_without_a_round_trip_for_the_columns(
        populated: runlab.Workspace, live_server: LiveServer, page: Any) -> None:
    """The page carries the column list, so the rows are the first request the table makes: a
    cold page of 100,000 runs waited for /api/runs-columns before it asked for a single row."""
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/api/runs" in r.url else None)
    open_page(page, f"{live_server.url}/runs?experiment=mnist")
    wait_rows(page, 12)
    assert not any("/api/runs-columns" in u for u in asked), asked
    assert "/api/runs?" in asked[0]
    # the defaults come from the embedded list: the metrics most runs have, loss first
    heads = page.eval_on_selector_all("#runs-table th[data-sort^='metric:']", "ths => ths.map(t => t.dataset.sort)")
    assert heads[0] == "metric:loss"
    assert "metric=loss" in asked[0]


def test_column_picker_adds_tag_and_property_columns_and_closes_on_esc(
        populated: runlab.Workspace, live_server: LiveServer, page: Any) -> None:
    open_page(page, f"{live_server.url}/runs?experiment=mnist")
    heads = page.eval_on_selector_all("#runs-table th[data-sort^='metric:']", "ths => ths.map(t => t.dataset.sort)")
    assert heads[0] == "metric:loss"  # the metrics most runs have, loss first
    page.click("#columns summary")
    assert page.locator("#columns").get_attribute("open") is not None
    page.check("#columns-body input[data-kind='tag'][value='lr']")
    page.wait_for_selector("#runs-table th[data-sort='tag:lr']")
    page.wait_for_selector(READY)
    cell = page.locator("#runs-table tr[data-run-id='mnist_run_01'] td[data-tag='lr']").inner_text()
    assert cell == "0.01"
    page.keyboard.press("Escape")
    page.wait_for_function("() => !document.getElementById('columns').open")
    # and on a click outside it
    page.click("#columns summary")
    page.wait_for_function("() => document.getElementById('columns').open")
    page.click("h1")
    page.wait_for_function("() => !document.getElementById('columns').open")
    # sort by the tag column
    page.click("#runs-table th[data-sort='tag:lr']")
    page.wait_for_selector("#runs-table th[data-sort='tag:lr'] .arrow")
    page.wait_for_selector(READY)
    values = page.eval_on_selector_all("#runs-table tbody td[data-tag='lr']", "cs => cs.map(c => c.textContent)")
    assert values == sorted(values)


def test_bulk_select_and_compare(populated: runlab.Workspace, live_server: LiveServer, page: Any) -> None:
    open_page(page, f"{live_server.url}/runs?experiment=mnist")
    page.check("#runs-table tr[data-run-id='mnist_run_02'] input[type=checkbox]")
    page.check("#runs-table tr[data-run-id='mnist_run_05'] input[type=checkbox]")
    assert page.is_visible("#bulk-bar") and page.inner_text("#bulk-count") == "2 selected"
    page.click("#compare-button")
    page.wait_for_url("**/compare?*")
    page.wait_for_selector(READY)
    assert "mnist_run_02" in page.url and "mnist_run_05" in page.url
    traces = page.evaluate("() => document.getElementById('compare-chart').data.map(t => t.meta)")
    assert sorted(traces) == ["mnist_run_02", "mnist_run_05"]


def test_keyboard_moves_selects_and_compares(populated: runlab.Workspace, live_server: LiveServer, page: Any) -> None:
    open_page(page, f"{live_server.url}/runs?experiment=mnist&sort=run_id&order=asc")
    page.click("h1")
    page.keyboard.press("j")
    page.keyboard.press("x")
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("k")
    page.keyboard.press("x")
    assert page.inner_text("#bulk-count") == "2 selected"
    ids = row_ids(page)
    assert page.eval_on_selector_all("#runs-table tbody tr.selected", "rs => rs.map(r => r.dataset.runId)") == ids[:2]
    page.keyboard.press("c")
    page.wait_for_url("**/compare?*")
    assert f"runs={ids[0]},{ids[1]}" in unquote(page.url)
    page.go_back()
    page.wait_for_selector(READY)
    page.click("h1")
    page.keyboard.press("j")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/runs/{ids[0]}")


def test_bulk_tag_archive_and_delete(populated: runlab.Workspace, live_server: LiveServer, page: Any) -> None:
    store = populated.folder.store
    open_page(page, f"{live_server.url}/runs?experiment=mnist&sort=run_id&order=asc")
    for run_id in ("mnist_run_00", "mnist_run_01"):
        page.check(f"#runs-table tr[data-run-id='{run_id}'] input[type=checkbox]")
    page.once("dialog", lambda d: d.accept("review=yes"))
    page.click("#bulk-tag")
    page.wait_for_function("() => document.getElementById('bulk-result').textContent.startsWith('tag: 2 done')")
    assert store.get_run("mnist_run_00").tags["review"] == "yes"
    page.click("#bulk-archive")
    wait_rows(page, 10)
    assert store.get_run("mnist_run_01").archived
    page.check("#show-archived")
    wait_rows(page, 12)
    page.once("dialog", lambda d: d.dismiss())  # a refused confirmation deletes nothing
    page.click("#bulk-delete")
    page.wait_for_timeout(300)
    store.get_run("mnist_run_00")
    page.once("dialog", lambda d: d.accept())
    page.click("#bulk-delete")
    wait_rows(page, 10)
    assert "mnist_run_00" not in row_ids(page)


def test_export_link_downloads_the_current_view(populated: runlab.Workspace, live_server: LiveServer, page: Any) -> None:
    open_page(page, f"{live_server.url}/runs?experiment=mnist")
    page.fill("#query", 'status = "Failed"')
    page.press("#query", "Enter")
    wait_rows(page, 1)
    href = page.get_attribute("#export-csv", "href")
    response = page.request.get(live_server.url + href)
    lines = response.text().strip().splitlines()
    assert lines[0].startswith("run_id,") and "metric.loss" in lines[0]
    assert len(lines) == 2 and lines[1].startswith("mnist_run_08,")


def test_edit_a_tag_from_the_run_page(populated: runlab.Workspace, live_server: LiveServer, page: Any) -> None:
    open_page(page, f"{live_server.url}/runs/mnist_run_03")
    page.wait_for_selector("#run-write[data-ready='1']")
    page.click("#run-edit-button")
    page.fill("#tag-key", "stage")
    page.fill("#tag-value", "prod")
    page.click("#tag-add")
    page.wait_for_selector("#edit-tags [data-tag='stage']")
    api = page.request.get(f"{live_server.url}/api/runs/mnist_run_03").json()
    assert api["tags"]["stage"] == "prod"
    page.click("#edit-tags [data-remove-tag='lr']")
    page.wait_for_function("() => !document.querySelector(\"#edit-tags [data-tag='lr']\")")
    assert "lr" not in page.request.get(f"{live_server.url}/api/runs/mnist_run_03").json()["tags"]
    page.fill("#edit-name", "renamed <b>run</b>")
    page.fill("#edit-description", "a better description")
    page.click("#edit-save")
    page.wait_for_function("() => document.getElementById('run-title').textContent === 'renamed <b>run</b>'")
    record = populated.folder.store.get_run("mnist_run_03")
    assert record.display_name == "renamed <b>run</b>" and record.description == "a better description"
    assert page.inner_text("#details dd[data-field='Display name']") == "renamed <b>run</b>"  # the Details card too
    assert page.inner_text("#details dd[data-field='Description']") == "a better description"
    page.fill("#note-text", "checked by hand")
    page.click("#note-add")
    page.wait_for_selector("#notes li[data-note-id]")
    assert [n.text for n in populated.folder.store.list_run_notes("mnist_run_03")] == ["checked by hand"]
    screenshot(page, "run-edit")


def test_cancel_from_the_run_page(ws: runlab.Workspace, live_server: LiveServer, page: Any) -> None:
    add_run(ws.folder, "live", "busy_run", status=RunStatus.RUNNING)
    ws.folder.store.heartbeat("busy_run")
    open_page(page, f"{live_server.url}/runs/busy_run")
    page.wait_for_selector("#run-write[data-ready='1']")
    assert page.is_disabled("#run-delete")  # a running run is not deleted: cancel it first
    page.once("dialog", lambda d: d.accept())
    page.click("#run-cancel")
    page.wait_for_function("() => document.querySelector('#run-status .status').textContent === 'Canceled'")
    assert ws.folder.store.get_run("busy_run").status == RunStatus.CANCELED
    assert page.request.get(f"{live_server.url}/api/runs/busy_run").json()["status"] == "Canceled"
    page.wait_for_selector("#run-cancel", state="hidden")
    assert not page.is_disabled("#run-delete")
    page.once("dialog", lambda d: d.accept())
    page.click("#run-delete")
    page.wait_for_url("**/runs?experiment=live")
    assert page.request.get(f"{live_server.url}/api/runs/busy_run").status == 404


def test_lists_refresh_when_a_run_ends(ws: runlab.Workspace, live_server: LiveServer, page: Any) -> None:
    run = runlab.Experiment(ws, "live").start_logging(display_name="ending soon")
    try:
        open_page(page, f"{live_server.url}/runs?experiment=live")
        page.wait_for_selector(f"#runs-table tr[data-run-id='{run.id}'][data-status='Running']")
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url) if "/api/runs?" in r.url else None)
        run.complete()
        page.wait_for_selector(f"#runs-table tr[data-run-id='{run.id}'][data-status='Completed']", timeout=15_000)
        assert 1 <= len(requests) <= 3  # one request per interval, not one per row
        open_page(page, f"{live_server.url}/experiments")
        assert page.locator("#experiments-table tr[data-experiment='live'] .status").inner_text().startswith("Completed")
    finally:
        if not run.get_status() in ("Completed", "Failed", "Canceled"):
            run.complete()


def test_experiment_archive_from_the_list(populated: runlab.Workspace, live_server: LiveServer, page: Any) -> None:
    open_page(page, f"{live_server.url}/experiments")
    page.click("#experiments-table tr[data-experiment='baseline'] [data-archive]")
    page.wait_for_function("() => !document.querySelector(\"#experiments-table tr[data-experiment='baseline']\")")
    assert populated.folder.store.get_experiment("baseline").archived
    page.check("#show-archived")
    page.wait_for_selector("#experiments-table tr[data-experiment='baseline'][data-archived='1']")
    page.click("#experiments-table tr[data-experiment='baseline'] [data-archive]")
    page.wait_for_selector("#experiments-table tr[data-experiment='baseline'][data-archived='0']")
    assert not populated.folder.store.get_experiment("baseline").archived


def test_saved_view_restores_filter_columns_and_sort(populated: runlab.Workspace, live_server: LiveServer,
                                                      page: Any) -> None:
    open_page(page, f"{live_server.url}/runs?experiment=mnist&sort=metric:loss&order=asc&tagcol=lr")
    page.fill("#query", 'status = "Completed"')
    page.press("#query", "Enter")
    wait_rows(page, 10)
    page.once("dialog", lambda d: d.accept("completed by loss"))
    page.click("#save-view")
    page.wait_for_selector("#views option[value='completed by loss']", state="attached")
    open_page(page, f"{live_server.url}/runs?experiment=mnist")
    wait_rows(page, 12)
    page.select_option("#views", "completed by loss")
    page.wait_for_url("**q=*")
    page.wait_for_selector(READY)
    wait_rows(page, 10)
    assert page.input_value("#query") == 'status = "Completed"'
    assert page.locator("#runs-table th[data-sort='tag:lr']").count() == 1
    assert page.get_attribute("#runs-table th[data-sort='metric:loss']", "aria-sort") == "ascending"


def test_columns_resize_by_drag_and_keys_and_keep_their_width(populated: runlab.Workspace, live_server: LiveServer,
                                                               page: Any) -> None:
    page.goto(f"{live_server.url}/runs?experiment=mnist")
    page.wait_for_selector("#runs-table tbody tr")
    head = page.locator('#runs-table th[data-col="target"]')
    before = head.bounding_box()["width"]
    handle = head.locator(".col-resize")
    box = handle.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 + 120, box["y"] + box["height"] / 2, steps=6)
    page.mouse.up()
    wider = head.bounding_box()["width"]
    assert wider > before + 80, (before, wider)
    cell = page.locator('#runs-table tbody tr:first-child td[data-col="target"]')
    assert abs(cell.bounding_box()["width"] - wider) < 2  # the cells follow their header
    assert "sort=target" not in page.url  # the drag sorted nothing
    head.locator("button.sort").focus()  # keys: Alt+arrows on the focused header (the handle is not a tab stop)
    for _ in range(3):
        page.keyboard.press("Alt+ArrowLeft")
    assert "sort=target" not in page.url
    narrower = head.bounding_box()["width"]
    assert wider - 60 < narrower < wider - 36, (wider, narrower)
    page.reload()
    page.wait_for_selector("#runs-table tbody tr")
    assert abs(page.locator('#runs-table th[data-col="target"]').bounding_box()["width"] - narrower) < 2
    page.locator('#runs-table th[data-col="target"] .col-resize').dblclick()  # back to fit its content
    assert abs(page.locator('#runs-table th[data-col="target"]').bounding_box()["width"] - before) < 2
