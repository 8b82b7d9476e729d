"""The run page's file browser: a tree of folders (each a zip), previews of text, JSON, CSV and images;
and the API behind it (a folder as a zip, a file's first bytes)."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest
from studio_fixtures import LiveServer

import runlab

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360f8cfc00000030101005d9e3e0e0000000049454e44ae426082")


def _files(ws: runlab.Workspace) -> str:
    run = runlab.Run(ws.folder, "mnist_run_11")
    run.upload_file("outputs/metrics.csv", io.BytesIO(b'epoch,loss,note\n1,0.9,"a, b"\n2,0.5,<b>bold</b>\n'))
    run.upload_file("outputs/plots/curve.png", io.BytesIO(PNG))
    run.upload_file("outputs/plots/deep/x.txt", io.BytesIO(b"<script>alert(1)</script> deep\n"))
    return run.id


def test_a_folder_as_a_zip_and_a_files_first_bytes(populated: runlab.Workspace, client: Any) -> None:
    run_id = _files(populated)
    r = client.get(f"/api/runs/{run_id}/zip", params={"folder": "outputs/plots"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert "mnist_run_11-outputs-plots.zip" in r.headers["content-disposition"]
    archive = zipfile.ZipFile(io.BytesIO(r.content))
    assert archive.testzip() is None
    assert sorted(archive.namelist()) == ["outputs/plots/curve.png", "outputs/plots/deep/x.txt"]
    assert archive.read("outputs/plots/curve.png") == PNG
    everything = zipfile.ZipFile(io.BytesIO(client.get(f"/api/runs/{run_id}/zip").content)).namelist()
    assert "azureml-logs/70_driver_log.txt" in everything and len(everything) == 6
    for bad in ("../mnist_run_10", "/etc", "outputs/../../x"):
        assert client.get(f"/api/runs/{run_id}/zip", params={"folder": bad}).status_code in (400, 404), bad
    assert client.get(f"/api/runs/{run_id}/zip", params={"folder": "nope"}).status_code == 404
    assert client.get("/api/runs/no_such_run/zip").status_code == 404
    head = client.get(f"/api/runs/{run_id}/files/outputs/notes.txt", params={"max_bytes": 3})
    assert head.content == b"hel" and head.headers["content-length"] == "3"
    assert client.get(f"/api/runs/{run_id}/files/outputs/notes.txt", params={"max_bytes": 0}).status_code == 422


@pytest.mark.slow
def test_the_file_tree_collapses_folders_and_previews_files(populated: runlab.Workspace, live_server: LiveServer,
                                                            page: Any) -> None:
    run_id = _files(populated)
    page.goto(f"{live_server.url}/runs/{run_id}#files")
    page.wait_for_selector("#files-tree details[data-folder='outputs']")
    outputs = page.locator("details[data-folder='outputs']")
    assert outputs.get_attribute("open") is not None  # the top folders open, deeper ones closed
    plots = page.locator("details[data-folder='outputs/plots']")
    assert plots.get_attribute("open") is None
    assert "2 files" in plots.locator(":scope > summary").inner_text()
    assert plots.locator(":scope > summary a").get_attribute("href").endswith("/zip?folder=outputs%2Fplots")
    plots.locator(":scope > summary").click()
    assert plots.get_attribute("open") is not None
    # text, with markup shown as text
    page.locator("details[data-folder='outputs/plots/deep'] summary").click()
    page.locator("li.file[data-name='outputs/plots/deep/x.txt'] .preview-button").click()
    page.wait_for_selector("#file-preview pre")
    assert page.inner_text("#file-preview pre").startswith("<script>alert(1)</script> deep")
    assert page.locator("#file-preview script").count() == 0
    # JSON, pretty-printed
    page.locator("li.file[data-name='outputs/model.json'] .preview-button").click()
    page.wait_for_function("() => (document.querySelector('#file-preview pre') || {}).textContent?.includes('\\n  \"weights\"')")
    # CSV as a table, quoted fields kept whole
    page.locator("li.file[data-name='outputs/metrics.csv'] .preview-button").click()
    page.wait_for_selector("#file-preview table.csv-preview")
    assert page.eval_on_selector_all("#file-preview thead th", "th => th.map(t => t.textContent)") == ["epoch", "loss", "note"]
    cells = page.eval_on_selector_all("#file-preview tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))")
    assert cells == [["1", "0.9", "a, b"], ["2", "0.5", "<b>bold</b>"]]
    # an image
    page.locator("li.file[data-name='outputs/plots/curve.png'] .preview-button").click()
    page.wait_for_function("() => { const i = document.querySelector('#file-preview img'); return i && i.complete && i.naturalWidth === 1; }")
    page.click("#file-preview-close")
    assert page.locator("#file-preview").is_hidden()
    assert page.locator("#files-zip").get_attribute("href").endswith(f"/api/runs/{run_id}/zip")
