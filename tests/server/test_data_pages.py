"""The studio's datastore and dataset pages, their REST API, and the run page's Inputs: real
workspaces with uploaded files, registered versions and runs that consumed them; a real server and
Chromium for the pages."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import pytest
from studio_fixtures import LiveServer, free_port, screenshot

import runlab
from runlab import Dataset, Datastore
from runlab.core.assets import RunInputRecord
from runlab.server import data_views

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

READY = "body[data-ready='1']"
MARKUP = '<img src=x onerror="window.__xss=1">'
CSV = "city,temp,day\nOslo,3.5,2024-01-01\nLima,19.0,2024-01-02\n<b>Rome</b>,12.25,2024-01-03\n"


def error_of(response: Any, *statuses: int) -> dict[str, Any]:
    assert response.status_code in statuses, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and body["error"]["message"] and body["error"]["type"] != "InternalError"
    return dict(body["error"])


@pytest.fixture(autouse=True)
def _fresh_listings() -> None:
    data_views.clear_caches()


@pytest.fixture
def data_ws(ws: runlab.Workspace, tmp_path: Path) -> dict[str, Any]:
    """Files in the default datastore; 'cifar' (2 versions, the first used by a run), 'weather'
    (tabular, markup in its description, tags and rows) used by a run; a local datastore."""
    src = tmp_path / "src"
    (src / "cifar" / "batches").mkdir(parents=True)
    for i in range(3):
        (src / "cifar" / "batches" / f"data_batch_{i}").write_bytes(bytes([i]) * (1000 + i))
    (src / "cifar" / "readme.txt").write_text("cifar\n")
    (src / "cifar" / f"{MARKUP}.txt").write_text("markup\n")
    (src / "weather.csv").write_text(CSV)
    store = ws.get_default_datastore()
    store.upload(str(src), target_path="data", show_progress=False)
    blob = store
    cifar1 = Dataset.File.from_files(path=(blob, "data/cifar")).register(ws, "cifar", description="CIFAR-10 batches")
    (src / "cifar" / "batches" / "data_batch_3").write_bytes(b"\x03" * 1003)
    store.upload(str(src), target_path="data", show_progress=False)
    cifar2 = Dataset.File.from_files(path=(blob, "data/cifar")).register(ws, "cifar", create_new_version=True)
    weather = Dataset.Tabular.from_delimited_files((blob, "data/weather.csv")).register(
        ws, "weather", description=MARKUP, tags={"source": MARKUP})
    run = runlab.Experiment(ws, "train").start_logging(display_name="train on cifar")
    ws.folder.store.record_run_inputs(run.id, [
        RunInputRecord(run_id=run.id, name="images", kind="file", mode="mount", dataset_id=cifar1.id,
                       dataset_name="cifar", dataset_version=1, files_hash="a" * 64, file_count=5, total_size=4012),
        RunInputRecord(run_id=run.id, name="table", kind="tabular", mode="direct", dataset_id=weather.id,
                       dataset_name="weather", dataset_version=1, file_count=1, total_size=len(CSV)),
    ])
    run.complete()
    plain = runlab.Experiment(ws, "train").start_logging(display_name="no inputs")
    plain.complete()
    local_dir = tmp_path / "scratch"
    local = Datastore.register_local(ws, "scratch", local_dir)
    (local_dir / "a").mkdir(parents=True)
    (local_dir / "a" / "x.bin").write_bytes(b"x" * 10)
    return {"ws": ws, "run": run, "plain": plain, "cifar1": cifar1, "cifar2": cifar2, "weather": weather,
            "local": local, "local_dir": local_dir}


# -- datastores ------------------------------------------------------------------------------------


def test_datastores_list_type_where_default_files_and_bytes(data_ws: dict[str, Any], client: Any) -> None:
    stores = {d["name"]: d for d in client.get("/api/datastores").json()}
    assert list(stores) == ["scratch", "workspaceblobstore"]
    blob, scratch = stores["workspaceblobstore"], stores["scratch"]
    ws: runlab.Workspace = data_ws["ws"]
    assert blob["type"] == "blob" and blob["is_default"] and not scratch["is_default"]
    assert blob["path"] == str(ws.folder.datastores_dir / "workspaceblobstore")
    assert blob["file_count"] == 7 and blob["available"] and blob["error"] is None  # 6 files + batch 3
    assert blob["total_size"] == sum(1000 + i for i in range(4)) + len("cifar\n") + len("markup\n") + len(CSV)
    assert scratch == {**scratch, "type": "local", "path": str(data_ws["local_dir"]), "file_count": 1, "total_size": 10}
    assert client.get("/api/datastores/scratch").json() == scratch


def test_a_new_workspace_shows_its_default_datastore_without_writing(ws: runlab.Workspace, client: Any) -> None:
    (blob,) = client.get("/api/datastores").json()
    assert (blob["name"], blob["file_count"], blob["created_at"], blob["is_default"]) == ("workspaceblobstore", 0, None, True)
    assert ws.folder.store.list_datastores() == []  # a GET registers nothing
    assert client.get("/api/datastores/workspaceblobstore/files").json()["total"] == 0


def test_a_datastore_folder_is_listed_a_page_at_a_time(data_ws: dict[str, Any], client: Any) -> None:
    root = client.get("/api/datastores/workspaceblobstore/files").json()
    assert (root["prefix"], root["parent"], root["total"], root["file_count"]) == ("", None, 1, 7)
    assert root["entries"] == [{**root["entries"][0], "kind": "folder", "name": "data", "path": "data/", "file_count": 7}]
    cifar = client.get("/api/datastores/workspaceblobstore/files", params={"prefix": "data/cifar"}).json()
    assert (cifar["prefix"], cifar["parent"], cifar["file_count"]) == ("data/cifar/", "data/", 6)
    assert [(e["kind"], e["name"]) for e in cifar["entries"]] == [
        ("folder", "batches"), ("file", f"{MARKUP}.txt"), ("file", "readme.txt")]
    assert cifar["entries"][0]["size"] == sum(1000 + i for i in range(4))
    readme = cifar["entries"][2]
    assert readme["sha256"] == hashlib.sha256(b"cifar\n").hexdigest()  # recorded by the upload
    page = client.get("/api/datastores/workspaceblobstore/files",
                      params={"prefix": "data/cifar/batches/", "offset": 1, "limit": 2}).json()
    assert (page["total"], page["offset"], page["limit"]) == (4, 1, 2)
    assert [e["name"] for e in page["entries"]] == ["data_batch_1", "data_batch_2"]
    # a file put in a local datastore by hand: listed, no sha256 recorded
    (x,) = client.get("/api/datastores/scratch/files", params={"prefix": "a/"}).json()["entries"]
    assert (x["name"], x["size"], x["sha256"]) == ("x.bin", 10, None)


def test_many_files_page_quickly(ws: runlab.Workspace, client: Any, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Paging through a folder lists it once (then pages from what was listed), whatever the page."""
    from runlab.store.objects.local import LocalObjectStore

    listings: list[str] = []
    real_list = LocalObjectStore.list

    def counted(self: LocalObjectStore, prefix: str = "") -> Any:
        listings.append(prefix)
        return real_list(self, prefix)

    monkeypatch.setattr(LocalObjectStore, "list", counted)
    folder = tmp_path / "many"
    for d in range(20):
        (folder / f"d{d:02d}").mkdir(parents=True)
        for f in range(100):
            (folder / f"d{d:02d}" / f"f{f:03d}").write_bytes(b"")
    for f in range(250):
        (folder / f"top{f:03d}").write_bytes(b"ab")
    Datastore.register_local(ws, "many", folder)
    first = client.get("/api/datastores/many/files", params={"limit": 100}).json()
    seen = [e["name"] for e in first["entries"]]
    offset = 100
    while offset < first["total"]:
        seen += [e["name"] for e in client.get("/api/datastores/many/files", params={"offset": offset, "limit": 100}
                                               ).json()["entries"]]
        offset += 100
    assert first["total"] == 270 and first["file_count"] == 2250 and first["total_size"] == 500
    assert seen[:20] == [f"d{d:02d}" for d in range(20)] and seen[20:] == [f"top{f:03d}" for f in range(250)]
    assert listings == [""], listings  # three pages, one listing (a wall-clock bound flaked on a loaded machine)


