"""The entrypoint of a runlab run's Ray job: ``python -m runlab.execution.ray_entry -- COMMAND...``.

Ray unpacks a job's ``working_dir`` once per node and content, and jobs of the same snapshot share
it; a run must not see another's ``./outputs``. So this copies the working directory to a folder of
the run's own, runs COMMAND there (stdout and stderr are the job's log), forwards SIGTERM and SIGINT
(``stop_job``) to it, uploads ``./outputs`` to the run (``RUNLAB_WORKSPACE``/``RUNLAB_SERVER`` and
``RUNLAB_RUN_ID``, set by the Ray target's agent), removes the folder and exits with COMMAND's code.

``--ranks N`` (a PyTorchConfiguration(process_count=N) run, on one node): COMMAND runs as N ranks under the
local pool's launcher (:mod:`runlab.execution.distributed`: torch.distributed's variables, each line
prefixed ``[rank i]``, a failing rank stops the others); the last line then names the rank that failed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

UPLOAD_FAILED = 70  # exit code when the script succeeded but its outputs could not be uploaded


def _upload_outputs(folder: Path) -> int:
    outputs = folder / "outputs"
    files = [p for p in outputs.rglob("*") if p.is_file()] if outputs.is_dir() else []
    if not files:
        return 0
    from runlab.core.settings import RUNLAB_RUN_ID, RUNLAB_SERVER, RUNLAB_WORKSPACE
    from runlab.tracking.run import TrackedRun

    workspace, run_id, server = RUNLAB_WORKSPACE.read(), RUNLAB_RUN_ID.read(), RUNLAB_SERVER.read()
    if not workspace or not run_id:
        print("runlab: RUNLAB_WORKSPACE and RUNLAB_RUN_ID are not set: outputs/ not uploaded", file=sys.stderr)
        return 0
    backend: Any
    if server:
        from runlab.store.remote.workspace import RemoteWorkspace

        backend = RemoteWorkspace(server, workspace_id=workspace)
    else:
        from runlab.store.folder import WorkspaceFolder

        backend = WorkspaceFolder(workspace)
    return len(TrackedRun(backend, run_id).upload_folder("outputs", outputs))


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    ranks = 1
    if args[:1] == ["--ranks"] and len(args) > 1 and args[1].isdigit():
        ranks, args = max(1, int(args[1])), args[2:]
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print("usage: python -m runlab.execution.ray_entry [--ranks N] -- COMMAND...", file=sys.stderr)
        return 2
    source = Path.cwd()
    run_id = os.environ.get("RUNLAB_RUN_ID", "run")
    own = Path(tempfile.mkdtemp(prefix=f"runlab-{run_id[:40]}-"))
    try:
        shutil.copytree(source, own, dirs_exist_ok=True, symlinks=True)
        (own / "outputs").mkdir(exist_ok=True)
        (own / "logs").mkdir(exist_ok=True)
        status = own.with_name(own.name + ".ranks.json")
        if ranks > 1:  # the local pool's launcher: N ranks on this node, torch.distributed's variables, [rank i]
            from runlab.execution.distributed import launcher_argv

            args = launcher_argv(ranks, status, args)
        child = subprocess.Popen(args, cwd=own, start_new_session=False)

        def forward(sig: int, _frame: Any) -> None:
            try:
                child.send_signal(sig)
            except ProcessLookupError:
                pass

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
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
        shutil.rmtree(own, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
