"""MLflow's real client (mlflow-skinny) logging into runlab through its MLflow tracking API, and
reading back both through MLflow and through runlab's own store."""

from __future__ import annotations

from typing import Any, Iterator

import httpx
import pytest
from studio_fixtures import LiveServer

from runlab.core.status import RunStatus
from runlab.sdk.run import Run
from runlab.sdk.workspace import Workspace
from runlab.server.api import mlflow as api

mlflow = pytest.importorskip("mlflow")
from mlflow.entities import Metric  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

pytestmark = [
    pytest.mark.slow,
]


@pytest.fixture
def tracking(live_server: LiveServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[str]:
    """MLflow's client pointed at the live server, and nowhere else."""
    for name, value in {
        "MLFLOW_TRACKING_URI": live_server.url,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",  # an error is answered at once, not retried for minutes
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
        "MLFLOW_TRACKING_TOKEN": "not-checked-yet",
        "NO_PROXY": "127.0.0.1",
        "HTTP_PROXY": "",
        "HTTPS_PROXY": "",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    monkeypatch.chdir(tmp_path)  # no git repository around: no git tags read from this checkout
    mlflow.set_tracking_uri(live_server.url)
    try:
        yield live_server.url
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(None)


def test_log_params_metrics_tags_and_read_back(ws: Workspace, tracking: str) -> None:
    experiment = mlflow.set_experiment("mlflow-exp")
    with mlflow.start_run(run_name="first") as active:
        run_id = active.info.run_id
        mlflow.log_param("lr", 0.01)
        mlflow.log_params({"epochs": 5, "optimizer": "adam"})
        for step in range(5):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_metrics({"accuracy": 0.9, "f1": 0.8}, step=4)
        mlflow.set_tag("team", "vision")
        mlflow.set_tags({"stage": "dev"})
        client = MlflowClient()
        points = [Metric("batch", float(i) * 0.5, 1_700_000_000_000 + i, i) for i in range(1000)]
        client.log_batch(run_id, metrics=points)
    assert run_id.startswith("mlflow-exp_")

    # through MLflow
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "first"
    assert run.info.experiment_id == experiment.experiment_id
    assert run.info.end_time is not None and run.info.end_time >= run.info.start_time
    assert run.data.params == {"lr": "0.01", "epochs": "5", "optimizer": "adam"}
    assert run.data.tags["team"] == "vision" and run.data.tags["stage"] == "dev"
    assert run.data.tags["mlflow.runName"] == "first"
    assert run.data.metrics == {"loss": pytest.approx(0.2), "accuracy": 0.9, "f1": 0.8, "batch": 499.5}
    history = client.get_metric_history(run_id, "loss")
    assert [m.step for m in history] == [0, 1, 2, 3, 4]
    assert [m.value for m in history] == pytest.approx([1.0, 0.5, 1 / 3, 0.25, 0.2])
    batch = client.get_metric_history(run_id, "batch")
    assert len(batch) == 1000
    assert [(m.step, m.timestamp, m.value) for m in batch[:2]] == [(0, 1_700_000_000_000, 0.0), (1, 1_700_000_000_001, 0.5)]
    assert client.get_metric_history(run_id, "never-logged") == []
    by_name = client.get_experiment_by_name("mlflow-exp")
    assert by_name is not None and by_name.experiment_id == experiment.experiment_id

    # through runlab
    record = ws.folder.store.get_run(run_id)
    assert record.experiment_name == "mlflow-exp" and record.display_name == "first"
    assert record.status == RunStatus.COMPLETED and record.ended_at is not None
    assert dict(record.properties) == {"lr": "0.01", "epochs": "5", "optimizer": "adam"}
    assert record.tags["team"] == "vision"
    series = ws.folder.store.get_metric_series(run_id, "batch")
    assert series.kind == "scalar" and len(series) == 1000
    assert series.steps.tolist() == list(range(1000))
    assert series.values.tolist() == [i * 0.5 for i in range(1000)]
    assert series.times[0] == pytest.approx(1_700_000_000.0)
    assert run_id in [r.run_id for r in ws.folder.store.list_runs(experiment_name="mlflow-exp")]
    metrics = Run(ws.folder, run_id).get_metrics()
    assert metrics["loss"] == pytest.approx([1.0, 0.5, 1 / 3, 0.25, 0.2]) and metrics["accuracy"] == 0.9
    # and in the studio's own API
    shown = httpx.get(f"{tracking}/api/runs/{run_id}", timeout=30)
    assert shown.status_code == 200 and shown.json()["status"] == "Completed"


def test_search_runs_filters_and_order(tracking: str) -> None:
    experiment_id = mlflow.set_experiment("search-exp").experiment_id
    made: dict[str, str] = {}
    for name, lr, loss, team in [("a", "0.1", 0.9, "core"), ("b", "0.01", 0.3, "vision"), ("c", "0.001", 0.1, "core")]:
        with mlflow.start_run(run_name=name) as run:
            mlflow.log_param("lr", lr)
            mlflow.log_metric("loss", loss)
            mlflow.set_tag("team", team)
            made[name] = run.info.run_id
    with pytest.raises(RuntimeError), mlflow.start_run(run_name="broken") as run:
        made["broken"] = run.info.run_id
        raise RuntimeError("training diverged")
    client = MlflowClient()
    assert client.get_run(made["broken"]).info.status == "FAILED"

    def names(filter_string: str = "", order_by: list[str] | None = None, **kwargs: Any) -> list[str]:
        runs = client.search_runs([experiment_id], filter_string, order_by=order_by, **kwargs)
        return [r.info.run_name for r in runs]

    assert names("metrics.loss < 0.5", ["metrics.loss ASC"]) == ["c", "b"]
    assert names("params.lr = '0.01'") == ["b"]
    assert sorted(names("tags.team != 'core'")) == ["b"]
    assert names("attributes.status = 'FAILED'") == ["broken"]
    assert names("attributes.run_name = 'a'") == ["a"]
    assert names("metrics.loss >= 0.1 and tags.team = 'core'", ["metrics.loss DESC"]) == ["a", "c"]
    assert sorted(names("params.lr LIKE '0.0%'")) == ["b", "c"]
    assert names("tags.team ILIKE 'VIS%'") == ["b"]
    assert names("", ["attributes.start_time DESC"]) == ["broken", "c", "b", "a"]
    assert names("", ["metrics.loss ASC"]) == ["c", "b", "a", "broken"]  # no loss: last
    page = client.search_runs([experiment_id], "", order_by=["metrics.loss ASC"], max_results=2)
    assert [r.info.run_name for r in page] == ["c", "b"] and page.token
    rest = client.search_runs([experiment_id], "", order_by=["metrics.loss ASC"], max_results=2, page_token=page.token)
    assert [r.info.run_name for r in rest] == ["a", "broken"] and not rest.token
    found = mlflow.search_runs(filter_string="metrics.loss > 0.2", order_by=["metrics.loss ASC"], output_format="list")
    assert [r.info.run_name for r in found] == ["b", "a"]
    assert found[0].data.params == {"lr": "0.01"}

    # a filter string never reaches SQL: an injection attempt is a value that matches nothing ...
    assert names("params.lr = 'x'' OR 1=1 --'") == []
    # ... or a filter refused with a clear message
    with pytest.raises(MlflowException, match="joined by AND only") as refused:
        names("params.lr = 'x' OR 1=1")
    assert refused.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException, match="unexpected ';'"):
        names("params.lr = '0.1'; DROP TABLE runs")
    with pytest.raises(MlflowException, match="compared with a number"):
        names("metrics.loss < '1'")
    assert names("params.lr = '0.1'") == ["a"]  # and the server still answers


def test_default_experiment_and_errors(ws: Workspace, tracking: str) -> None:
    client = MlflowClient()
    assert client.get_experiment("0").name == "Default"
    with mlflow.start_run() as run:  # no experiment set: MLflow's Default, id "0"
        mlflow.log_param("lr", "0.1")
        with pytest.raises(MlflowException, match="Changing param values is not allowed") as changed:
            mlflow.log_param("lr", "0.2")
        assert changed.value.error_code == "INVALID_PARAMETER_VALUE"
        mlflow.log_param("lr", "0.1")  # the same value again is fine
    assert run.info.experiment_id == "0"
    assert ws.folder.store.get_run(run.info.run_id).experiment_name == "Default"
    assert client.get_run(run.info.run_id).data.params == {"lr": "0.1"}

    with pytest.raises(MlflowException, match="not found") as missing:
        client.get_run("no-such-run")
    assert missing.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as missing_experiment:
        client.get_experiment("123456")
    assert missing_experiment.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert client.get_experiment_by_name("nope") is None
    with pytest.raises(MlflowException, match="experiment name") as bad_name:
        client.create_experiment("has spaces")
    assert bad_name.value.error_code == "INVALID_PARAMETER_VALUE"
    experiment_id = client.create_experiment("made-here", tags={"owner": "ada"})
    with pytest.raises(MlflowException) as exists:
        client.create_experiment("made-here")
    assert exists.value.error_code == "RESOURCE_ALREADY_EXISTS"
    assert client.get_experiment(experiment_id).tags == {"owner": "ada"}
    assert "made-here" in [e.name for e in client.search_experiments(filter_string="name LIKE 'made%'")]
    client.delete_experiment(experiment_id)
    assert client.get_experiment(experiment_id).lifecycle_stage == "deleted"
    assert ws.folder.store.get_experiment("made-here").archived
    client.restore_experiment(experiment_id)
    assert client.get_experiment(experiment_id).lifecycle_stage == "active"

    run_id = client.create_run(experiment_id, run_name="tags").info.run_id
    client.set_tag(run_id, "gone", "soon")
    client.delete_tag(run_id, "gone")
    assert "gone" not in client.get_run(run_id).data.tags
    client.set_terminated(run_id, "KILLED")
    assert client.get_run(run_id).info.status == "KILLED"
    assert ws.folder.store.get_run(run_id).status == RunStatus.CANCELED


def test_bad_input_is_mlflows_error(ws: Workspace, tracking: str) -> None:
    run_id = MlflowClient().create_run("0").info.run_id
    with httpx.Client(base_url=tracking + "/api/2.0/mlflow", timeout=30) as http:
        def post(path: str, body: Any) -> tuple[int, dict[str, Any]]:
            response = http.post(path, json=body)
            return response.status_code, response.json()

        code, body = post("/runs/log-metric", {"run_id": run_id, "key": "loss", "value": "abc", "timestamp": 1})
        assert code == 400 and body["error_code"] == "INVALID_PARAMETER_VALUE" and "value" in body["message"]
        code, body = post("/runs/log-metric", {"run_id": run_id, "key": "sys/cpu", "value": 1, "timestamp": 1})
        assert code == 400 and "reserved" in body["message"]
        code, body = post("/runs/log-metric", {"run_id": run_id, "key": "", "value": 1, "timestamp": 1})
        assert code == 400 and body["error_code"] == "INVALID_PARAMETER_VALUE"
        code, body = post("/runs/log-metric", {"run_id": "nope", "key": "loss", "value": 1, "timestamp": 1})
        assert code == 404 and body["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        code, body = post("/runs/log-batch", {"run_id": run_id, "metrics": [
            {"key": "m", "value": 1.0, "timestamp": 1, "step": i} for i in range(1001)]})
        assert code == 400 and body["error_code"] == "INVALID_PARAMETER_VALUE"
        code, body = post("/runs/search", {"experiment_ids": ["0"], "page_token": "not-a-token"})
        assert code == 400 and "page token" in body["message"]
        code, body = post("/runs/log-metric", {"run_id": run_id, "key": "nan", "value": "NaN", "timestamp": 1})
        assert code == 200
        response = http.get("/metrics/get-history", params={"run_id": run_id, "metric_key": "nan"})
        assert response.json()["metrics"][0]["value"] == "NaN"
        code, body = post("/runs/log-model", {"run_id": run_id})
        assert code == 404 and body["error_code"] == "ENDPOINT_NOT_FOUND"
        response = http.post("/runs/create", content=b"{not json", headers={"Content-Type": "application/json"})
        assert response.status_code == 400 and response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert [m.name for m in ws.folder.store.get_metric_summaries(run_id)] == ["nan"]