@pytest.mark.parametrize("path", [
    "/api/datastores/nope", "/api/datastores/nope/files", "/api/datastores/..%2F..%2Fetc", "/api/datastores/a%00b",
    "/api/datastores/" + "n" * 300, "/api/datastores/%2E%2E/files", "/api/datastores/%3Cb%3E",
])
def test_a_bad_datastore_name_is_a_json_4xx(ws: runlab.Workspace, client: Any, path: str) -> None:
    error_of(client.get(path), 400, 404, 422)  # 422: longer than any name can be


@pytest.mark.parametrize("prefix", ["../x", "/etc", "a/../../x", "a\x00b", "%2E%2E/x"])
def test_a_hostile_prefix_is_refused(data_ws: dict[str, Any], client: Any, prefix: str) -> None:
    response = client.get("/api/datastores/scratch/files", params={"prefix": prefix})
    if prefix == "%2E%2E/x":  # sent encoded twice: a folder named "%2E%2E", which is not there
        assert response.status_code == 200 and response.json()["total"] == 0
        return
    assert "passwd" not in response.text
    error_of(response, 400)


def test_a_hostile_datastore_name_in_the_database_reaches_no_path(ws: runlab.Workspace, client: Any) -> None:
    """A name written by hand (or an older runlab) that would lead out of files/datastores/ is shown
    unavailable, and cannot be asked for by URL."""
    (ws.path / "files" / "secret.txt").write_text("secret")
    ws.folder.store.register_datastore("..", "workspaceblob", {})
    planted = {d["name"]: d for d in client.get("/api/datastores").json()}[".."]
    assert not planted["available"] and planted["file_count"] is None and "secret" not in str(planted)
    for path in ("/api/datastores/%2E%2E/files", "/api/datastores/%2E%2E"):
        response = client.get(path)
        assert response.status_code in (400, 404) and "secret" not in response.text


