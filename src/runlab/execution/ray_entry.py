"""The entrypoint of a runlab run's Ray job: ``python -m runlab.execution.ray_entry -- COMMAND...``.

Ray unpacks a job's ``working_dir`` once per node and content, and jobs of the same snapshot share
it; a run must not see another's ``./outputs``. So this copies the working directory to a folder of
the run's own, runs COMMAND there (stdout and stderr are the job's log), forwards SIGTERM and SIGINT
(``stop_job``) to it, uploads ``./outputs`` to the run (``RUNLAB_WORKSPACE``/``RUNLAB_SERVER`` and
``RUNLAB_RUN_ID``, set by the Ray target's agent), removes the folder and exits with COMMAND's code.

``--ranks N`` (a PyTorchConfiguration(process_count=N) run, on one node): COMMAND runs as N ranks under the
local pool's launcher (:mod:`runlab.execution.distributed`: torch.distributed's variables, each line
prefixed ``[rank i]``, a failing rank stops the others); the last line then names the rank that failed.

``--nodes M --bundle JSON`` (PyTorchConfiguration(process_count=N, node_count=M), M > 1): this job's driver
asks the cluster for a placement group of M bundles (``STRICT_SPREAD``: one per node; JSON is one bundle's
resources) and starts one actor in each (:class:`NodeRunner`), which copies the job's working directory on
its node and starts that node's N/M ranks there with torch.distributed's variables (``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE``, ``NODE_RANK``, ``MASTER_ADDR`` = the node of rank 0, ``MASTER_PORT`` free there). The driver
prints each rank's lines prefixed ``[rank i]`` (the job's log); the first rank that exits non-zero stops
the others and its line ``runlab: rank i of N exited with code C: ...`` ends the log. Each node uploads
its ``./outputs``.

``--inputs`` (the run has dataset inputs): before COMMAND starts, each input is made available on this node
as the local pool's agent does (:func:`runlab.execution.inputs.prepare_inputs`: copied from its datastores
into the node's data cache, read-only; the workspace's own datastore through the server with the run's
token, which reads exactly its inputs' files; S3 directly), ``path_on_compute`` links are made, the
script's input arguments (``as_mount()``/``as_download()``) become the local paths and the input variables
are set. The run's token may not record inputs, so the line ``runlab: inputs ready: {json}`` tells the
agent the paths and what was consumed; the agent records them (``run_inputs``, ``inputDatasetPaths`` for
``run.input_datasets``) and this waits until it has before COMMAND starts. An input that cannot be made
available prints ``runlab: preparing the inputs failed (TYPE): ...`` and exits with code 71.

``--inputs`` with ``--nodes M``: each node's :class:`NodeRunner` makes the inputs available there
(:meth:`NodeRunner.prepare`, all nodes at once: each its own data cache and its own copy of the working
directory), and its ranks get that node's paths (arguments and variables). The driver prints the
``inputs ready`` line of rank 0's node (the run's ``run.input_datasets``; what was consumed is recorded
once) and starts the ranks once the agent has recorded it. An input that cannot be made available on a node
prints ``runlab: preparing the inputs failed (TYPE): node i (ranks ...): input 'NAME': ...`` and no rank
starts (exit code 71).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

UPLOAD_FAILED = 70  # exit code when the script succeeded but its outputs could not be uploaded
INPUTS_FAILED = 71  # exit code when an input could not be made available (the script did not start)
INPUTS_READY = "runlab: inputs ready: "  # + JSON {"paths": {name: path}, "records": [RunInputRecord...]}
INPUTS_FAILED_LINE = "runlab: preparing the inputs failed"
PLACEMENT_FAILED = 72  # exit code when the cluster could not place the run's nodes
PLACEMENT_TIMEOUT_S = 300.0  # RUNLAB_RAY_PLACEMENT_TIMEOUT: how long the driver waits for M nodes
RANK_GRACE_S = 10.0  # a failed rank's peers get this long after SIGTERM before SIGKILL
INPUTS_WAIT_S = 120.0  # for the agent to record the inputs' paths (it reads the job's log about every second)


def _backend() -> tuple[Any, str] | None:
    """The run's workspace (the server's, with the run's token, or a folder) and the run's id."""
    from runlab.core.settings import RUNLAB_RUN_ID, RUNLAB_SERVER, RUNLAB_WORKSPACE

    workspace, run_id, server = RUNLAB_WORKSPACE.read(), RUNLAB_RUN_ID.read(), RUNLAB_SERVER.read()
    if not workspace or not run_id:
        return None
    backend: Any
    if server:
        from runlab.store.remote.workspace import RemoteWorkspace

        backend = RemoteWorkspace(server, workspace_id=workspace)
    else:
        from runlab.store.folder import WorkspaceFolder

        backend = WorkspaceFolder(workspace)
    return backend, run_id


def _upload_outputs(folder: Path) -> int:
    """Upload this node's ./outputs (store.paths.folder_files: as the local agent, a link that leads
    outside it is not followed, and stderr, the driver log, says so); the number of files."""
    from runlab.store.paths import folder_files

    outputs = folder / "outputs"
    if not outputs.is_dir():
        return 0
    files, outside = folder_files(outputs)
    for rel, target in outside:
        print(f"runlab: outputs/{rel} is a link to {target}, outside outputs/: not uploaded", file=sys.stderr)
    if not files:
        return 0
    from runlab.tracking.run import TrackedRun

    found = _backend()
    if found is None:
        print("runlab: RUNLAB_WORKSPACE and RUNLAB_RUN_ID are not set: outputs/ not uploaded", file=sys.stderr)
        return 0
    run = TrackedRun(found[0], found[1])
    return len([run.upload_file(f"outputs/{rel}", path) for rel, path in files])


class _NodeStore:
    """The run's store as a job on a node sees it: reads go to it; what only an agent may write (the
    inputs consumed, the inputs' paths) is kept here, for the agent to record."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.records: list[Any] = []
        self.paths: dict[str, str] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def record_run_inputs(self, run_id: str, inputs: Any) -> None:
        self.records.extend(inputs)  # once per prepare_inputs: each input on its own (NodeRunner) adds up

    def update_definition(self, run_id: str, changes: dict[str, Any]) -> None:
        self.paths = dict(changes.get("inputDatasetPaths") or {})


