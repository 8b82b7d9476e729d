"""Azure ML v1 behaviour that runlab itself provides (the compat package only re-exports it): run, experiment,
workspace, environment and datastore calls v1 scripts make, with v1's argument names and positions."""

from __future__ import annotations

import inspect
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import runlab
from runlab.core.errors import NotSupportedError, SecretNotFoundError, UserError
from runlab.core.names import check_run_id
from runlab.sdk.experiment import Experiment
from runlab.sdk.run import Run

V1_SCRIPTS = Path(__file__).resolve().parent / "v1_scripts"


def _params(fn: object) -> list[str]:
    return [p for p in inspect.signature(fn).parameters if p not in ("self", "cls") and not p.startswith("_")]  # type: ignore[arg-type]


def test_signatures_are_v1s() -> None:
    """Argument names and positions as Azure ML v1 documents them (runlab-only ones come after, as keywords)."""
    assert _params(Run.get_metrics) == ["name", "recursive", "run_type", "populate"]
    assert _params(Run.get_children) == ["recursive", "tags", "properties", "type", "status"]
    assert _params(Run.download_files) == ["prefix", "output_directory", "output_paths", "batch_size",
                                           "append_prefix", "timeout_seconds"]
    assert _params(Run.upload_file) == ["name", "path_or_stream", "datastore_name"]
    assert _params(Run.upload_files) == ["names", "paths", "return_artifacts", "timeout_seconds", "datastore_name"]
    assert _params(Run.restore_snapshot) == ["snapshot_id", "path"]
    assert _params(Run.create_children) == ["count", "tag_key", "tag_values"]
    assert _params(Run.get_all_logs) == ["destination"]
    assert _params(runlab.Workspace.create)[:9] == ["name", "auth", "subscription_id", "resource_group", "location",
                                                    "create_resource_group", "sku", "tags", "friendly_name"]


def test_display_name_is_settable(ws: runlab.Workspace) -> None:
    run = runlab.Experiment(ws, "names").start_logging()
    assert run.display_name == run.id
    run.display_name = "baseline"
    assert run.display_name == "baseline" and run.get_details()["displayName"] == "baseline"
    assert Run.get(ws, run.id).display_name == "baseline"
    run.display_name = None
    assert run.display_name == run.id
    with pytest.raises(runlab.InvalidValueError):
        run.display_name = "x" * 256
    run.complete()


def test_experiment_tags_archive_and_delete(ws: runlab.Workspace) -> None:
    exp = runlab.Experiment(ws, "tagged")
    assert exp.tags == {}
    exp.tag("team", "vision")
    exp.tag("flag")
    exp.set_tags({"stage": 2, "team": "nlp"})
    exp.remove_tags(["flag", "not-there"])
    assert exp.tags == {"team": "nlp", "stage": "2"}
    assert runlab.Experiment(ws, "tagged").tags == {"team": "nlp", "stage": "2"}  # stored
    other = runlab.Experiment(ws, "other")
    assert [e.name for e in Experiment.list(ws, tags={"team": "nlp"})] == ["tagged"]

    exp.archive()
    assert exp.archived_time is not None
    assert [e.name for e in Experiment.list(ws)] == ["other"]  # active ones, as in v1
    assert [e.name for e in Experiment.list(ws, view_type="ArchivedOnly")] == ["tagged"]
    assert [e.name for e in Experiment.list(ws, view_type="All")] == ["other", "tagged"]
    with pytest.raises(UserError, match="view_type"):
        Experiment.list(ws, view_type="Everything")
    with pytest.raises(UserError, match="does not rename"):
        exp.reactivate(new_name="renamed")
    exp.reactivate()
    assert exp.archived_time is None and [e.name for e in Experiment.list(ws)] == ["other", "tagged"]

    run = other.start_logging()
    run.upload_file("outputs/a.txt", io.BytesIO(b"a"))
    with pytest.raises(UserError, match="not ended"):
        Experiment.delete(ws, other.id)
    run.complete()
    Experiment.delete(ws, other.id)
    with pytest.raises(runlab.RunNotFoundError):
        ws.get_run(run.id)
    assert not (ws.path / "files" / "runs" / run.id).exists()
    assert [e.name for e in Experiment.list(ws, view_type="All")] == ["tagged"]
    with pytest.raises(runlab.NotFoundError):
        Experiment.delete(ws, "no-such-experiment")