def test_an_unreachable_s3_datastore_is_shown_not_raised(ws: runlab.Workspace, client: Any,
                                                         aws_env: dict[str, str]) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    ws.folder.store.register_datastore("lake", "s3", {"bucket": "my-bucket", "prefix": "team/raw",
                                                      "endpoint_url": endpoint, "region": "us-east-1"})
    started = time.perf_counter()
    lake = {d["name"]: d for d in client.get("/api/datastores").json()}["lake"]
    assert time.perf_counter() - started < 10
    assert (lake["type"], lake["path"], lake["endpoint"], lake["region"]) == ("s3", "s3://my-bucket/team/raw", endpoint, "us-east-1")
    assert not lake["available"] and lake["file_count"] is None and endpoint in lake["error"]
    error = error_of(client.get("/api/datastores/lake/files"), 503)
    assert endpoint in error["message"]
    assert client.get("/datastores/lake").status_code == 200


def test_an_s3_datastore_is_browsed(ws: runlab.Workspace, client: Any, s3_bucket: tuple[str, str],
                                    tmp_path: Path) -> None:
    endpoint, bucket = s3_bucket
    lake = Datastore.register_s3(ws, "lake", bucket, prefix="team", endpoint_url=endpoint)
    (tmp_path / "up" / "x").mkdir(parents=True)
    (tmp_path / "up" / "x" / "a.csv").write_text("a\n1\n")
    lake.upload(str(tmp_path / "up"), target_path="raw", show_progress=False)
    info = client.get("/api/datastores/lake").json()
    assert (info["available"], info["file_count"], info["path"], info["endpoint"]) == (True, 1, f"s3://{bucket}/team", endpoint)
    (entry,) = client.get("/api/datastores/lake/files", params={"prefix": "raw/x/"}).json()["entries"]
    assert (entry["path"], entry["size"], len(entry["sha256"])) == ("raw/x/a.csv", 4, 64)