@dataclasses.dataclass
class _NodeFolder:
    store: _NodeStore
    datastores_dir: Any


def _say(line: str) -> None:
    print(f"runlab: {line}", flush=True)


class InputFailed(Exception):
    """An input that could not be made available on a node: its name, and the error's type and text."""

    def __init__(self, name: str, kind: str, text: str) -> None:
        super().__init__(f"input {name!r}: {text}")
        self.name, self.kind, self.text = name, kind, text


def _make_inputs(own: Path, args: list[str], cancel: threading.Event, say: Callable[[str], None],
                 one_by_one: bool = False) -> tuple[list[str], dict[str, str], Any, dict[str, Any], Any, str]:
    """Make the run's inputs available on this node in ``own`` (see the module's text): the command with
    its input arguments expanded, the input variables, the :class:`PreparedInputs`, what the agent records
    (``{"paths", "records"}``), the run's store and id. ``one_by_one``: each input on its own, so that one
    that cannot be made available raises :class:`InputFailed` naming it."""
    from runlab.core.errors import RunlabError
    from runlab.core.settings import load_settings
    from runlab.execution.inputs import PreparedInputs, prepare_inputs
    from runlab.store.datacache import DataCache

    found = _backend()
    if found is None:
        raise RunlabError("RUNLAB_WORKSPACE and RUNLAB_RUN_ID are not set: the run's inputs cannot be read")
    backend, run_id = found
    definition = dict(backend.store.get_run(run_id).definition or {})
    node = _NodeFolder(_NodeStore(backend.store), backend.datastores_dir)
    cache = DataCache(load_settings().data_cache_dir)
    if not one_by_one:
        inputs = prepare_inputs(node, run_id, definition, cancel=cancel, say=say, cache=cache)  # type: ignore[arg-type]
    else:
        inputs = PreparedInputs(node, run_id)  # type: ignore[arg-type]
        for item in definition.get("inputDatasets") or ():
            name = str(item.get("name")) if isinstance(item, dict) else repr(item)
            try:
                one = prepare_inputs(node, run_id, {**definition, "inputDatasets": [item]}, cancel=cancel,  # type: ignore[arg-type]
                                     say=say, cache=cache)
            except Exception as exc:  # noqa: BLE001 (store, network, datastore: named for the driver)
                if cancel.is_set():
                    raise
                raise InputFailed(name, type(exc).__name__, " ".join(str(exc).split()) or repr(exc)) from exc
            inputs.specs.update(one.specs)
            inputs.values.update(one.values)
            inputs.cache_root = one.cache_root or inputs.cache_root
    for line in inputs.place(own):  # it records the paths in node.store, for the agent
        say(line)
    env = inputs.variables(os.environ)
    if not definition.get("command") and len(args) >= 2:  # python SCRIPT ARGUMENTS...
        args = [*args[:2], *inputs.expand(definition)]
    for line in inputs.driver_lines():
        say(line)
    say(f"arguments as submitted: {json.dumps(definition.get('arguments', []))}")
    say(f"arguments after expansion: {json.dumps(args[2:])}")
    ready = {"paths": node.store.paths, "records": [dataclasses.asdict(r) for r in node.store.records]}
    return args, env, inputs, ready, backend.store, run_id