def test_offline_run_ids_start_with_offline_run(tmp_path: Path, v1_env: dict[str, str]) -> None:
    code = ("from azureml.core import Run\nfrom azureml.core.run import _OfflineRun\nrun = Run.get_context()\n"
            "run.log('a', 1)\n"
            "print(run.id, run.id.startswith('OfflineRun'), run.experiment.name, isinstance(run, _OfflineRun),\n"
            "      isinstance(run, Run))\n")
    script = tmp_path / "train.py"
    script.write_text(code)
    done = subprocess.run([sys.executable, str(script)], env=v1_env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    run_id, offline, experiment, is_offline_class, is_run = done.stdout.split()
    assert run_id.startswith("OfflineRun_") and offline == "True" and experiment == "train"
    assert is_offline_class == "True" and is_run == "True"
    assert check_run_id(run_id) == run_id


def test_submitted_and_interactive_runs_are_not_offline_runs(ws: runlab.Workspace, tmp_path: Path) -> None:
    from runlab.sdk.run import _OfflineRun

    run = runlab.Experiment(ws, "online").start_logging()
    assert isinstance(run, Run) and not isinstance(run, _OfflineRun)
    run.complete()
    src = tmp_path / "src"
    src.mkdir()
    (src / "check.py").write_text(
        "from runlab.sdk.run import Run, _OfflineRun\n"
        "run = Run.get_context()\nrun.log('offline_class', int(isinstance(run, _OfflineRun)))\n")
    try:
        submitted = runlab.Experiment(ws, "online").submit(runlab.ScriptRunConfig(source_directory=src,
                                                                                  script="check.py"))
        assert submitted.wait_for_completion()["status"] == "Completed"
        assert submitted.get_metrics()["offline_class"] == 0 and not isinstance(submitted, _OfflineRun)
    finally:
        from tests_support import stop_agents

        stop_agents(ws)


def test_experiment_from_directory(ws: runlab.Workspace, tmp_path: Path) -> None:
    from runlab.core.errors import ConfigError

    project = tmp_path / "project"
    (project / ".azureml").mkdir(parents=True)
    ws.write_config(project / ".azureml")
    with pytest.raises(ConfigError, match="no experiment named"):
        Experiment.from_directory(project)
    # v1's project file: the experiment's name under "Id"
    (project / ".azureml" / "project.json").write_text(json.dumps({
        "Id": "from-dir", "Scope": f"/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/"
                                   f"workspaces/{ws.name}/projects/from-dir"}))
    exp = Experiment.from_directory(str(project), auth=None)
    assert exp.name == "from-dir" and exp.workspace.path == ws.path
    assert [e.name for e in Experiment.list(ws)] == ["from-dir"]
    # or the config.json's own experiment_name
    other = tmp_path / "other"
    other.mkdir()
    config = json.loads((project / ".azureml" / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "experiment_name": "from-config"}))
    assert Experiment.from_directory(other).name == "from-config"
    with pytest.raises(ConfigError, match="not a folder"):
        Experiment.from_directory(tmp_path / "missing")


@pytest.mark.embedded_only(reason="a project.json's Scope names a workspace registered on this machine (its registry "
                            "of folders); a server's workspace is reached through a config.json's \"server\"")
def test_experiment_from_directory_by_scope(ws: runlab.Workspace, tmp_path: Path) -> None:
    # no config.json in or above the folder: the workspace named in "Scope" (a registered one)
    alone = tmp_path / "alone"
    (alone / "aml_config").mkdir(parents=True)
    (alone / "aml_config" / "project.json").write_text(json.dumps({"Id": "scoped", "Scope": "/x/workspaces/nope/y"}))
    with pytest.raises(runlab.RunlabError):
        Experiment.from_directory(alone)  # no workspace "nope" is registered
    (alone / "aml_config" / "project.json").write_text(json.dumps({"Id": "scoped",
                                                                   "Scope": f"/x/workspaces/{ws.name}/projects/s"}))
    scoped = Experiment.from_directory(alone)
    assert scoped.name == "scoped" and scoped.workspace.path == ws.path