# -- datasets --------------------------------------------------------------------------------------


def test_datasets_list_their_latest_versions(data_ws: dict[str, Any], client: Any) -> None:
    cifar, weather = client.get("/api/datasets").json()
    assert (cifar["name"], cifar["version"], cifar["type"], cifar["file_count"]) == ("cifar", 2, "file", 6)
    assert cifar["id"] == data_ws["cifar2"].id and cifar["created_at"] > 0
    assert (weather["type"], weather["description"], weather["tags"]) == ("tabular", MARKUP, {"source": MARKUP})
    assert weather["total_size"] == len(CSV)


def test_a_dataset_version_its_definition_versions_and_runs(data_ws: dict[str, Any], client: Any) -> None:
    latest = client.get("/api/datasets/cifar").json()
    assert latest["version"] == 2 and latest["runs"] == [] and latest["runs_total"] == 0
    assert [(v["version"], v["run_count"], v["file_count"]) for v in latest["versions"]] == [(2, 0, 6), (1, 1, 5)]
    assert latest["sources"] == [{"datastore": "workspaceblobstore", "path": "data/cifar"}] and latest["reader"] is None
    first = client.get("/api/datasets/cifar/versions/1").json()
    assert first == client.get("/api/datasets/cifar", params={"version": 1}).json()
    run = data_ws["run"]
    assert first["runs"] == [{"run_id": run.id, "input_name": "images", "mode": "mount", "version": 1,
                              "display_name": "train on cifar", "experiment": "train", "status": "Completed",
                              "created_at": first["runs"][0]["created_at"]}]
    weather = client.get("/api/datasets/weather").json()
    assert weather["reader"]["format"] == "delimited" and weather["reader"]["separator"] == ","
    assert [r["input_name"] for r in weather["runs"]] == ["table"]


def test_a_dataset_versions_files_are_paged(data_ws: dict[str, Any], client: Any) -> None:
    page = client.get("/api/datasets/cifar/versions/2/files", params={"limit": 4}).json()
    assert (page["total"], page["offset"], page["limit"]) == (6, 0, 4)
    names = [f["name"] for f in page["files"]]
    rest = client.get("/api/datasets/cifar/versions/2/files", params={"offset": 4, "limit": 4}).json()["files"]
    names += [f["name"] for f in rest]
    expected = {f.name.lstrip("/") for f in data_ws["cifar2"].get_files()}
    assert set(names) == expected and len(names) == 6 and "batches/data_batch_3" in names
    assert all(len(f["sha256"]) == 64 and f["datastore"] == "workspaceblobstore" for f in page["files"] + rest)
    assert client.get("/api/datasets/cifar/versions/1/files").json()["total"] == 5


def test_a_tabular_version_previews_its_first_rows(data_ws: dict[str, Any], client: Any) -> None:
    preview = client.get("/api/datasets/weather/versions/1/preview", params={"rows": 2}).json()
    assert preview["available"] and [c["name"] for c in preview["columns"]] == ["city", "temp", "day"]
    assert preview["columns"][1]["type"] == "double"
    assert preview["rows"] == [["Oslo", 3.5, "2024-01-01"], ["Lima", 19.0, "2024-01-02"]]
    assert len(client.get("/api/datasets/weather/versions/1/preview").json()["rows"]) == 3
    files = client.get("/api/datasets/cifar/versions/1/preview").json()
    assert not files["available"] and "file dataset" in files["reason"]


@pytest.mark.parametrize(("path", "status"), [
    ("/api/datasets/nope", 404), ("/api/datasets/cifar/versions/9", 404), ("/api/datasets/cifar?version=9", 404),
    ("/api/datasets/nope/versions/1/files", 404), ("/api/datasets/%2E%2E", 400), ("/api/datasets/a%00b", 400),
    ("/api/datasets/%3Cscript%3E", 400), ("/api/datasets/" + "n" * 300, 422), ("/api/datasets/cifar/versions/0", 422),
    ("/api/datasets/cifar/versions/x/files", 422), ("/api/datasets/.hidden/versions/1/preview", 400),
])
def test_a_bad_dataset_name_or_version_is_a_json_4xx(data_ws: dict[str, Any], client: Any, path: str, status: int) -> None:
    error_of(client.get(path), status)


