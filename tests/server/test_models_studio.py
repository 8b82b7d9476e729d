"""Registered models in the studio: the API (versions, files, downloads, a run's models), the models
page and the run page's links, in a real browser."""

from __future__ import annotations

import io
from typing import Any

import pytest
from studio_fixtures import LiveServer

import runlab


@pytest.fixture
def with_models(ws: runlab.Workspace) -> tuple[runlab.Workspace, str]:
    run = runlab.Experiment(ws, "train").start_logging()
    run.upload_file("outputs/model.pt", io.BytesIO(b"weights v1"))
    run.upload_file("outputs/extra/ü b.txt", io.BytesIO(b"odd name"))
    run.register_model("net", "outputs/model.pt", tags={"acc": 0.9})
    run.register_model("net", "outputs", description="the whole folder")
    run.complete()
    other = runlab.Experiment(ws, "other").start_logging()
    other.complete()
    return ws, run.id


def test_models_api_lists_versions_files_and_serves_them(with_models: tuple[runlab.Workspace, str], client: Any) -> None:
    _ws, run_id = with_models
    listed = client.get("/api/models").json()
    assert [(m["id"], m["run_id"]) for m in listed] == [("net:2", run_id), ("net:1", run_id)]
    one = listed[1]
    assert one["tags"] == {"acc": "0.9"} and one["files"][0]["path"] == "model.pt" and one["file_count"] == 1
    body = client.get(one["files"][0]["url"])
    assert body.status_code == 200 and body.content == b"weights v1"
    two = client.get("/api/models/net/2").json()
    odd = next(f for f in two["files"] if f["path"].endswith(".txt"))
    assert odd["path"] == "outputs/extra/ü b.txt"
    download = client.get(odd["url"], params={"download": "true"})
    assert download.content == b"odd name" and "attachment" in download.headers["content-disposition"]
    assert download.headers["content-security-policy"] == "sandbox"
    assert [m["id"] for m in client.get("/api/models", params={"run_id": run_id}).json()] == ["net:2", "net:1"]
    assert client.get("/api/models", params={"run_id": "other_run"}).json() == []
    assert client.get("/api/models", params={"name": "nope"}).json() == []
    missing = client.get("/api/models/net/7")
    assert missing.status_code == 404 and "its versions are 1, 2" in missing.json()["error"]["message"]
    assert client.get("/api/models/net/1/files/not-there.pt").status_code == 404
    escape = client.get("/api/models/net/1/files/%2E%2E/%2E%2E/%2E%2E/workspace.db")  # only recorded names are served
    assert escape.status_code == 404 and b"SQLite" not in escape.content


@pytest.mark.slow
def test_models_page_and_run_page_link_to_each_other(with_models: tuple[runlab.Workspace, str],
                                                     live_server: LiveServer, page: Any) -> None:
    _ws, run_id = with_models
    page.goto(f"{live_server.url}/runs/{run_id}")
    page.wait_for_selector("body[data-ready='1']")
    page.wait_for_selector("#models-table tr[data-model='net:1']")
    assert page.locator("#models-card").is_visible()
    page.locator("#models-table tr[data-model='net:1'] a").click()
    page.wait_for_url("**/models#net%3A1")
    page.wait_for_selector("body[data-ready='1']")
    row = page.locator("#assets tr[data-model='net:1']")
    assert "selected" in (row.get_attribute("class") or "")
    assert "acc" in row.inner_text() and "model.pt" in row.inner_text()
    assert row.locator(f"a[href='/runs/{run_id}']").count() == 1
    href = row.locator("ul.model-files a").first.get_attribute("href")
    assert href == "/api/models/net/1/files/model.pt?download=true"
    page.goto(f"{live_server.url}/runs/{other_run_id(_ws)}")
    page.wait_for_selector("body[data-ready='1']")
    page.wait_for_timeout(200)
    assert not page.locator("#models-card").is_visible()


def other_run_id(ws: runlab.Workspace) -> str:
    return next(r.run_id for r in ws.folder.store.list_runs(experiment_name="other"))
