"""Server mode end to end: a real `runlab server` process, its client over HTTP, its agent, its tokens.

The tracking tests run on both kinds of workspace through the ``any_ws`` fixture (tests/conftest.py):
the embedded folder and a live server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

import runlab
from pg_support import drop_database, fresh_database
from runlab.core.entities import MetricBatch
from runlab.core.errors import (
    AuthenticationError,
    ConfigError,
    PermissionDeniedError,
    RunNotFoundError,
    StoreUnavailableError,
)
from runlab.core.status import RunStatus, RunType
from runlab.store.remote import codec
from runlab.store.remote.client import ServerClient, read_credentials, save_credentials
from runlab.store.remote.store import HttpStore
from runlab.store.sql.store import SqlStore
from runlab.store.sql.tokens import TokenStore
from server_support import ServerProcess

pytestmark = pytest.mark.slow


# -- one API, two kinds of workspace -----------------------------------------------------------------


def test_tracking_round_trip(any_ws: runlab.Workspace, tmp_path: Path) -> None:
    exp = runlab.Experiment(any_ws, "round-trip")
    run = exp.start_logging(display_name="first")
    for i in range(500):
        run.log("loss", 1.0 / (i + 1))
    run.log("note", "text value")
    run.log("count", 7)
    run.log_list("accuracies", [0.5, 0.7, 0.9])
    run.log_row("table", epoch=1, loss=0.5)
    run.log_row("table", epoch=2, loss=0.25)
    run.tag("team", "vision")
    run.tag("__t", "a tag that looks like the wire format's own keys")
    run.add_properties({"lr": "0.01"})
    child = run.child_run(name="child")
    child.log("c", 1.5)
    child.complete()
    (tmp_path / "model.bin").write_bytes(bytes(range(256)) * 4096)
    run.upload_file("outputs/model.bin", str(tmp_path / "model.bin"))
    run.complete()

    again = any_ws.get_run(run.id)
    assert again.get_status() == "Completed"
    metrics = again.get_metrics()
    assert metrics["loss"][0] == 1.0 and len(metrics["loss"]) == 500 and metrics["loss"][-1] == 1.0 / 500
    assert metrics["note"] == "text value" and metrics["count"] == 7
    assert metrics["accuracies"] == [0.5, 0.7, 0.9]
    assert metrics["table"] == {"epoch": [1, 2], "loss": [0.5, 0.25]}
    assert again.get_tags()["team"] == "vision" and again.get_tags()["__t"].startswith("a tag")
    assert again.get_properties()["lr"] == "0.01"
    assert [c.get_metrics() for c in again.get_children()] == [{"c": 1.5}]
    assert "outputs/model.bin" in again.get_file_names()
    again.download_file("outputs/model.bin", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == (tmp_path / "model.bin").read_bytes()
    assert [r.id for r in exp.get_runs()] == [run.id]
    with pytest.raises(RunNotFoundError):
        any_ws.get_run("no_such_run_1")


def test_submit_hello_world(any_ws: runlab.Workspace, tmp_path: Path) -> None:
    """A submitted script reports to its workspace; on a server, with a token of its own and no store URL."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "hello.py").write_text(textwrap.dedent("""
        import os
        from runlab import Run
        run = Run.get_context()
        print("hello world", run.id)
        print("store url seen:", os.environ.get("RUNLAB_STORE_URL"))
        for i in range(3):
            run.log("step", i)
    """))
    run = runlab.Experiment(any_ws, "hello").submit(runlab.ScriptRunConfig(source_directory=str(src), script="hello.py"))
    run.wait_for_completion(timeout_seconds=240)
    assert run.get_status() == "Completed"
    assert run.get_metrics() == {"step": [0, 1, 2]}
    with run.open_file("azureml-logs/70_driver_log.txt") as f:
        log = f.read().decode()
    assert "hello world " + run.id in log and "store url seen: None" in log


# -- a server of its own ---------------------------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path, subprocess_env: dict[str, str]) -> ServerProcess:
    proc = ServerProcess(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "artifacts", subprocess_env)
    proc.start()
    yield proc
    proc.stop()


WRITER = textwrap.dedent("""
    import sys, time, runlab
    ws = runlab.Workspace.get("default", server=sys.argv[1])
    run = runlab.Experiment(ws, "load").start_logging()
    print(run.id, flush=True)
    for i in range(int(sys.argv[2])):
        run.log("loss", float(i))
        if i % 25 == 0:
            time.sleep(0.05)  # about 8 s in all: the server is killed and restarted meanwhile
    run.complete()
    print("done", flush=True)