def test_run_inputs(data_ws: dict[str, Any], client: Any) -> None:
    images, table = client.get(f"/api/runs/{data_ws['run'].id}/inputs").json()
    assert images == {"name": "images", "kind": "file", "mode": "mount", "dataset_id": data_ws["cifar1"].id,
                      "dataset_name": "cifar", "dataset_version": 1, "files_hash": "a" * 64, "file_count": 5,
                      "total_size": 4012, "url": "/datasets/cifar?version=1"}
    assert (table["mode"], table["url"]) == ("direct", "/datasets/weather?version=1")
    assert client.get(f"/api/runs/{data_ws['plain'].id}/inputs").json() == []
    error_of(client.get("/api/runs/nope/inputs"), 404)


def test_the_api_is_in_the_openapi_schema(ws: runlab.Workspace, client: Any) -> None:
    paths = set(client.get("/api/openapi.json").json()["paths"])
    assert {"/api/datastores", "/api/datastores/{name}", "/api/datastores/{name}/files", "/api/datasets",
            "/api/datasets/{name}", "/api/datasets/{name}/versions/{version}",
            "/api/datasets/{name}/versions/{version}/files", "/api/datasets/{name}/versions/{version}/preview",
            "/api/runs/{run_id}/inputs"} <= paths


# -- pages -----------------------------------------------------------------------------------------


def test_pages_and_not_found_pages(data_ws: dict[str, Any], client: Any) -> None:
    for path in ("/datastores", "/datastores/workspaceblobstore", "/datastores/scratch?prefix=a/", "/datasets",
                 "/datasets/cifar", "/datasets/cifar?version=1", "/datasets/weather"):
        response = client.get(path)
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/html"), path
    for path in ("/datastores/nope", "/datastores/..%2F..%2Fetc", "/datastores/" + "n" * 300, "/datasets/nope",
                 "/datasets/cifar?version=9", "/datasets/cifar?version=x", "/datasets/cifar?version=0",
                 "/datasets/%2E%2E", "/datasets/a%00b", "/datasets/%3Cscript%3Ealert(1)%3C%2Fscript%3E",
                 "/datastores/%3Cscript%3Ealert(1)%3C%2Fscript%3E"):
        response = client.get(path)
        assert response.status_code == 404 and response.headers["content-type"].startswith("text/html"), path
        assert "not found" in response.text.lower() and "<script>alert(1)" not in response.text, path


# -- in a browser ----------------------------------------------------------------------------------