def test_output_file_dataset_configs_are_in_output_datasets(ws: runlab.Workspace, tmp_path: Path) -> None:
    from runlab.sdk.output_dataset import OutputFileDatasetConfig

    src = tmp_path / "src"
    src.mkdir()
    (src / "write.py").write_text(
        "import os, sys\nos.makedirs(sys.argv[1], exist_ok=True)\n"
        "open(os.path.join(sys.argv[1], 'part.csv'), 'w').write('a,b\\n1,2\\n')\n")
    prepared = OutputFileDatasetConfig(name="prepared", destination=(ws.get_default_datastore(), "prepared/{run-id}"))
    try:
        run = runlab.Experiment(ws, "outputs").submit(runlab.ScriptRunConfig(
            source_directory=src, script="write.py", arguments=[prepared, "--plain", "x"]))
        assert run.wait_for_completion()["status"] == "Completed"
    finally:
        from tests_support import stop_agents

        stop_agents(ws)
    (output,) = run.get_details()["outputDatasets"]
    assert output["outputType"] == "RunOutput" and output["outputDetails"] == {"outputName": "prepared"}
    assert output["path"] == "outputs/prepared" and output["destination"] == ["workspaceblobstore", "prepared/{run-id}"]
    assert "outputs/prepared/part.csv" in run.get_file_names()
    # Run(experiment, id) reads it back the same
    again = Run(runlab.Experiment(ws, "outputs"), run.id).get_details()["outputDatasets"]
    assert [o["outputDetails"]["outputName"] for o in again] == ["prepared"]


def test_details_have_azures_keys(ws: runlab.Workspace) -> None:
    run = runlab.Experiment(ws, "details").start_logging()
    details = run.get_details()
    assert details["submittedBy"] and details["outputDatasets"] == [] and details["warnings"] == []
    assert run.get_environment() is None  # not a submitted run
    run.complete()


def test_children_metrics_files_and_logs(ws: runlab.Workspace, tmp_path: Path) -> None:
    run = runlab.Experiment(ws, "v1-run").start_logging()
    with pytest.raises(UserError):
        run.create_children()
    counted = run.create_children(count=2)
    tagged = run.create_children(tag_key="lr", tag_values=["0.1", "0.01"])
    assert len(counted) == 2 and [c.get_tags() for c in tagged] == [{"lr": "0.1"}, {"lr": "0.01"}]
    for child in counted + tagged:
        child.log("m", 1.0)
    counted[0].complete()
    for child in counted[1:] + tagged:
        child.flush()
    assert {c.id for c in run.get_children(status="Completed")} == {counted[0].id}
    assert len(run.get_children(tags={"lr": "0.1"})) == 1 and len(run.get_children(type="child")) == 4
    assert run.get_children(type="submitted") == []
    assert set(run.get_metrics(recursive=True, run_type="child")) == {c.id for c in counted + tagged}
    assert run.get_metrics(None, True, "submitted") == {}
    for child in counted[1:] + tagged:
        child.complete()

    (tmp_path / "a.txt").write_text("a")
    assert run.upload_file("outputs/a.txt", tmp_path / "a.txt", datastore_name="workspaceblobstore") == "outputs/a.txt"
    assert run.upload_files(["logs/one.txt", "logs/two.txt"], [tmp_path / "a.txt"] * 2, return_artifacts=True) \
        == ["logs/one.txt", "logs/two.txt"]
    targets = [tmp_path / "x" / "1.txt", tmp_path / "x" / "2.txt"]
    assert run.download_files("logs/", None, targets) == targets and targets[1].read_text() == "a"
    with pytest.raises(UserError, match="one path per file"):
        run.download_files("logs/", output_paths=targets[:1])
    logs = run.get_all_logs(destination=tmp_path / "logs-here")
    assert sorted(Path(p).relative_to(tmp_path / "logs-here").as_posix() for p in logs) == \
        ["logs/one.txt", "logs/two.txt"]
    with pytest.raises(runlab.RunlabError, match="has ended"):
        run.clean()
    run.complete()
    assert run.clean() == []  # an interactive run left no working folder


