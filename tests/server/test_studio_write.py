"""The studio's write actions and the runs table's API: edit, note, cancel, archive, delete (one run
and in bulk), the query language, the column list and the CSV export; and the attacks on them:
cross-site writes, readers' and run tokens' writes, SQL in queries, ids that climb out of folders."""

from __future__ import annotations

import csv
import io
import time
import warnings
from typing import Any, Iterator

import pytest
from studio_fixtures import add_run

import runlab
from runlab.core.status import RunStatus, RunType
from runlab.server.app import create_app
from runlab.server.auth import AuthConfig
from runlab.store.remote import codec
from runlab.store.sql.tokens import TokenStore, issue_run_token


def _test_client(app: Any) -> Any:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
        from fastapi.testclient import TestClient
    return TestClient(app)


def _ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [r["run_id"] for r in response.json()["runs"]]


# -- edit, notes -----------------------------------------------------------------------------------


def test_edit_name_description_and_tags(populated: runlab.Workspace, client: Any) -> None:
    r = client.patch("/api/runs/mnist_run_03", json={"display_name": "best so far", "description": "lr 0.1, 55 steps",
                                                     "add_tags": {"stage": "dev", "team": "infra"},
                                                     "remove_tags": ["lr"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["display_name"] == "best so far" and body["description"] == "lr 0.1, 55 steps"
    assert body["tags"] == {"team": "infra", "stage": "dev"}  # team changed, stage added, lr removed
    record = populated.folder.store.get_run("mnist_run_03")
    assert record.display_name == "best so far" and record.tags == {"team": "infra", "stage": "dev"}
    # "" shows the run by its id again; a field left out stays
    r = client.patch("/api/runs/mnist_run_03", json={"display_name": ""})
    assert r.json()["display_name"] is None and r.json()["description"] == "lr 0.1, 55 steps"
    assert client.patch("/api/runs/nope", json={"description": "x"}).status_code == 404
    assert client.patch("/api/runs/mnist_run_03", json={"add_tags": {"": "x"}}).status_code == 400
    assert client.patch("/api/runs/mnist_run_03", json={"colour": "red"}).status_code == 422  # unknown field


def test_notes(populated: runlab.Workspace, client: Any) -> None:
    assert client.get("/api/runs/mnist_run_01/notes").json() == []
    r = client.post("/api/runs/mnist_run_01/notes", json={"text": "diverged after step 30"})
    assert r.status_code == 201, r.text
    assert r.json()["author"] == "local" and r.json()["text"] == "diverged after step 30"
    client.post("/api/runs/mnist_run_01/notes", json={"text": "<b>second</b>"})
    assert [n["text"] for n in client.get("/api/runs/mnist_run_01/notes").json()] == \
        ["diverged after step 30", "<b>second</b>"]
    assert client.post("/api/runs/mnist_run_01/notes", json={"text": ""}).status_code == 422
    assert client.post("/api/runs/nope/notes", json={"text": "x"}).status_code == 404


# -- cancel ------------------------------------------------------------------------------------------


def test_cancel_running_and_queued_runs(ws: runlab.Workspace, client: Any) -> None:
    store = ws.folder.store
    add_run(ws.folder, "live", "interactive", status=RunStatus.RUNNING)
    store.create_run("queued", "live", run_type=RunType.SUBMITTED, status=RunStatus.QUEUED, target="cpu")
    store.create_run("submitted", "live", run_type=RunType.SUBMITTED, status=RunStatus.QUEUED, target="cpu")
    store.set_status("submitted", RunStatus.RUNNING)
    r = client.post("/api/runs/interactive/cancel")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "Canceled" and store.get_run("interactive").status == RunStatus.CANCELED
    assert client.post("/api/runs/queued/cancel").json()["status"] == "Canceled"  # as Run.cancel(): at once
    # a running submitted run is asked to stop: its agent ends the script and marks it Canceled
    assert client.post("/api/runs/submitted/cancel").json()["status"] == "CancelRequested"
    again = client.post("/api/runs/interactive/cancel")
    assert again.status_code == 400 and "already ended" in again.json()["error"]["message"]
    assert client.post("/api/runs/nope/cancel").status_code == 404


# -- archive -----------------------------------------------------------------------------------------


def test_archive_and_unarchive_runs(populated: runlab.Workspace, client: Any) -> None:
    r = client.post("/api/runs/mnist_run_11/archive", json={"archived": True})
    assert r.status_code == 200 and r.json()["archived"] is True
    shown = _ids(client.get("/api/runs", params={"experiment": "mnist", "limit": 100}))
    assert "mnist_run_11" not in shown and len(shown) == 11  # archived runs are hidden by default
    assert _ids(client.get("/api/runs", params={"experiment": "mnist", "archived": "only"})) == ["mnist_run_11"]
    assert len(_ids(client.get("/api/runs", params={"experiment": "mnist", "archived": "include"}))) == 12
    assert client.get("/api/runs/mnist_run_11").json()["archived"] is True  # the run page still opens
    assert client.post("/api/runs/mnist_run_11/archive", json={"archived": False}).json()["archived"] is False
    assert len(_ids(client.get("/api/runs", params={"experiment": "mnist", "limit": 100}))) == 12


def test_archive_and_unarchive_experiments(populated: runlab.Workspace, client: Any) -> None:
    r = client.post("/api/experiments/baseline/archive", json={"archived": True})
    assert r.status_code == 200 and r.json()["archived"] is True
    assert [e["name"] for e in client.get("/api/experiments").json()] == ["mnist"]
    assert [e["name"] for e in client.get("/api/experiments", params={"archived": "only"}).json()] == ["baseline"]
    assert populated.folder.store.get_experiment("baseline").archived  # as Experiment.archive() would
    client.post("/api/experiments/baseline/archive", json={"archived": False})
    assert [e["name"] for e in client.get("/api/experiments").json()] == ["baseline", "mnist"]
    assert client.post("/api/experiments/nope/archive", json={}).status_code == 404


# -- delete ------------------------------------------------------------------------------------------


def test_delete_a_run_its_children_and_files(populated: runlab.Workspace, client: Any) -> None:
    artifacts = populated.folder.artifacts
    assert artifacts.list("mnist_run_11")
    r = client.delete("/api/runs/mnist_run_11")
    assert r.status_code == 200, r.text
    assert sorted(r.json()["deleted"]) == ["mnist_run_11", "mnist_run_11_child"]
    assert client.get("/api/runs/mnist_run_11").status_code == 404
    assert client.get("/api/runs/mnist_run_11_child").status_code == 404
    assert artifacts.list("mnist_run_11") == []
    assert client.delete("/api/runs/mnist_run_11").status_code == 404
    assert len(_ids(client.get("/api/runs", params={"experiment": "mnist", "limit": 100}))) == 11


def test_delete_refuses_a_running_run(ws: runlab.Workspace, client: Any) -> None:
    """Decision: a run that has not ended is not deleted (its process would write to a run that no
    longer exists); the answer says to cancel it first."""
    add_run(ws.folder, "live", "busy", status=RunStatus.RUNNING)
    r = client.delete("/api/runs/busy")
    assert r.status_code == 400 and "cancel it first" in r.json()["error"]["message"]
    assert ws.folder.store.get_run("busy").status == RunStatus.RUNNING
    client.post("/api/runs/busy/cancel")
    assert client.delete("/api/runs/busy").json()["deleted"] == ["busy"]


@pytest.mark.parametrize("bad", ["..%2F..%2Fsecret", "..", "a%2F..%2F..%2Fb", "..%5C..%5Cx"])
def test_delete_refuses_ids_that_climb_out(ws: runlab.Workspace, client: Any, bad: str) -> None:
    outside = ws.folder.artifacts.root.parent / "secret"
    outside.mkdir(exist_ok=True)
    (outside / "keep.txt").write_text("keep")
    r = client.delete(f"/api/runs/{bad}")
    assert r.status_code in (400, 404, 405), r.text
    assert (outside / "keep.txt").read_text() == "keep"


def test_delete_run_function_refuses_a_dotted_id(ws: runlab.Workspace, app: Any) -> None:
    from runlab.core.errors import UserError
    from runlab.server.api.runs import delete

    with pytest.raises(UserError):
        delete(app.state.studio, "../secret")


# -- bulk --------------------------------------------------------------------------------------------


def test_bulk_tag_cancel_archive_delete(populated: runlab.Workspace, client: Any) -> None:
    add_run(populated.folder, "mnist", "live_1", status=RunStatus.RUNNING)
    r = client.post("/api/runs-bulk", json={"action": "tag", "run_ids": ["mnist_run_00", "mnist_run_01", "nope"],
                                            "tags": {"review": "yes"}})
    assert r.status_code == 200, r.text
    assert r.json()["done"] == ["mnist_run_00", "mnist_run_01"] and list(r.json()["failed"]) == ["nope"]
    assert _ids(client.get("/api/runs", params={"q": 'tags.review = "yes"', "sort": "run_id", "order": "asc"})) == \
        ["mnist_run_00", "mnist_run_01"]
    r = client.post("/api/runs-bulk", json={"action": "cancel", "run_ids": ["live_1", "mnist_run_00"]})
    assert r.json()["done"] == ["live_1"] and "already ended" in r.json()["failed"]["mnist_run_00"]
    client.post("/api/runs-bulk", json={"action": "archive", "run_ids": ["mnist_run_00", "mnist_run_01"]})
    assert _ids(client.get("/api/runs", params={"q": 'tags.review = "yes"'})) == []
    client.post("/api/runs-bulk", json={"action": "unarchive", "run_ids": ["mnist_run_00"]})
    assert _ids(client.get("/api/runs", params={"q": 'tags.review = "yes"'})) == ["mnist_run_00"]
    r = client.post("/api/runs-bulk", json={"action": "delete", "run_ids": ["mnist_run_00", "live_1", "../mnist_run_02"]})
    assert sorted(r.json()["done"]) == ["live_1", "mnist_run_00"] and list(r.json()["failed"]) == ["../mnist_run_02"]
    assert client.get("/api/runs/mnist_run_00").status_code == 404
    assert client.post("/api/runs-bulk", json={"action": "tag", "run_ids": ["x"]}).status_code == 400
    assert client.post("/api/runs-bulk", json={"action": "explode", "run_ids": ["x"]}).status_code == 422


# -- the query language ----------------------------------------------------------------------------


def test_query_filters_by_metrics_tags_properties_and_attributes(populated: runlab.Workspace, client: Any) -> None:
    def q(text: str, **params: Any) -> list[str]:
        return _ids(client.get("/api/runs", params={"q": text, "sort": "run_id", "order": "asc", "limit": 100,
                                                    **params}))

    assert q('tags.team = "vision" and status = "Completed" and tags.lr = "0.01"') == ["mnist_run_01", "mnist_run_07"]
    assert q('status = "Failed"') == ["baseline_b", "mnist_run_08"]
    assert q('properties.git.branch = "main"') == ["mnist_run_11"]
    assert q("metrics.loss < 0.9", experiment="baseline") == ["baseline_a"]
    everything = q("metrics.loss > -1", experiment="mnist")
    assert len(everything) == 12
    # compared with what a listing reports: each run's last loss
    losses = {r["run_id"]: r["metrics"]["loss"] for r in client.get(
        "/api/runs", params={"experiment": "mnist", "metric": "loss", "limit": 100}).json()["runs"]}
    cut = sorted(losses.values())[5]
    assert q(f"metrics.loss < {cut}", experiment="mnist") == sorted(k for k, v in losses.items() if v < cut)


@pytest.mark.parametrize("text, position, token", [
    ("'; drop table runs; --", 0, "'"),
    ('metrics."x" = 1 or 1=1', 16, "or"),
    ("metrics.loss < 'a'", 15, "'a'"),
    ("status = 'Nope'", 0, "Nope"),
    ("metrics.loss", 12, None),
])


def test_a_bad_query_names_its_token(populated: runlab.Workspace, client: Any, text: str, position: int,
                                     token: str | None) -> None:
    r = client.get("/api/runs", params={"q": text})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["type"] == "FilterError" and f"position {position}" in error["message"]
    assert error["details"][0]["position"] == position and error["details"][0]["token"] == token
    assert error["details"][0]["expected"]
    assert len(_ids(client.get("/api/runs", params={"limit": 100}))) == 14  # the runs table is still there


def test_sql_in_a_query_value_is_only_a_value(populated: runlab.Workspace, client: Any) -> None:
    for text in ['tags.team = "x\' or 1=1; drop table runs; --"', "tags.`team' OR 1=1 --` = 'core'",
                 'metrics."loss; drop table runs" < 1']:
        assert _ids(client.get("/api/runs", params={"q": text})) == []
    assert len(_ids(client.get("/api/runs", params={"limit": 100}))) == 14


def test_sort_by_tag_and_property(populated: runlab.Workspace, client: Any) -> None:
    runs = client.get("/api/runs", params={"experiment": "mnist", "sort": "tag:lr", "order": "asc",
                                           "limit": 100}).json()["runs"]
    lrs = [r["tags"]["lr"] for r in runs]
    assert lrs == sorted(lrs)
    first = client.get("/api/runs", params={"sort": "property:git.branch", "limit": 1}).json()["runs"][0]
    assert first["run_id"] == "mnist_run_11" and first["properties"]["git.branch"] == "main"


def test_columns_list_metrics_most_runs_have_first(populated: runlab.Workspace, client: Any) -> None:
    cols = client.get("/api/runs-columns", params={"experiment": "mnist"}).json()
    assert [m["name"] for m in cols["metrics"]] == ["accuracy", "loss"]  # as many runs each: by name
    assert [m["runs"] for m in cols["metrics"]] == [12, 12]  # top-level runs (the child's loss is not counted)
    add_run(populated.folder, "mnist", "extra", metrics={"loss": [1.0]})
    cols = client.get("/api/runs-columns", params={"experiment": "mnist"}).json()
    assert [(m["name"], m["runs"]) for m in cols["metrics"]] == [("loss", 13), ("accuracy", 12)]
    assert cols["tags"] == ["lr", "team"] and cols["properties"] == ["git.branch", "runlab.user"]


def test_export_csv_of_the_current_view(populated: runlab.Workspace, client: Any) -> None:
    r = client.get("/api/runs-export", params={"experiment": "mnist", "q": 'tags.team = "vision"', "sort": "metric:loss",
                                               "order": "asc", "metric": ["loss"], "tag_column": ["lr"],
                                               "property_column": ["git.branch"]})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 6 and all(row["experiment"] == "mnist" for row in rows)
    losses = [float(row["metric.loss"]) for row in rows]
    assert losses == sorted(losses)
    listing = client.get("/api/runs", params={"experiment": "mnist", "q": 'tags.team = "vision"', "sort": "metric:loss",
                                              "order": "asc", "metric": ["loss"]}).json()["runs"]
    assert [row["run_id"] for row in rows] == [r["run_id"] for r in listing]
    assert {row["tag.lr"] for row in rows} <= {"0.1", "0.01", "0.001"}
    assert client.get("/api/runs-export", params={"q": "nope"}).status_code == 400


def test_export_pages_through_more_than_one_page(ws: runlab.Workspace, client: Any) -> None:
    store = ws.folder.store
    for i in range(1203):
        store.create_run(f"run_{i:05d}", "many", run_type=RunType.INTERACTIVE, status=RunStatus.COMPLETED,
                         tags={"formula": "=1+1"} if i == 0 else None)
    r = client.get("/api/runs-export", params={"experiment": "many", "sort": "run_id", "order": "asc",
                                               "tag_column": ["formula"]})
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["run_id"] for row in rows] == [f"run_{i:05d}" for i in range(1203)]
    assert rows[0]["tag.formula"] == "'=1+1"  # no formula for a spreadsheet to run


# -- same origin without authentication -----------------------------------------------------------


def test_cross_site_writes_are_refused_without_auth(populated: runlab.Workspace, client: Any) -> None:
    attacks = [
        {"Origin": "http://evil.example"},
        {"Origin": "http://testserver:8080"},  # another port of the same host is another site
        {"Origin": "null"},
        {"Referer": "http://evil.example/page"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site", "Origin": "http://testserver"},
    ]
    for headers in attacks:
        for method, path, body in [("PATCH", "/api/runs/mnist_run_01", {"add_tags": {"pwned": "1"}}),
                                   ("DELETE", "/api/runs/mnist_run_01", None),
                                   ("POST", "/api/runs-bulk", {"action": "delete", "run_ids": ["mnist_run_02"]}),
                                   ("POST", "/api/experiments/mnist/archive", {"archived": True})]:
            r = client.request(method, path, json=body, headers=headers)
            assert r.status_code == 403, (headers, path, r.text)
            assert "cross-site request refused" in r.json()["error"]["message"]
    record = populated.folder.store.get_run("mnist_run_01")
    assert "pwned" not in record.tags
    populated.folder.store.get_run("mnist_run_02")
    # the studio's own pages (same origin), and programs that send no Origin, may write
    ok = client.patch("/api/runs/mnist_run_01", json={"add_tags": {"ok": "1"}},
                      headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"})
    assert ok.status_code == 200, ok.text
    assert client.patch("/api/runs/mnist_run_01", json={"add_tags": {"ok": "2"}}).status_code == 200
    assert client.get("/api/runs", headers={"Origin": "http://evil.example"}).status_code == 200  # reads: no check


# -- tokens ----------------------------------------------------------------------------------------


@pytest.fixture
def authed(populated: runlab.Workspace) -> Iterator[tuple[Any, TokenStore]]:
    tokens = TokenStore(populated.folder.store.engine, recheck_s=0)
    app = create_app(populated.folder, poll_interval_s=0.1, stream_max_s=5,
                     auth=AuthConfig(enabled=True, tokens=tokens, allowed_hosts=["testserver"]))
    with _test_client(app) as c:
        yield c, tokens


def test_a_reader_cannot_write(authed: tuple[Any, TokenStore]) -> None:
    client, tokens = authed
    reader, _ = tokens.create("viewer", "reader")
    headers = {"Authorization": f"Bearer {reader}"}
    assert client.get("/api/runs", headers=headers).status_code == 200
    for method, path, body in [("PATCH", "/api/runs/mnist_run_01", {"description": "x"}),
                               ("POST", "/api/runs/mnist_run_01/notes", {"text": "x"}),
                               ("POST", "/api/runs/mnist_run_01/archive", {"archived": True}),
                               ("DELETE", "/api/runs/mnist_run_01", None),
                               ("POST", "/api/runs-bulk", {"action": "delete", "run_ids": ["mnist_run_01"]}),
                               ("POST", "/api/experiments/mnist/archive", {"archived": True})]:
        r = client.request(method, path, json=body, headers=headers)
        assert r.status_code == 403, (path, r.text)
    writer, _ = tokens.create("dev", "writer")
    r = client.post("/api/runs/mnist_run_01/notes", json={"text": "by a writer"},
                    headers={"Authorization": f"Bearer {writer}"})
    assert r.status_code == 201 and r.json()["author"] == "dev"


def test_a_run_token_cannot_delete_or_archive_runs(authed: tuple[Any, TokenStore], populated: runlab.Workspace) -> None:
    client, _tokens = authed
    token = issue_run_token(populated.folder.store.engine, "mnist_run_01", ttl_s=600)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    for method, args in [("delete_run", ["mnist_run_02"]), ("delete_run", ["mnist_run_01"]),
                         ("set_run_archived", ["mnist_run_02", True]), ("set_description", ["mnist_run_02", "x"])]:
        r = client.post(f"/api/store/{method}", content=codec.dumps({"args": args, "kwargs": {}}), headers=headers)
        assert r.status_code == 403, (method, r.text)
    # its own run: notes and description
    r = client.post("/api/store/add_run_note", content=codec.dumps({"args": ["mnist_run_01", "from the run"],
                                                                    "kwargs": {}}), headers=headers)
    assert r.status_code == 200, r.text
    assert client.delete("/api/runs/mnist_run_02", headers=headers).status_code == 403  # the studio API: not its
    populated.folder.store.get_run("mnist_run_02")
    assert [n.text for n in populated.folder.store.list_run_notes("mnist_run_01")] == ["from the run"]


def test_cookie_session_writes_need_the_csrf_header(authed: tuple[Any, TokenStore]) -> None:
    client, tokens = authed
    writer, _ = tokens.create("dev", "writer")
    login = client.post("/login", json={"token": writer})
    assert login.status_code == 200, login.text
    no_header = client.patch("/api/runs/mnist_run_01", json={"description": "x"})
    assert no_header.status_code == 403
    csrf = client.cookies.get("runlab_csrf")
    ok = client.patch("/api/runs/mnist_run_01", json={"description": "x"}, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200 and ok.json()["description"] == "x"


def test_rebinding_host_is_refused(populated: runlab.Workspace, client: Any) -> None:
    r = client.get("/api/runs", headers={"Host": "evil.example"})
    assert r.status_code == 400



def test_export_of_an_experiment_with_a_non_ascii_name(ws: runlab.Workspace, client: Any) -> None:
    add_run(ws.folder, "expé rience", "r1")
    r = client.get("/api/runs-export", params={"experiment": "expé rience"})
    assert r.status_code == 200 and r.headers["content-disposition"] == 'attachment; filename="exp_rience.csv"'
    assert r.text.splitlines()[1].startswith("r1,,expé rience,")


def test_a_deleted_runs_token_writes_nothing_and_the_store_call_deletes_files_too(
        authed: tuple[Any, TokenStore], populated: runlab.Workspace) -> None:
    client, tokens = authed
    store = populated.folder.store
    run_token = issue_run_token(store.engine, "mnist_run_02", ttl_s=600)
    populated.folder.artifacts.put_bytes("mnist_run_02", "outputs/model.pt", b"weights")
    writer, _ = tokens.create("dev", "writer")
    headers = {"Authorization": f"Bearer {writer}", "Content-Type": "application/json"}
    r = client.post("/api/store/delete_run", content=codec.dumps({"args": ["mnist_run_02"], "kwargs": {}}),
                    headers=headers)
    assert r.status_code == 200, r.text
    assert populated.folder.artifacts.list("mnist_run_02") == []  # the client protocol deletes files, as the studio
    time.sleep(5.5)  # verified tokens are cached for 5 s in each server process
    as_run = {"Authorization": f"Bearer {run_token}", "Content-Type": "application/json"}
    r = client.post("/api/store/set_tags", content=codec.dumps({"args": ["mnist_run_02", {"k": "v"}], "kwargs": {}}),
                    headers=as_run)
    assert r.status_code == 401, r.text  # revoked with its run