""")


def test_server_killed_while_8_runs_log_loses_and_repeats_nothing(server: ServerProcess, tmp_path: Path,
                                                                  subprocess_env: dict[str, str]) -> None:
    points = 4000
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = {**subprocess_env, "RUNLAB_FLUSH_INTERVAL": "0.1"}
    writers = [subprocess.Popen([sys.executable, str(script), server.url, str(points)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(8)]
    try:
        run_ids = [w.stdout.readline().strip() for w in writers]  # type: ignore[union-attr]
        assert all(run_ids), [w.stderr.read() for w in writers]  # type: ignore[union-attr]
        time.sleep(0.5)
        server.kill()  # SIGKILL, mid-stream: the writers journal what the server cannot take
        time.sleep(2.0)
        stopped = [w.communicate()[1] for w in writers if w.poll() is not None]
        assert stopped == [], "a writer stopped while the server was down"
        server.start()
        for w in writers:
            out, err = w.communicate(timeout=180)
            assert w.returncode == 0, err
            assert "done" in out
    finally:
        for w in writers:
            if w.poll() is None:
                w.kill()
                w.wait()
    # a writer that ended before the server was back (a loaded machine restarts it slowly) left the rest in
    # its journal: `runlab sync` (here its function) writes them, once
    from runlab.sdk.sync import replay_orphan_journals
    from runlab.store.remote.workspace import RemoteWorkspace

    replay_orphan_journals(RemoteWorkspace(server.url))  # type: ignore[arg-type]
    store = SqlStore(server.store_url)
    try:
        for run_id in run_ids:
            series = store.get_metric_series(run_id, "loss")
            assert list(series.values) == [float(i) for i in range(points)], run_id  # all, in order, once
            assert list(series.steps) == list(range(points))
            assert store.get_run(run_id).status == RunStatus.COMPLETED
    finally:
        store.close()


def test_a_script_that_only_logs_over_a_server_loads_only_what_logging_needs(
        server: ServerProcess, subprocess_env: dict[str, str]) -> None:
    """Process start-up is part of what a training script pays (issue 8): logging over HTTP builds no
    asset records, file clients, database layer or numpy."""
    script = textwrap.dedent("""
        import sys, runlab
        ws = runlab.Workspace.get("default", server=sys.argv[1])
        run = runlab.Experiment(ws, "light").start_logging()
        for i in range(100):
            run.log("loss", float(i))
        run.complete()
        heavy = ("runlab.core.assets", "runlab.store.remote.artifacts", "runlab.store.remote.objects",
                 "sqlalchemy", "numpy", "runlab.store.sql")
        print(sorted(m for m in heavy if m in sys.modules), run.get_status())
    """)
    done = subprocess.run([sys.executable, "-c", script, server.url], env=subprocess_env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]", "Completed"]


def test_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailableError, match="cannot reach the runlab server at http://127.0.0.1:9: nothing listens"):
        runlab.Workspace.get("default", server="http://127.0.0.1:9")
    with pytest.raises(ConfigError, match="not a runlab server URL"):
        runlab.Workspace.get("default", server="ftp://example")


def test_config_json_names_the_server(server: ServerProcess, tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / ".azureml").mkdir(parents=True)
    (project / ".azureml" / "config.json").write_text(json.dumps({"server": server.url, "workspace_name": "default"}))
    ws = runlab.Workspace.from_config(path=str(project))
    assert ws.name == "default" and server.url in repr(ws)
    written = ws.write_config(path=str(tmp_path / "other"))
    assert json.loads(written.read_text())["server"] == server.url
    (project / ".azureml" / "config.json").write_text(json.dumps({"server": server.url, "workspace_name": "nope"}))
    with pytest.raises(ConfigError, match="serves workspace 'default', not 'nope'"):
        runlab.Workspace.from_config(path=str(project))


def test_upgrade_says_which_migrations_ran_and_the_server_refuses_an_old_schema(tmp_path: Path) -> None:
    from runlab.cli.main import cli
    from runlab.store.sql.migrate import upgrade
    from runlab.store.sql.schema import SCHEMA_REVISION

    url = f"sqlite:///{tmp_path / 'up.db'}"
    first = CliRunner().invoke(cli, ["server", "upgrade", "--store", url])
    assert first.exit_code == 0, first.output
    assert "from revision (empty) to " + SCHEMA_REVISION in first.output and "0001" in first.output
    again = CliRunner().invoke(cli, ["server", "upgrade", "--store", url])
    assert "is up to date" in again.output

    old = f"sqlite:///{tmp_path / 'old.db'}"
    store = SqlStore(old, migrate=False)
    upgrade(store.engine, "0002")
    store.close()
    refused = CliRunner().invoke(cli, ["server", "--store", old, "--artifacts", str(tmp_path / "a"), "--no-auth"])
    assert refused.exit_code != 0 and "runlab server upgrade" in refused.output


def test_server_refuses_another_address_without_tokens(tmp_path: Path) -> None:
    from runlab.cli.main import cli

    out = CliRunner().invoke(cli, ["server", "--store", f"sqlite:///{tmp_path / 's.db'}", "--artifacts",
                                   str(tmp_path / "a"), "--host", "0.0.0.0", "--no-auth"])
    assert out.exit_code != 0 and "token" in out.output


def test_a_store_paired_with_another_workspace_s_files_is_refused(tmp_path: Path) -> None:
    from runlab.store.hosted import HostedWorkspace

    url = f"sqlite:///{tmp_path / 's.db'}"
    HostedWorkspace(url, tmp_path / "a").close()
    with pytest.raises(ConfigError, match="belongs to another workspace"):
        HostedWorkspace(url, tmp_path / "b")


# -- tokens over the client protocol ------------------------------------------------------------------


@pytest.fixture
def secured(tmp_path: Path, subprocess_env: dict[str, str]) -> tuple[ServerProcess, TokenStore]:
    url = f"sqlite:///{tmp_path / 'secure.db'}"
    store = SqlStore(url)
    tokens = TokenStore(store.engine)
    proc = ServerProcess(url, tmp_path / "artifacts", subprocess_env, auth=True)
    proc.start()
    yield proc, tokens
    proc.stop()
    store.close()


def test_tokens_decide_what_a_client_may_do(secured: tuple[ServerProcess, TokenStore]) -> None:
    server, tokens = secured
    writer, _ = tokens.create("ci", "writer")
    reader, _ = tokens.create("viewer", "reader")
    with pytest.raises(AuthenticationError, match="no token was sent"):
        runlab.Workspace.get("default", server=server.url, token="")
    with pytest.raises(AuthenticationError):
        runlab.Workspace.get("default", server=server.url, token=writer[:-3] + "abc")

    ws = runlab.Workspace.get("default", server=server.url, token=writer)
    mine = runlab.Experiment(ws, "e").start_logging()
    mine.log("loss", 1.0)
    other = runlab.Experiment(ws, "e").start_logging()
    mine.flush()

    as_reader = HttpStore(ServerClient(server.url, reader))
    assert as_reader.get_run(mine.id).run_id == mine.id  # reads
    with pytest.raises(PermissionDeniedError, match="read-only"):
        as_reader.set_tags(mine.id, {"x": "y"})
    with pytest.raises(PermissionDeniedError):
        as_reader.append_metrics(mine.id, [MetricBatch("loss", "scalar", [None], [time.time()], [2.0])])

    run_token, _ = tokens.create("run-token", "run", run_id=mine.id)
    as_run = HttpStore(ServerClient(server.url, run_token))
    as_run.set_tags(mine.id, {"written": "by its own token"})
    as_run.append_metrics(mine.id, [MetricBatch("loss", "scalar", [None], [time.time()], [0.5])])
    with pytest.raises(PermissionDeniedError, match="only that run"):
        as_run.set_tags(other.id, {"x": "y"})
    with pytest.raises(PermissionDeniedError):
        as_run.append_metrics(other.id, [MetricBatch("loss", "scalar", [None], [time.time()], [0.5])])
    with pytest.raises(PermissionDeniedError):
        as_run.list_runs()
    with pytest.raises(PermissionDeniedError):
        as_run.create_run("planted_1", "e", run_type=RunType.INTERACTIVE, status=RunStatus.RUNNING)
    with pytest.raises(PermissionDeniedError, match="server's own"):
        HttpStore(ServerClient(server.url, writer)).get_meta("server.session_secret")
    assert HttpStore(ServerClient(server.url, writer)).get_run(mine.id).tags["written"] == "by its own token"
    # the run's files: its own, yes; another run's, no
    client = ServerClient(server.url, run_token)
    client.request("PUT", f"/api/remote/runs/{mine.id}/files/outputs/a.txt", body=b"ok")
    with pytest.raises(PermissionDeniedError):
        client.request("PUT", f"/api/remote/runs/{other.id}/files/outputs/a.txt", body=b"no")
    mine.complete()
    other.complete()


def test_hostile_requests_are_refused(server: ServerProcess) -> None:
    ws = runlab.Workspace.get("default", server=server.url)
    run = runlab.Experiment(ws, "e").start_logging()
    base = f"{server.url}/api/remote/runs/{run.id}/files/"
    for name in ("../../etc/passwd", "%2e%2e/%2e%2e/x", "/etc/passwd", "a/../../b"):
        resp = httpx.put(base + name, content=b"x")
        assert resp.status_code in (400, 404, 422), (name, resp.status_code, resp.text)
    assert not (server.artifacts.parent / "etc").exists()
    body = codec.encode_batches(run.id, [MetricBatch("loss", "scalar", [None], [1.0], [1.0])], None)
    for bad in (body[:-4], b"RLMB1" + b"\xff\xff\xff\xff", b"not a batch", body + b"tail"):
        resp = httpx.post(f"{server.url}/api/store/append_metrics", content=bad)
        assert resp.status_code == 400, resp.text
    resp = httpx.post(f"{server.url}/api/store/__class__", json={"args": [], "kwargs": {}})
    assert resp.status_code == 404
    resp = httpx.post(f"{server.url}/api/store/get_run", json={"args": [{"__t": "os.system"}], "kwargs": {}})
    assert resp.status_code == 400 and "unknown record type" in resp.text
    run.complete()


def test_a_large_series_arrives_whole_in_pieces_with_its_length(server: ServerProcess) -> None:
    """A series' binary body goes out in 1 MiB pieces (written at once, 24 MB sat in asyncio's buffer)
    under one Content-Length: a 7 MB body crosses several piece boundaries, and steps, times and values
    of every point come back exactly, steps beyond 32 bits too."""
    import numpy as np

    ws = runlab.Workspace.get("default", server=server.url)
    run = runlab.Experiment(ws, "e").start_logging()
    n = 300_001
    values = np.random.default_rng(3).random(n)
    steps = np.arange(n, dtype=np.int64) * 3 + 2**40
    store = ws._folder.store  # type: ignore[attr-defined]
    for at in range(0, n, 50_000):
        part = slice(at, at + 50_000)
        store.append_metrics(run.id, [MetricBatch("loss", "scalar", steps[part].tolist(), (values[part] + 1e9).tolist(),
                                                  values[part].tolist())])
    run.complete()
    resp = httpx.post(f"{server.url}/api/store/get_metric_series", json={"args": [run.id, "loss"], "kwargs": {}},
                      headers={"Accept": "application/x-runlab-series"})
    assert resp.status_code == 200 and int(resp.headers["content-length"]) == len(resp.content) > 7_000_000
    back = codec.decode_series(resp.content)
    assert np.array_equal(back.steps, steps) and np.array_equal(back.values, values)
    assert np.array_equal(back.times, values + 1e9)
    assert np.array_equal(store.get_metric_series(run.id, "loss").values, values)


def test_credentials_file_must_be_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "credentials.json"
    save_credentials("http://127.0.0.1:8765", "rl_abc", path)
    assert (path.stat().st_mode & 0o777) == 0o600
    assert read_credentials(path) == {"http://127.0.0.1:8765": "rl_abc"}
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_credentials(path)


# -- PostgreSQL ------------------------------------------------------------------------------------


def test_tutorial_style_submit_on_postgresql(postgres_url: str, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    url = fresh_database(postgres_url)
    proc = ServerProcess(url, tmp_path / "artifacts", subprocess_env, auth=True)
    try:
        store = SqlStore(url)
        token, _ = TokenStore(store.engine).create("me", "writer")
        proc.start()
        ws = runlab.Workspace.get("default", server=proc.url, token=token)
        src = tmp_path / "src"
        src.mkdir()
        (src / "train.py").write_text("from runlab import Run\nrun = Run.get_context()\n"
                                      "for i in range(100):\n    run.log('loss', 1.0 / (i + 1))\n")
        run = runlab.Experiment(ws, "pg").submit(runlab.ScriptRunConfig(source_directory=str(src), script="train.py"))
        run.wait_for_completion(timeout_seconds=240)
        assert run.get_status() == "Completed"
        assert len(run.get_metrics()["loss"]) == 100
        assert [t.run_id for t in TokenStore(store.engine).list() if t.role == "run"] == []  # revoked at the end
        store.close()
    finally:
        proc.stop()
        drop_database(postgres_url, url)


def test_run_token_cannot_be_used_after_its_run(secured: tuple[ServerProcess, TokenStore], tmp_path: Path) -> None:
    server, tokens = secured
    writer, _ = tokens.create("ci", "writer")
    ws = runlab.Workspace.get("default", server=server.url, token=writer)
    src = tmp_path / "src"
    src.mkdir()
    (src / "leak.py").write_text("import os\nfrom runlab import Run\nrun = Run.get_context()\n"
                                 "open('outputs/token.txt', 'w').write(os.environ['RUNLAB_TOKEN'])\n")
    run = runlab.Experiment(ws, "leak").submit(runlab.ScriptRunConfig(source_directory=str(src), script="leak.py"))
    run.wait_for_completion(timeout_seconds=240)
    with run.open_file("outputs/token.txt") as f:
        leaked = f.read().decode()
    assert leaked.startswith("rl_") and leaked != writer
    with pytest.raises(AuthenticationError):
        HttpStore(ServerClient(server.url, leaked)).get_run(run.id)



def test_mlflow_client_logs_into_a_secured_server_with_a_token(secured: tuple[ServerProcess, TokenStore],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("mlflow")
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    server, tokens = secured
    writer, _ = tokens.create("mlflow-writer", "writer")
    reader, _ = tokens.create("mlflow-reader", "reader")
    for name, value in {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_DISABLE_TELEMETRY": "true",
                        "MLFLOW_ENABLE_ASYNC_LOGGING": "false", "MLFLOW_TRACKING_TOKEN": writer}.items():
        monkeypatch.setenv(name, value)
    client = MlflowClient(server.url)
    run = client.create_run(client.create_experiment("from-mlflow"))
    client.log_metric(run.info.run_id, "loss", 0.25, step=3)
    client.set_terminated(run.info.run_id)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", reader)
    assert [m.value for m in MlflowClient(server.url).get_metric_history(run.info.run_id, "loss")] == [0.25]
    with pytest.raises(MlflowException):
        MlflowClient(server.url).log_metric(run.info.run_id, "loss", 1.0)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "rl_000000000000_wrong")
    with pytest.raises(MlflowException):
        MlflowClient(server.url).get_run(run.info.run_id)
    ws = runlab.Workspace.get("default", server=server.url, token=writer)
    assert ws.get_run(run.info.run_id).get_metrics() == {"loss": 0.25}



def test_take_snapshot_reaches_the_server_and_restores_on_another_machine(
        tmp_path: Path, subprocess_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """run.take_snapshot() over HTTP sends the files to the server (it used to record an id only the
    taking machine's cache knew); restore_snapshot() elsewhere fetches them from the server."""
    import shutil
    import zipfile

    url = f"sqlite:///{tmp_path / 'server.db'}"
    store = SqlStore(url)
    writer, _ = TokenStore(store.engine).create("people", "writer")
    server = ServerProcess(url, tmp_path / "artifacts", subprocess_env, auth=True, extra=["--no-agents"])
    server.start()
    try:
        code = tmp_path / "code"
        (code / "pkg").mkdir(parents=True)
        (code / "train.py").write_text("print('hi')\n")
        (code / "pkg" / "util.py").write_text("X = 1\n")
        ws = runlab.Workspace.get("default", server=server.url, token=writer)
        run = runlab.Experiment(ws, "snap").start_logging()
        snapshot_id = run.take_snapshot(code)
        run.complete()
        assert (tmp_path / "artifacts" / "files" / "snapshots" / "manifests" / f"{snapshot_id}.json").is_file()

        monkeypatch.setenv("RUNLAB_HOME", str(tmp_path / "other-machine"))  # an empty local cache
        other = runlab.Workspace.get("default", server=server.url, token=writer)
        again = other.get_run(run.id)
        assert again.get_snapshot_id() == snapshot_id
        archive = again.restore_snapshot(path=tmp_path / "restored.zip")
        with zipfile.ZipFile(archive) as z:
            assert sorted(z.namelist()) == ["pkg/util.py", "train.py"]
            assert z.read("pkg/util.py") == b"X = 1\n"
        shutil.rmtree(tmp_path / "other-machine", ignore_errors=True)
    finally:
        server.stop()
        store.close()


def test_two_machines_agents_share_the_target_s_max_nodes(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """max_nodes is the cluster's: with two machines' agents serving one target of max_nodes=1, one
    run is claimed at a time (each agent used to run max_nodes of its own)."""
    url = f"sqlite:///{tmp_path / 'server.db'}"
    store = SqlStore(url)
    writer, _ = TokenStore(store.engine).create("agent-machines", "writer")
    server = ServerProcess(url, tmp_path / "artifacts", subprocess_env, auth=True, extra=["--no-agents"])
    server.start()
    agents: list[subprocess.Popen[bytes]] = []
    go = tmp_path / "go"
    try:
        ws = runlab.Workspace.get("default", server=server.url, token=writer)
        from runlab.sdk.compute import AmlCompute

        runlab.ComputeTarget.create(ws, "pool", AmlCompute.provisioning_configuration(max_nodes=1))
        for name in ("machine-a", "machine-b"):
            env = {**subprocess_env, "RUNLAB_HOME": str(tmp_path / name), "RUNLAB_TOKEN": writer,
                   "RUNLAB_AGENT_IDLE_WAIT": "0.2"}  # a quick look at the queue while idle
            agents.append(subprocess.Popen([sys.executable, "-m", "runlab.cli", "agent", "--server", server.url,
                                            "--target", "pool"], env=env, stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL, start_new_session=True))
        src = tmp_path / "src"
        src.mkdir()
        (src / "wait.py").write_text("import os, sys, time\nwhile not os.path.exists(sys.argv[1]):\n    time.sleep(0.05)\n")
        experiment = runlab.Experiment(ws, "shared-bound")
        runs = [experiment.submit(runlab.ScriptRunConfig(source_directory=str(src), script="wait.py", arguments=[str(go)],
                                                         compute_target="pool")) for _ in range(3)]
        taken = ("Preparing", "Starting", "Running", "Finalizing")
        deadline = time.monotonic() + 120
        while not any(r.get_status() == "Running" for r in runs):
            assert time.monotonic() < deadline, [r.get_status() for r in runs]
            time.sleep(0.1)
        most = 0
        for _ in range(30):  # both agents look at the queue every 0.2 s meanwhile
            most = max(most, sum(r.get_status() in taken for r in runs))
            time.sleep(0.1)
        assert most == 1, [r.get_status() for r in runs]
        go.touch()
        for r in runs:
            r.wait_for_completion(timeout_seconds=120)
            assert r.get_status() == "Completed", r.get_details()
    finally:
        for agent in agents:
            os.killpg(agent.pid, signal.SIGTERM)
            try:
                agent.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(agent.pid, signal.SIGKILL)
                agent.wait()
        server.stop()
        store.close()


def test_an_agent_on_another_machine_runs_the_server_s_runs(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """`runlab agent --server URL` with its own RUNLAB_HOME (another machine, as far as it can tell) claims
    the run through the API, fetches the snapshot, runs the script, ships its logs; the server starts no
    agent of its own (--no-agents)."""
    url = f"sqlite:///{tmp_path / 'server.db'}"
    store = SqlStore(url)
    tokens = TokenStore(store.engine)
    writer, _ = tokens.create("agent-machine", "writer")
    server = ServerProcess(url, tmp_path / "artifacts", subprocess_env, auth=True, extra=["--no-agents"])
    server.start()
    other_home = tmp_path / "other-machine"
    agent_env = {**subprocess_env, "RUNLAB_HOME": str(other_home), "RUNLAB_TOKEN": writer}
    agent: subprocess.Popen[bytes] | None = None
    try:
        ws = runlab.Workspace.get("default", server=server.url, token=writer)
        from runlab.sdk.compute import AmlCompute

        runlab.ComputeTarget.create(ws, "pool", AmlCompute.provisioning_configuration(max_nodes=1))
        agent = subprocess.Popen([sys.executable, "-m", "runlab.cli", "agent", "--server", server.url, "--target", "pool"],
                                 env=agent_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        src = tmp_path / "src"
        src.mkdir()
        (src / "job.py").write_text(textwrap.dedent("""
            import os
            from runlab import Run
            run = Run.get_context()
            print("running on the other machine, home", os.environ["RUNLAB_HOME"])
            print("token is the run's own:", os.environ["RUNLAB_TOKEN"] != os.environ.get("AGENT_TOKEN"))
            for i in range(5):
                run.log("loss", 1.0 / (i + 1))
            os.makedirs("outputs", exist_ok=True)
            open("outputs/result.txt", "w").write("done")
        """))
        run = runlab.Experiment(ws, "remote").submit(runlab.ScriptRunConfig(source_directory=str(src), script="job.py",
                                                                           compute_target="pool"))
        run.wait_for_completion(timeout_seconds=240)
        assert run.get_status() == "Completed", run.get_details()
        assert run.get_metrics()["loss"] == [1.0, 0.5, 1.0 / 3, 0.25, 0.2]
        with run.open_file("azureml-logs/70_driver_log.txt") as f:
            driver = f.read().decode()
        assert f"running on the other machine, home {other_home}" in driver
        with run.open_file("azureml-logs/55_agent_log.txt") as f:
            assert "claimed by agent" in f.read().decode()
        with run.open_file("outputs/result.txt") as f:
            assert f.read() == b"done"
        assert not (tmp_path / "artifacts" / "agents" / "pool.lock").exists()  # the server started no agent
        assert [t for t in TokenStore(store.engine).list() if t.role == "run"] == []  # revoked at the end
    finally:
        if agent is not None:
            os.killpg(agent.pid, signal.SIGTERM)
            try:
                agent.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(agent.pid, signal.SIGKILL)
                agent.wait()
            if agent.stdout is not None:
                agent.stdout.close()
        server.stop()
        store.close()


def test_a_server_s_files_folder_is_not_opened_as_a_workspace(tmp_path: Path) -> None:
    from runlab.store.hosted import HostedWorkspace

    HostedWorkspace(f"sqlite:///{tmp_path / 's.db'}", tmp_path / "files").close()
    with pytest.raises(ConfigError, match="connect to the server"):
        runlab.Workspace.from_path(tmp_path / "files").experiments
    assert not (tmp_path / "files" / "workspace.db").exists()


def test_sync_uploads_offline_runs_and_finishes_a_copy_that_was_cut_short(
        any_ws: runlab.Workspace, tmp_path: Path, subprocess_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """`runlab sync` into either kind of workspace; a sync that stops half-way (the server went away
    while files were copied) leaves the run active there, and the next sync completes it once."""
    from runlab.core.settings import load_settings
    from runlab.sdk.sync import sync_offline_runs
    from runlab.store.folder import WorkspaceFolder

    script = tmp_path / "offline.py"
    script.write_text("from runlab import Run\nrun = Run.get_context()\nfor i in range(20):\n    run.log('loss', float(i))\n"
                      "run.log('acc', 0.5)\nrun.upload_file('outputs/a.txt', __file__)\nprint(run.id)\n")
    out = subprocess.run([sys.executable, str(script)], env=subprocess_env, capture_output=True, text=True, check=True)
    run_id = out.stdout.strip().splitlines()[-1]
    source = WorkspaceFolder(load_settings().offline_root)
    target = any_ws.folder

    real_put = type(target.artifacts).put_stream

    def failing_put(self: object, *args: object) -> None:
        raise StoreUnavailableError("the server went away (test)")

    monkeypatch.setattr(type(target.artifacts), "put_stream", failing_put)
    with pytest.raises(StoreUnavailableError):
        sync_offline_runs(source, target)
    assert any_ws.get_run(run_id).get_status() == "Running"  # begun, not ended
    monkeypatch.setattr(type(target.artifacts), "put_stream", real_put)
    synced = sync_offline_runs(source, target)
    assert [s.run_id for s in synced] == [run_id] and synced[0].points == 0  # its metrics were there already
    run = any_ws.get_run(run_id)
    assert run.get_status() == "Completed"
    assert run.get_metrics() == {"loss": [float(i) for i in range(20)], "acc": 0.5}  # once each
    assert "outputs/a.txt" in run.get_file_names()
    assert sync_offline_runs(source, target) == []  # nothing left to do


def test_two_server_processes_serve_one_store(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """--workers 2: two processes on one port and one store; requests land on either, and a token
    revoked through one is refused by both (within the verification cache's re-check)."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    store = SqlStore(url)
    tokens = TokenStore(store.engine)
    writer, _ = tokens.create("ci", "writer")
    server = ServerProcess(url, tmp_path / "artifacts", subprocess_env, auth=True, workers=2)
    server.start()
    try:
        ws = runlab.Workspace.get("default", server=server.url, token=writer)
        runs = []
        for _ in range(4):  # each run's client opens connections of its own: they land on either process
            run = runlab.Experiment(ws, "shared").start_logging()
            for i in range(10):
                run.log("i", float(i))
            run.complete()
            runs.append(run.id)
        assert [len(ws.get_run(r).get_metrics()["i"]) for r in runs] == [10, 10, 10, 10]
        tokens.revoke("ci")
        deadline = time.monotonic() + 30
        while True:  # each process re-checks a cached token within seconds
            refused = 0
            for _ in range(6):
                try:
                    HttpStore(ServerClient(server.url, writer)).list_runs()
                except AuthenticationError:
                    refused += 1
            if refused == 6:
                break
            assert time.monotonic() < deadline, "a revoked token still worked in one of the processes"
            time.sleep(1)
    finally:
        server.stop()
        store.close()


def test_a_large_batch_goes_in_parts_and_a_resend_after_a_cut_writes_each_point_once(
        server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    from runlab.store.remote import store as remote_store

    monkeypatch.setattr(remote_store, "POINTS_PER_REQUEST", 10)
    http = HttpStore(ServerClient(server.url))
    http.create_run("big_1", "e", run_type=RunType.INTERACTIVE, status=RunStatus.RUNNING)
    batch = [MetricBatch("loss", "scalar", [None] * 35, [1.0] * 35, [float(i) for i in range(35)])]
    http.append_metrics("big_1", batch, batch_id="X")
    http.append_metrics("big_1", batch, batch_id="X")  # sent again whole: every part is skipped
    assert list(http.get_metric_series("big_1", "loss").values) == [float(i) for i in range(35)]

    real = ServerClient.request
    calls = {"n": 0}

    def cut_at_the_third(self: ServerClient, method: str, path: str, **kwargs: object) -> object:
        if path == "/api/store/append_metrics":
            calls["n"] += 1
            if calls["n"] == 3:
                raise StoreUnavailableError("the connection was cut (test)")
        return real(self, method, path, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ServerClient, "request", cut_at_the_third)
    with pytest.raises(StoreUnavailableError):
        http.append_metrics("big_1", batch, batch_id="Y")  # two parts written, then the cut
    monkeypatch.setattr(ServerClient, "request", real)
    http.append_metrics("big_1", batch, batch_id="Y")  # the journal's replay: the rest only
    values = list(http.get_metric_series("big_1", "loss").values)
    assert values == [float(i) for i in range(35)] * 2


def test_series_come_back_as_logged_whatever_their_values(server: ServerProcess) -> None:
    """get_metric_series over the binary response: floats, ints, strings, inf and NaN, and empty steps."""
    import math

    http = HttpStore(ServerClient(server.url))
    http.create_run("s_1", "e", run_type=RunType.INTERACTIVE, status=RunStatus.RUNNING)
    http.append_metrics("s_1", [
        MetricBatch("f", "scalar", [None, 5, None], [1.0, 2.0, 3.0], [0.5, math.inf, math.nan]),
        MetricBatch("i", "scalar", [None] * 3, [1.0, 2.0, 3.0], [1, 2, 3]),
        MetricBatch("s", "scalar", [None] * 2, [1.0, 2.0], ["a", "b"]),
    ])
    f = http.get_metric_series("s_1", "f")
    assert list(f.steps) == [0, 5, 2] and f.values[0] == 0.5 and math.isinf(f.values[1]) and math.isnan(f.values[2])
    assert list(http.get_metric_series("s_1", "i").values) == [1, 2, 3]
    assert list(http.get_metric_series("s_1", "s").values) == ["a", "b"]
    with pytest.raises(runlab.core.errors.NotFoundError):
        http.get_metric_series("s_1", "nope")
    # any other client gets the JSON answer of the store protocol
    resp = httpx.post(f"{server.url}/api/store/get_metric_series", json={"args": ["s_1", "i"], "kwargs": {}})
    assert resp.status_code == 200 and codec.loads(resp.content)["result"].name == "i"