def test_snapshots_of_any_run(ws: runlab.Workspace, tmp_path: Path) -> None:
    run = runlab.Experiment(ws, "snaps").start_logging()
    assert run.get_snapshot_id() is None
    with pytest.raises(runlab.RunlabError, match="take_snapshot"):
        run.restore_snapshot()
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "train.py").write_text("print(1)\n")
    first = run.take_snapshot(tmp_path / "code")
    assert run.get_snapshot_id() == first
    (tmp_path / "notes.md").write_text("notes\n")
    second = run.take_snapshot(tmp_path / "notes.md")
    assert run.get_snapshot_id() == second != first
    latest = run.restore_snapshot(path=tmp_path / "out")
    assert latest == tmp_path / "out" / f"{second}.zip"
    with zipfile.ZipFile(latest) as z:
        assert z.namelist() == ["notes.md"]
    named = run.restore_snapshot(first, tmp_path / "first.zip")
    with zipfile.ZipFile(named) as z:
        assert z.read("train.py") == b"print(1)\n"
    run.complete()


def test_secrets_from_the_environment_then_the_file(ws: runlab.Workspace, monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    run = runlab.Experiment(ws, "secrets").start_logging()
    monkeypatch.setenv("db-password", "from-env")
    (ws.path / "secrets.json").write_text(json.dumps({"db-password": "from-file", "api-key": "k1"}))
    assert run.get_secret("db-password") == "from-env"
    assert run.get_secrets(["db-password", "api-key"]) == {"db-password": "from-env", "api-key": "k1"}
    with pytest.raises(SecretNotFoundError, match="'nope'") as info:
        run.get_secrets(["api-key", "nope"])
    assert str(ws.path / "secrets.json") in str(info.value)
    other = tmp_path / "mine.json"
    other.write_text(json.dumps({"api-key": "k2"}))
    monkeypatch.setenv("RUNLAB_SECRETS_FILE", str(other))
    assert run.get_secret("api-key") == "k2"
    run.complete()


def test_workspace_models_tags_mlflow_and_delete(tmp_path: Path) -> None:
    ws = runlab.Workspace.create("v1-ws", None, "sub-1", "rg-1", "westeurope", True, "basic", {"team": "vision"},
                                 path=tmp_path / "ws")
    assert ws.subscription_id == "sub-1" and ws.location == "westeurope" and ws.tags == {"team": "vision"}
    ws.update(tags={"stage": 1})
    assert runlab.Workspace.get("v1-ws").tags == {"team": "vision", "stage": "1"}
    assert ws.models == {}
    run = runlab.Experiment(ws, "m").start_logging()
    run.upload_file("outputs/model.pkl", io.BytesIO(b"model"))
    run.register_model("net", "outputs/model.pkl")
    run.register_model("net", "outputs/model.pkl", tags={"v": "2"})
    assert {n: m.version for n, m in ws.models.items()} == {"net": 2}
    assert ws.get_mlflow_tracking_uri() == (ws.path / "mlflow").as_uri()
    with pytest.raises(UserError, match="not ended"):
        ws.delete()
    run.complete()
    ws.delete()
    assert not (tmp_path / "ws").exists()
    with pytest.raises(runlab.WorkspaceNotFoundError):
        runlab.Workspace.get("v1-ws")


def test_environment_docker_directory_and_wheel(ws: runlab.Workspace, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    image = runlab.Environment.from_docker_image("img-env", "mcr.microsoft.com/azureml/base:latest")
    assert image.docker.base_image == "mcr.microsoft.com/azureml/base:latest" and image.docker.enabled
    assert "runlab builds Python environments, not images" in capsys.readouterr().err
    assert image.definition().pip_requirements == ()
    (tmp_path / "Dockerfile").write_text("FROM python:3.11\nRUN pip install six\n")
    (tmp_path / "requirements.txt").write_text("six\n")
    docker = runlab.Environment.from_dockerfile("df-env", tmp_path / "Dockerfile",
                                                pip_requirements=tmp_path / "requirements.txt")
    assert docker.docker.base_dockerfile.startswith("FROM python") and docker.definition().pip_requirements == ("six",)
    assert "the packages of that file" in capsys.readouterr().err

    env = runlab.Environment("saved-env")
    env.python.conda_dependencies = runlab.CondaDependencies.create(conda_packages=["numpy"], pip_packages=["six"])
    env.environment_variables["A"] = "1"
    env.docker.base_image = "some/image"
    env.save_to_directory(tmp_path / "saved")
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == ["azureml_environment.json",
                                                                      "conda_dependencies.yml"]
    with pytest.raises(UserError, match="overwrite=True"):
        env.save_to_directory(tmp_path / "saved")
    env.save_to_directory(tmp_path / "saved", overwrite=True)
    loaded = runlab.Environment.load_from_directory(tmp_path / "saved")
    assert loaded == env and loaded.docker.base_image == "some/image"
    assert loaded.python.conda_dependencies.conda_packages == ["numpy"]
    with pytest.raises(UserError, match="save_to_directory"):
        runlab.Environment.load_from_directory(tmp_path)

    wheel = tmp_path / "mypkg-1.0-py3-none-any.whl"
    wheel.write_bytes(b"not really a wheel")
    kept = runlab.Environment.add_private_pip_wheel(ws, wheel)
    assert Path(kept) == ws.path / "files" / "wheels" / wheel.name and Path(kept).read_bytes() == wheel.read_bytes()
    assert runlab.Environment.add_private_pip_wheel(ws, wheel) == kept  # the same file again
    wheel.write_bytes(b"another build")
    with pytest.raises(UserError, match="exist_ok=True"):
        runlab.Environment.add_private_pip_wheel(ws, wheel)
    assert runlab.Environment.add_private_pip_wheel(ws, wheel, exist_ok=True) == kept
    with pytest.raises(UserError, match="wheel"):
        runlab.Environment.add_private_pip_wheel(ws, tmp_path / "requirements.txt")


def test_azure_only_datastores_name_the_call_and_the_way_out(ws: runlab.Workspace) -> None:
    with pytest.raises(NotSupportedError) as info:
        runlab.Datastore.register_azure_blob_container(ws, datastore_name="images", container_name="cifar",
                                                       account_name="acct", account_key="secret")
    message = str(info.value)
    assert message.startswith("Datastore.register_azure_blob_container(container_name='cifar', account_name='acct')")
    assert "register_local(ws, 'images', path)" in message and "register_s3" in message and "secret" not in message
    for call in ("register_azure_file_share", "register_azure_data_lake_gen2", "register_azure_sql_database"):
        with pytest.raises(NotSupportedError, match=f"Datastore.{call}"):
            getattr(runlab.Datastore, call)(ws, "x")


def test_migration_0008_keeps_experiments_and_their_runs(tmp_path: Path) -> None:
    """Experiment tags and archiving come by ALTER TABLE: a workspace of 0007 keeps every experiment and run
    (a copy of the table would cascade to the runs with foreign keys on)."""
    import sqlalchemy as sa
    from sqlalchemy import event

    from runlab.store.sql.migrate import current_revision, upgrade

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'w.db'}")
    event.listen(engine, "connect", lambda dbapi, _record: dbapi.execute("PRAGMA foreign_keys=ON"))
    upgrade(engine, "0007_models")
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO experiments (name, created_at) VALUES ('old', 1.0)"))
        conn.execute(sa.text("INSERT INTO runs (run_id, experiment_id, run_type, status, target, created_at, "
                             "description) VALUES ('old_1_abcd1234', 1, 'interactive', 'Completed', 'local', 1.0, '')"))
    upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT name, tags, archived_at FROM experiments")).all() == [("old", None, None)]
        assert conn.execute(sa.text("SELECT run_id FROM runs")).scalars().all() == ["old_1_abcd1234"]
    from runlab.store.sql.schema import SCHEMA_REVISION

    assert current_revision(engine) == SCHEMA_REVISION  # the newest: 0008 and every migration after it
    engine.dispose()