def test_like_and_filter_parser() -> None:
    assert api.like("train/loss", "train%", ignore_case=False)
    assert api.like("abc", "a_c", ignore_case=False) and not api.like("abc", "a_", ignore_case=False)
    assert api.like("ABC", "%b%", ignore_case=True) and not api.like("ABC", "%b%", ignore_case=False)
    assert api.like("aaaa", "%a%a%a%a%", ignore_case=False) and not api.like("aaa", "%a%a%a%a%", ignore_case=False)
    assert not api.like("a" * 8000, "%a" * 50 + "b", ignore_case=False)  # linear, not exponential
    conditions = api.parse_filter("metrics.`val loss` <= -1.5e-3 AND tags.\"my tag\" IN ('a', 'b''c')", api.RUN_FILTER)
    assert [(c.field.entity, c.field.key, c.op, c.value) for c in conditions] == [
        ("metric", "val loss", "<=", -1.5e-3), ("tag", "my tag", "IN", ("a", "b'c"))]
    for bad in ["metrics.loss", "metrics.loss < 1 OR params.a = 'b'", "secrets.x = 'y'", "attributes.nope = 'x'",
                "params.a = 'unterminated", "params.a LIKE 1", "(params.a = 'b')"]:
        with pytest.raises(api.MlflowError):
            api.parse_filter(bad, api.RUN_FILTER)
    assert api.parse_order_by("start_time", api.RUN_FILTER) == api.Order(api._Field("attribute", "start_time"), False)
    with pytest.raises(api.MlflowError):
        api.parse_order_by("metrics.loss ASC, params.x", api.RUN_FILTER)