def _wait_recorded(store: Any, run_id: str, paths: dict[str, str], cancel: threading.Event) -> None:
    """Wait until the agent has recorded the inputs' paths (run.input_datasets reads them from the run's
    definition, which only the agent may write)."""
    deadline = time.monotonic() + INPUTS_WAIT_S
    while paths:
        recorded = (store.get_run(run_id).definition or {}).get("inputDatasetPaths") or {}
        if recorded == paths:
            break
        if time.monotonic() > deadline or cancel.is_set():
            _say(f"the agent did not record the inputs' paths in {INPUTS_WAIT_S:.0f} s: run.input_datasets "
                 "may not have them")
            break
        time.sleep(0.1)


def _prepare_inputs(own: Path, args: list[str], cancel: threading.Event) -> tuple[list[str], dict[str, str], Any]:
    """Make the run's inputs available on this node (see the module's text): the command with its input
    arguments expanded, the input variables, and the :class:`PreparedInputs`."""
    args, env, inputs, ready, store, run_id = _make_inputs(own, args, cancel, _say)
    print(INPUTS_READY + json.dumps(ready), flush=True)
    _wait_recorded(store, run_id, ready["paths"], cancel)
    return args, env, inputs


class NodeRunner:
    """One node's part of a multi-node run (a Ray actor in one bundle of the run's placement group): its
    ranks, started in a copy of the job's working directory on that node, their lines kept for ``poll``."""

    def __init__(self, node_rank: int) -> None:
        self.node_rank = node_rank
        self.own = Path(tempfile.mkdtemp(prefix=f"runlab-{os.environ.get('RUNLAB_RUN_ID', 'run')[:40]}-n{node_rank}-"))
        shutil.copytree(Path.cwd(), self.own, dirs_exist_ok=True, symlinks=True)
        (self.own / "outputs").mkdir(exist_ok=True)
        (self.own / "logs").mkdir(exist_ok=True)
        self.lock = threading.Lock()
        self.lines: list[str] = []
        self.codes: dict[int, int] = {}
        self.tails: dict[int, list[str]] = {}
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.threads: list[threading.Thread] = []
        self.cancel = threading.Event()  # stop() while the inputs are prepared
        self.args: list[str] | None = None  # the command with this node's input paths (prepare)
        self.variables: dict[str, str] = {}
        self.inputs: Any = None

    def prepare(self, args: list[str]) -> dict[str, Any]:
        """Make the run's inputs available on this node, in its data cache and its copy of the working
        directory, for its ranks (their arguments and variables name this node's paths). What the node said
        goes to ``poll``'s lines, ``runlab: node i: ...``. The answer: ``{"ready": {"paths", "records"}}``, or
        ``{"failed": {"input", "type", "message"}}`` (or ``{"canceled": True}``)."""

        def say(line: str) -> None:
            with self.lock:
                self.lines.append(f"runlab: node {self.node_rank}: {line}")

        try:
            self.args, self.variables, self.inputs, ready, _store, _run_id = _make_inputs(
                self.own, list(args), self.cancel, say, one_by_one=True)
        except InputFailed as exc:
            return {"failed": {"input": exc.name, "type": exc.kind, "message": exc.text}}
        except Exception as exc:  # noqa: BLE001 (store, network, a path_on_compute: said, and no rank starts)
            if self.cancel.is_set():
                return {"canceled": True}
            return {"failed": {"input": None, "type": type(exc).__name__,
                               "message": " ".join(str(exc).split()) or repr(exc)}}
        return {"ready": ready}

    def address(self) -> tuple[str, int, str]:
        """This node's address, a free port on it (MASTER_PORT when it holds rank 0) and its Ray node id."""
        import socket

        import ray

        with socket.socket() as sock:
            sock.bind(("", 0))
            port = int(sock.getsockname()[1])
        return ray.util.get_node_ip_address(), port, ray.get_runtime_context().get_node_id()  # type: ignore[no-untyped-call]

    def start(self, args: list[str], world: int, per_node: int, master_addr: str, master_port: int) -> list[int]:
        import ray

        node_id = ray.get_runtime_context().get_node_id()
        if self.args is not None:  # prepare: this node's input paths
            args = self.args
        if self.inputs is not None:
            args = self.inputs.protect(args)  # root: the data cache is mounted read-only for the script
        started = []
        for local in range(per_node):
            rank = self.node_rank * per_node + local
            env = {**os.environ, **self.variables, "RANK": str(rank), "LOCAL_RANK": str(local), "WORLD_SIZE": str(world),
                   "LOCAL_WORLD_SIZE": str(per_node), "NODE_RANK": str(self.node_rank),
                   "GROUP_RANK": str(self.node_rank), "MASTER_ADDR": master_addr, "MASTER_PORT": str(master_port),
                   "RUNLAB_RAY_NODE_ID": node_id}
            ready = threading.Event()
            thread = threading.Thread(target=self._rank, args=(rank, args, env, ready), daemon=True)
            thread.start()
            ready.wait(30)
            self.threads.append(thread)
            started.append(rank)
        return started

    def _rank(self, rank: int, args: list[str], env: dict[str, str], ready: threading.Event) -> None:
        """Start rank ``rank`` and follow it (in this thread, which lives as long as it: its PDEATHSIG)."""
        from runlab.execution.processes import parent_death_signal

        prefix = f"[rank {rank}] "
        tail = self.tails.setdefault(rank, [])
        try:
            proc = subprocess.Popen(args, cwd=self.own, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, preexec_fn=parent_death_signal())
        except OSError as exc:
            with self.lock:
                self.lines.append(f"{prefix}cannot start {args[0]}: {exc}")
                tail.append(str(exc))
                self.codes[rank] = 127
            ready.set()
            return
        self.procs[rank] = proc
        ready.set()

        def pump(stream: Any, is_err: bool) -> None:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", errors="replace").rstrip("\n")
                with self.lock:
                    self.lines.append(prefix + line)
                    if is_err:
                        tail.append(line)
                        del tail[:-30]

        err = threading.Thread(target=pump, args=(proc.stderr, True), daemon=True)
        err.start()
        pump(proc.stdout, False)
        code = proc.wait()
        err.join(timeout=5)
        with self.lock:
            self.codes[rank] = code

    def poll(self) -> tuple[list[str], dict[int, int], dict[int, str]]:
        """The lines since the last poll, the exit codes so far, and the end of each ended rank's stderr."""
        with self.lock:
            lines, self.lines = self.lines, []
            tails = {r: (self.tails.get(r) or ["no output on stderr"])[-1] for r in self.codes}
            return lines, dict(self.codes), tails

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.cancel.set()
        for rank, proc in self.procs.items():
            if rank not in self.codes:
                try:
                    proc.send_signal(sig)
                except ProcessLookupError:
                    pass

    def finish(self) -> int:
        """Upload this node's ./outputs to the run and remove its folder: the number of files."""
        try:
            return _upload_outputs(self.own) if self.procs else 0
        finally:
            if self.inputs is not None:
                self.inputs.remove_links()
            shutil.rmtree(self.own, ignore_errors=True)