def open_page(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_selector(READY)


@pytest.mark.slow
def test_datasets_a_version_its_run_and_the_runs_inputs_in_a_browser(data_ws: dict[str, Any], live_server: LiveServer,
                                                                     page: Any) -> None:
    run = data_ws["run"]
    open_page(page, f"{live_server.url}/datasets")
    row = page.locator("#datasets-table tr[data-dataset='weather']")
    assert MARKUP in row.inner_text()  # shown as text, never as markup
    assert page.evaluate("() => window.__xss") is None and page.locator("#datasets img").count() == 0
    cifar = page.locator("#datasets-table tr[data-dataset='cifar']")
    assert "CIFAR-10" not in cifar.inner_text() and cifar.locator("td").nth(1).inner_text() == "2"
    screenshot(page, "datasets")

    cifar.locator("a.run-name").click()
    page.wait_for_url("**/datasets/cifar")
    page.wait_for_selector(READY)
    assert page.locator("#version-badge").inner_text() == "version 2"
    assert page.locator("#files-table tbody tr").count() == 6
    page.click("#versions-table tr[data-version='1'] a")
    page.wait_for_url("**/datasets/cifar?version=1")
    page.wait_for_selector(READY)
    assert page.locator("#version-badge").inner_text() == "version 1"
    assert page.locator("#files-table tbody tr").count() == 5
    assert page.locator(f"#files-table tr[data-name='{MARKUP}.txt'], #files-table tr[data-name='/{MARKUP}.txt']").count() == 1
    assert page.locator("#details dd[data-field='Description']").inner_text() == "CIFAR-10 batches"
    assert "workspaceblobstore: data/cifar" in page.locator("#sources").inner_text()
    assert page.locator("#preview-card").is_hidden()  # a file dataset has no rows
    link = page.locator(f"#runs-table tr[data-run-id='{run.id}'] a.run-link")
    assert "train on cifar" in link.inner_text()
    assert "images" in page.locator(f"#runs-table tr[data-run-id='{run.id}']").inner_text()
    assert page.evaluate("() => window.__xss") is None and page.locator("#main img").count() == 0
    screenshot(page, "dataset", full_page=True)

    link.click()
    page.wait_for_url(f"**/runs/{run.id}")
    page.wait_for_selector("#inputs-table tr[data-input='images']")
    assert page.locator("#inputs-card").is_visible()
    images = page.locator("#inputs-table tr[data-input='images']")
    assert "mount" in images.inner_text() and "cifar:1" in images.inner_text() and "5" in images.inner_text()
    assert "direct" in page.locator("#inputs-table tr[data-input='table']").inner_text()
    screenshot(page, "run-inputs", full_page=True)
    page.click("#inputs-table tr[data-input='table'] a")
    page.wait_for_url("**/datasets/weather?version=1")
    page.wait_for_selector("#preview-table tbody tr")
    assert page.locator("#preview-table tbody tr").count() == 3
    assert "<b>Rome</b>" in page.locator("#preview-table").inner_text()
    assert page.locator("#details dd[data-field='Description']").inner_text() == MARKUP
    assert page.evaluate("() => window.__xss") is None and page.locator("#main img, #main b:has-text('Rome')").count() == 0

    open_page(page, f"{live_server.url}/runs/{data_ws['plain'].id}")
    page.wait_for_timeout(300)  # the inputs request has answered: the card stays hidden
    assert page.locator("#inputs-card").is_hidden()


@pytest.mark.slow
def test_datastores_and_a_datastore_folder_in_a_browser(data_ws: dict[str, Any], live_server: LiveServer, page: Any,
                                                        aws_env: dict[str, str]) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    data_ws["ws"].folder.store.register_datastore("lake", "s3", {"bucket": "my-bucket", "prefix": None,
                                                                 "endpoint_url": endpoint, "region": None})
    open_page(page, f"{live_server.url}/datastores")
    blob = page.locator("#datastores-table tr[data-datastore='workspaceblobstore']")
    assert "default" in blob.inner_text() and "7" in blob.inner_text()
    assert "unreachable" in page.locator("#datastores-table tr[data-datastore='lake']").inner_text()
    assert endpoint in page.locator(".notice[data-datastore='lake']").inner_text()
    screenshot(page, "datastores")

    blob.locator("a").click()
    page.wait_for_url("**/datastores/workspaceblobstore")
    page.wait_for_selector(READY)
    page.click("#files-table tr[data-path='data/'] a")
    page.wait_for_selector("#files-table tr[data-path='data/cifar/']")
    page.click("#files-table tr[data-path='data/cifar/'] a")
    page.wait_for_selector("#files-table tr[data-path='data/cifar/readme.txt']")
    assert page.locator(f"#files-table tr[data-path='data/cifar/{MARKUP}.txt']").count() == 1
    assert page.evaluate("() => window.__xss") is None and page.locator("#files img").count() == 0
    assert "prefix=data%2Fcifar%2F" in page.url
    screenshot(page, "datastore")
    page.reload()
    page.wait_for_selector("#files-table tr[data-path='data/cifar/readme.txt']")  # the folder is kept in the URL
    page.click("#folder-crumbs a[data-prefix='']")
    page.wait_for_selector("#files-table tr[data-path='data/']")

    open_page(page, f"{live_server.url}/datastores/lake")
    assert "unreachable" in page.locator("#datastore-badges").inner_text()
    assert endpoint in page.locator("#files .notice").inner_text()