def _node_ranks(node: int, per_node: int) -> str:
    first, last = node * per_node, (node + 1) * per_node - 1
    return f"node {node} (rank {first})" if first == last else f"node {node} (ranks {first} to {last})"


def _prepare_nodes(runners: list[Any], per_node: int, args: list[str], stopped: threading.Event) -> int | None:
    """Each node makes the run's inputs available (:meth:`NodeRunner.prepare`, all at once); the paths of
    rank 0's node are the run's (the ``inputs ready`` line, which the agent records). None when every node
    has them, else the exit code: an input that cannot be made available on a node fails the run naming
    the node and the input, before any rank starts."""
    import ray

    def relay() -> None:
        for lines, _codes, _tails in ray.get([r.poll.remote() for r in runners], timeout=60):
            if lines:
                sys.stdout.write("".join(line + "\n" for line in lines))
        sys.stdout.flush()

    refs = [r.prepare.remote(args) for r in runners]
    while True:
        done, _ = ray.wait(refs, num_returns=len(refs), timeout=0.5)
        relay()
        if len(done) == len(refs):
            break
        if stopped.is_set():
            for r in runners:
                r.stop.remote()
            print("runlab: stopped while preparing the inputs", file=sys.stderr, flush=True)
            return 128 + signal.SIGTERM
    answers = ray.get(refs)
    relay()
    failed = [(i, a["failed"]) for i, a in enumerate(answers) if "failed" in a]
    if failed:
        node, first = failed[0]
        what = f"input {first['input']!r}: " if first.get("input") else ""
        also = [i for i, _ in failed[1:]]
        more = f" (on node{'s' if len(also) > 1 else ''} {', '.join(map(str, also))} too)" if also else ""
        print(f"{INPUTS_FAILED_LINE} ({first['type']}): {_node_ranks(node, per_node)}{more}: {what}"
              f"{first['message']}", file=sys.stderr, flush=True)
        return INPUTS_FAILED
    if stopped.is_set() or any("canceled" in a for a in answers):
        print("runlab: stopped while preparing the inputs", file=sys.stderr, flush=True)
        return 128 + signal.SIGTERM
    ready = answers[0]["ready"]
    _say(f"inputs ready on all {len(runners)} nodes; the run records the paths of node 0 (rank 0's)")
    print(INPUTS_READY + json.dumps(ready), flush=True)
    found = _backend()
    if found is not None:
        _wait_recorded(found[0].store, found[1], dict(ready.get("paths") or {}), stopped)
    return None


def _run_nodes(nodes: int, ranks: int, bundle: dict[str, float], args: list[str], stopped: threading.Event,
               with_inputs: bool = False) -> int:
    """A run of ``ranks`` ranks over ``nodes`` Ray nodes (see the module's text): its exit code."""
    from ray.exceptions import GetTimeoutError
    from ray.util.placement_group import placement_group, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    import ray

    per_node = ranks // nodes
    ray.init(log_to_driver=False)  # the ranks' lines come through NodeRunner.poll, prefixed by rank
    group = placement_group([dict(bundle) for _ in range(nodes)], strategy="STRICT_SPREAD")
    wait_s = float(os.environ.get("RUNLAB_RAY_PLACEMENT_TIMEOUT") or PLACEMENT_TIMEOUT_S)
    _say(f"distributed: {ranks} ranks over {nodes} Ray nodes ({per_node} each): waiting for a placement group of "
         f"{nodes} bundles {json.dumps(bundle)} (STRICT_SPREAD: one per node)")
    try:
        ready = group.ready()
        deadline = time.monotonic() + wait_s
        while True:
            try:
                ray.get(ready, timeout=1.0)
                break
            except GetTimeoutError:
                if stopped.is_set():
                    return 128 + signal.SIGTERM
                if time.monotonic() > deadline:
                    print(f"runlab: the Ray cluster could not place {nodes} nodes with {json.dumps(bundle)} free on "
                          f"each (STRICT_SPREAD: one bundle per node) in {wait_s:.0f} s: it has fewer nodes, or "
                          "they are busy; lower node_count, or add nodes", file=sys.stderr, flush=True)
                    return PLACEMENT_FAILED
        actor: Any = ray.remote(NodeRunner)
        options: dict[str, Any] = {"max_concurrency": 4, "num_cpus": bundle.get("CPU", 0),
                                   "num_gpus": bundle.get("GPU", 0)}
        if bundle.get("memory"):
            options["memory"] = bundle["memory"]
        custom = {k: v for k, v in bundle.items() if k not in ("CPU", "GPU", "memory")}
        if custom:
            options["resources"] = custom
        runners: list[Any] = [actor.options(scheduling_strategy=PlacementGroupSchedulingStrategy(
            group, placement_group_bundle_index=i), **options).remote(i) for i in range(nodes)]
        addresses = ray.get([r.address.remote() for r in runners])
        master_addr, master_port, _ = addresses[0]
        for i, (ip, _port, node_id) in enumerate(addresses):
            _say(f"node {i} (ranks {i * per_node} to {(i + 1) * per_node - 1}): {ip}, Ray node {node_id[:12]}")
        _say(f"MASTER_ADDR={master_addr} (the node of rank 0), MASTER_PORT={master_port}, WORLD_SIZE={ranks}; "
             "each line is prefixed [rank i]")
        if with_inputs:
            code = _prepare_nodes(runners, per_node, args, stopped)
            if code is not None:  # no rank started: each node removes its folder
                ray.get([r.finish.remote() for r in runners], timeout=120)
                return code
        if stopped.is_set():
            ray.get([r.finish.remote() for r in runners], timeout=120)
            return 128 + signal.SIGTERM
        ray.get([r.start.remote(args, ranks, per_node, master_addr, master_port) for r in runners])
        failed: tuple[int, int, str] | None = None
        stop_sent: float | None = None
        killed = False
        while True:
            polled = ray.get([r.poll.remote() for r in runners], timeout=60)
            codes: dict[int, int] = {}
            tails: dict[int, str] = {}
            for lines, node_codes, node_tails in polled:
                if lines:
                    sys.stdout.write("".join(line + "\n" for line in lines))
                codes.update(node_codes)
                tails.update(node_tails)
            sys.stdout.flush()
            if failed is None:
                bad = sorted((r, c) for r, c in codes.items() if c != 0)
                if bad:
                    failed = (bad[0][0], bad[0][1], tails.get(bad[0][0], ""))
            if len(codes) == ranks:
                break
            if stop_sent is None and (failed is not None or stopped.is_set()):
                stop_sent = time.monotonic()
                for r in runners:
                    r.stop.remote()
            elif stop_sent is not None and not killed and time.monotonic() - stop_sent > RANK_GRACE_S:
                killed = True
                for r in runners:
                    r.stop.remote(signal.SIGKILL)
            time.sleep(0.2)
        uploaded = sum(ray.get([r.finish.remote() for r in runners], timeout=300))
        if uploaded:
            print(f"runlab: uploaded {uploaded} output file(s)", file=sys.stderr, flush=True)
        if failed is not None:
            rank, code, last = failed
            code = code if code >= 0 else 128 - code
            print(f"runlab: rank {rank} of {ranks} exited with code {code}: {last}", file=sys.stderr, flush=True)
            return code
        return 128 + signal.SIGTERM if stopped.is_set() else 0
    finally:
        try:
            remove_placement_group(group)
        except Exception:  # noqa: BLE001 (the cluster is going away: nothing to free)
            pass


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    ranks, nodes, with_inputs, bundle = 1, 1, False, {}
    while True:
        if args[:1] == ["--ranks"] and len(args) > 1 and args[1].isdigit():
            ranks, args = max(1, int(args[1])), args[2:]
        elif args[:1] == ["--nodes"] and len(args) > 1 and args[1].isdigit():
            nodes, args = max(1, int(args[1])), args[2:]
        elif args[:1] == ["--bundle"] and len(args) > 1:
            bundle, args = dict(json.loads(args[1])), args[2:]
        elif args[:1] == ["--inputs"]:
            with_inputs, args = True, args[1:]
        else:
            break
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print("usage: python -m runlab.execution.ray_entry [--ranks N] [--nodes M --bundle JSON] [--inputs] -- "
              "COMMAND...", file=sys.stderr)
        return 2
    source = Path.cwd()
    run_id = os.environ.get("RUNLAB_RUN_ID", "run")
    own = Path(tempfile.mkdtemp(prefix=f"runlab-{run_id[:40]}-"))
    child: subprocess.Popen[bytes] | None = None
    stopped = threading.Event()

    def forward(sig: int, _frame: Any) -> None:
        stopped.set()  # while the inputs are prepared: that stops
        if child is None:
            return
        try:
            child.send_signal(sig)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    inputs: Any = None
    try:
        shutil.copytree(source, own, dirs_exist_ok=True, symlinks=True)
        (own / "outputs").mkdir(exist_ok=True)
        (own / "logs").mkdir(exist_ok=True)
        env: dict[str, str] | None = None
        if with_inputs and nodes == 1:  # of a run over several nodes, each node prepares them (_run_nodes)
            try:
                args, variables, inputs = _prepare_inputs(own, args, stopped)
            except Exception as exc:  # noqa: BLE001 (store, network, datastore: say it and fail the run)
                if stopped.is_set():
                    print("runlab: stopped while preparing the inputs", file=sys.stderr, flush=True)
                    return 128 + signal.SIGTERM
                text = " ".join(str(exc).split()) or repr(exc)
                print(f"{INPUTS_FAILED_LINE} ({type(exc).__name__}): {text}", file=sys.stderr, flush=True)
                return INPUTS_FAILED
            env = {**os.environ, **variables}
        if nodes > 1:
            shutil.rmtree(own, ignore_errors=True)  # each node copies the working directory itself
            return _run_nodes(nodes, ranks, bundle, args, stopped, with_inputs)
        status = own.with_name(own.name + ".ranks.json")
        if ranks > 1:  # the local pool's launcher: N ranks on this node, torch.distributed's variables, [rank i]
            from runlab.execution.distributed import launcher_argv

            args = launcher_argv(ranks, status, args)
        if inputs is not None:
            args = inputs.protect(args)  # root: the data cache is mounted read-only for the script
        if stopped.is_set():
            return 128 + signal.SIGTERM
        child = subprocess.Popen(args, cwd=own, env=env, start_new_session=False)
        code = child.wait()
        sys.stdout.flush()
        if ranks > 1 and code != 0:
            from runlab.execution.distributed import read_status

            failed = read_status(status)
            if failed is not None and isinstance(failed.get("rank"), int):
                code = int(failed.get("exit_code", code))
                tail = [line for line in str(failed.get("stderr_tail", "")).splitlines() if line.strip()]
                print(f"runlab: rank {failed['rank']} of {ranks} exited with code {code}: "
                      f"{tail[-1] if tail else 'no output on stderr'}", file=sys.stderr, flush=True)
            status.unlink(missing_ok=True)
        try:
            count = _upload_outputs(own)
            if count:
                print(f"runlab: uploaded {count} output file(s)", file=sys.stderr, flush=True)
        except Exception as exc:  # noqa: BLE001 (store, network: say it and fail the run)
            print(f"runlab: uploading outputs/ failed: {exc}", file=sys.stderr, flush=True)
            if code == 0:
                code = UPLOAD_FAILED
        return code if code >= 0 else 128 - code
    finally:
        if inputs is not None:
            inputs.remove_links()
        shutil.rmtree(own, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
