"""Snapshots against real folders, a real git and a real store in tmp_path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runlab.core.errors import NotFoundError, StoreError, UserError
from runlab.execution.snapshot import (
    DEFAULT_SNAPSHOT_MAX_BYTES,
    DEFAULT_SNAPSHOT_MAX_FILES,
    GitInfo,
    SnapshotLimits,
    SnapshotStore,
    SnapshotTooLargeError,
    list_files,
    read_git_info,
)

MiB = 1024 * 1024


def write(path: Path, content: str | bytes = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def paths(folder: Path) -> list[str]:
    return [f.path for f in list_files(folder)]


@pytest.fixture
def src(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    write(folder / "train.py", "print('hello')\n")
    write(folder / "pkg" / "model.py", "class Model: ...\n")
    write(folder / "pkg" / "__init__.py", "")
    return folder


@pytest.fixture
def store(tmp_path: Path) -> SnapshotStore:
    return SnapshotStore(tmp_path / "ws" / "snapshots")


def all_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


# -- storage -------------------------------------------------------------------------------------------


def test_take_records_files_in_manifest(src: Path, store: SnapshotStore) -> None:
    snap = store.take(src)
    manifest = store.manifest(snap.snapshot_id)
    assert snap.manifest_path == store.root / "manifests" / f"{snap.snapshot_id}.json"
    assert json.loads(snap.manifest_path.read_text()) == manifest
    assert [f["path"] for f in manifest["files"]] == ["pkg/__init__.py", "pkg/model.py", "train.py"]
    assert manifest["snapshot_id"] == snap.snapshot_id
    assert manifest["source"] == str(src.resolve())
    assert manifest["file_count"] == snap.file_count == 3
    assert manifest["total_bytes"] == snap.total_bytes == sum(f.stat().st_size for f in all_files(src))
    train = next(f for f in manifest["files"] if f["path"] == "train.py")
    assert train["size"] == len("print('hello')\n")
    assert len(train["sha256"]) == 64
    assert train["mode"] == "644"
    assert manifest["created"].endswith("+00:00")
    assert snap.new_files == 3


def test_unchanged_content_is_stored_once(src: Path, store: SnapshotStore) -> None:
    first = store.take(src)
    assert store.stats().objects == 3

    write(src / "train.py", "print('changed')\n")
    second = store.take(src)

    assert second.snapshot_id != first.snapshot_id
    assert second.new_files == 1
    stats = store.stats()
    assert stats.snapshots == 2
    assert stats.objects == 4  # three first contents + the changed train.py
    objects = [p for p in all_files(store.root / "objects")]
    assert len(objects) == 4


def test_identical_content_in_two_files_is_one_object(tmp_path: Path, store: SnapshotStore) -> None:
    write(tmp_path / "s" / "a.txt", "same")
    write(tmp_path / "s" / "b" / "c.txt", "same")
    snap = store.take(tmp_path / "s")
    assert snap.file_count == 2
    assert store.stats().objects == 1


def test_unchanged_tree_gets_the_same_id_and_keeps_first_manifest(src: Path, store: SnapshotStore) -> None:
    first = store.take(src)
    created = store.manifest(first.snapshot_id)["created"]
    second = store.take(src)
    assert second.snapshot_id == first.snapshot_id
    assert second.new_files == 0 and second.new_bytes == 0
    assert store.manifest(first.snapshot_id)["created"] == created
    assert store.stats().snapshots == 1


def test_same_tree_in_another_folder_gets_the_same_id(src: Path, tmp_path: Path,
                                                      store: SnapshotStore) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(src, copy)
    assert store.take(copy).snapshot_id == store.take(src).snapshot_id


def test_executable_bit_changes_the_id(src: Path, store: SnapshotStore) -> None:
    first = store.take(src)
    (src / "train.py").chmod(0o755)
    assert store.take(src).snapshot_id != first.snapshot_id


def test_no_temporary_files_left_and_objects_hold_their_content(src: Path, store: SnapshotStore) -> None:
    import hashlib

    snap = store.take(src)
    store.take(src)
    leftovers = [p for p in store.root.rglob("*") if p.name.startswith(".tmp-")]
    assert leftovers == []
    for entry in store.manifest(snap.snapshot_id)["files"]:
        obj = store.root / "objects" / entry["sha256"][:2] / entry["sha256"][2:]
        assert hashlib.sha256(obj.read_bytes()).hexdigest() == entry["sha256"]


def test_large_file_hashed_in_blocks(tmp_path: Path, store: SnapshotStore) -> None:
    import hashlib

    content = os.urandom(3 * MiB + 17)
    write(tmp_path / "s" / "weights.bin", content)
    snap = store.take(tmp_path / "s")
    entry = store.manifest(snap.snapshot_id)["files"][0]
    assert entry["sha256"] == hashlib.sha256(content).hexdigest()
    assert entry["size"] == len(content)


def test_progress_reports_bytes(src: Path, store: SnapshotStore) -> None:
    calls: list[tuple[int, int]] = []
    snap = store.take(src, progress=lambda done, total: calls.append((done, total)))
    assert len(calls) == 3
    assert calls[-1] == (snap.total_bytes, snap.total_bytes)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_concurrent_snapshots_from_two_processes(tmp_path: Path, store: SnapshotStore) -> None:
    for i in range(40):
        write(tmp_path / "s" / f"f{i}.txt", f"content {i}\n" * 1000)
    code = (
        "import sys\n"
        "from runlab.execution.snapshot import SnapshotStore\n"
        "print(SnapshotStore(sys.argv[1]).take(sys.argv[2]).snapshot_id)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(store.root), str(tmp_path / "s")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(4)]
    results = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, results
    ids = {out.strip() for out, _ in results}
    assert len(ids) == 1
    assert store.stats().objects == 40
    assert [p for p in store.root.rglob("*") if p.name.startswith(".tmp-")] == []
    restored = store.restore(ids.pop(), tmp_path / "out")
    assert len(restored) == 40


# -- restore -------------------------------------------------------------------------------------------


def test_restore_round_trip_with_executable_bit(src: Path, tmp_path: Path, store: SnapshotStore) -> None:
    write(src / "run.sh", "#!/bin/sh\necho hi\n").chmod(0o755)
    snap = store.take(src)
    dest = tmp_path / "run" / "code"
    written = store.restore(snap.snapshot_id, dest)

    assert sorted(p.relative_to(dest).as_posix() for p in written) == sorted(paths(src))
    for rel in paths(src):
        assert (dest / rel).read_bytes() == (src / rel).read_bytes()
    assert os.access(dest / "run.sh", os.X_OK)
    assert not os.access(dest / "train.py", os.X_OK)
    modes = {f["path"]: f["mode"] for f in store.manifest(snap.snapshot_id)["files"]}
    assert modes["run.sh"] == "755" and modes["train.py"] == "644"


def test_restore_overwrites_files_and_keeps_others(src: Path, tmp_path: Path, store: SnapshotStore) -> None:
    snap = store.take(src)
    dest = tmp_path / "dest"
    write(dest / "train.py", "old")
    write(dest / "other.txt", "keep me")
    store.restore(snap.snapshot_id, dest)
    assert (dest / "train.py").read_text() == "print('hello')\n"
    assert (dest / "other.txt").read_text() == "keep me"


def test_restore_of_a_damaged_snapshot(src: Path, tmp_path: Path, store: SnapshotStore) -> None:
    snap = store.take(src)
    for obj in all_files(store.root / "objects"):
        obj.unlink()
    with pytest.raises(StoreError, match="damaged"):
        store.restore(snap.snapshot_id, tmp_path / "dest")


def test_restore_refuses_paths_outside_dest(src: Path, tmp_path: Path, store: SnapshotStore) -> None:
    snap = store.take(src)
    manifest = store.manifest(snap.snapshot_id)
    manifest["files"][0]["path"] = "../escaped.txt"
    snap.manifest_path.chmod(0o644)
    snap.manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match="unsafe path"):
        store.restore(snap.snapshot_id, tmp_path / "dest")
    assert not (tmp_path / "escaped.txt").exists()


def test_unknown_snapshot_id(store: SnapshotStore, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="not found"):
        store.manifest("0" * 64)
    with pytest.raises(NotFoundError):
        store.manifest("../../etc/passwd")
    with pytest.raises(NotFoundError):
        store.restore("f" * 64, tmp_path / "dest")


# -- which files ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [".runlabignore", ".amlignore", ".gitignore"])
def test_each_ignore_file_name_applies(src: Path, name: str) -> None:
    write(src / name, "data/\n*.csv\n!keep.csv\n")
    write(src / "data" / "big.bin", "0" * 100)
    write(src / "pkg" / "table.csv", "a,b")
    write(src / "keep.csv", "a,b")
    assert paths(src) == sorted([name, "keep.csv", "pkg/__init__.py", "pkg/model.py", "train.py"])


def test_ignore_file_precedence(src: Path) -> None:
    write(src / "a.txt")
    write(src / "b.txt")
    write(src / "c.txt")
    write(src / ".gitignore", "a.txt\n")
    write(src / ".amlignore", "b.txt\n")
    write(src / ".runlabignore", "c.txt\n")
    assert {"a.txt", "b.txt"} <= set(paths(src)) and "c.txt" not in paths(src)
    (src / ".runlabignore").unlink()
    assert {"a.txt", "c.txt"} <= set(paths(src)) and "b.txt" not in paths(src)
    (src / ".amlignore").unlink()
    assert {"b.txt", "c.txt"} <= set(paths(src)) and "a.txt" not in paths(src)


def test_ignore_file_in_use_is_recorded(src: Path, store: SnapshotStore) -> None:
    write(src / ".amlignore", "nothing\n")
    assert store.manifest(store.take(src).snapshot_id)["ignore_file"] == ".amlignore"


def test_default_ignores(src: Path) -> None:
    write(src / ".git" / "HEAD", "ref: refs/heads/main\n")
    write(src / "pkg" / "__pycache__" / "model.cpython-311.pyc", b"\0")
    write(src / "old.pyc", b"\0")
    write(src / ".ipynb_checkpoints" / "nb-checkpoint.ipynb", "{}")
    write(src / "web" / "node_modules" / "left-pad" / "index.js", "")
    write(src / "outputs" / "model.pkl", b"\0")
    write(src / "logs" / "driver.txt", "")
    write(src / ".runlab" / "config.json", "{}")
    write(src / ".azureml" / "config.json", "{}")
    write(src / "pkg" / "outputs" / "kept.txt", "")  # outputs/logs only at the top
    write(src / "pkg" / "logs" / "kept.txt", "")
    assert paths(src) == [".azureml/config.json", "pkg/__init__.py", "pkg/logs/kept.txt",
                          "pkg/model.py", "pkg/outputs/kept.txt", "train.py"]


@pytest.mark.parametrize("folder", [".venv", "venv", "env", "my-python", "sub/deeper/.venv"])
def test_virtual_environments_are_ignored(src: Path, folder: str) -> None:
    venv = src / folder
    write(venv / "pyvenv.cfg", "home = /usr/bin\n")
    for i in range(50):
        write(venv / "lib" / "python3.11" / "site-packages" / f"mod{i}.py", "")
    assert not any(p.startswith(folder) for p in paths(src))


def test_venv_built_by_venv_module_is_ignored(src: Path) -> None:
    import venv

    venv.EnvBuilder(with_pip=False).create(src / ".venv")
    assert paths(src) == ["pkg/__init__.py", "pkg/model.py", "train.py"]


def test_folder_named_env_without_pyvenv_cfg_is_kept(src: Path) -> None:
    write(src / "env" / "settings.py", "")
    assert "env/settings.py" in paths(src)


def test_conda_environment_is_ignored(src: Path) -> None:
    write(src / "condaenv" / "conda-meta" / "history", "")
    write(src / "condaenv" / "bin" / "python", "")
    assert not any(p.startswith("condaenv") for p in paths(src))


def test_ignored_folder_is_not_walked(src: Path) -> None:
    blocked = src / "data"
    write(blocked / "a.txt")
    write(src / ".runlabignore", "data/\n")
    blocked.chmod(0o000)  # walking it would fail
    try:
        if os.access(blocked, os.R_OK):
            pytest.skip("running as root: permissions are not enforced")
        assert "data/a.txt" not in paths(src)
    finally:
        blocked.chmod(0o755)


@pytest.mark.skipif(sys.platform == "win32", reason="symbolic links need privileges on Windows")
def test_symlinks(src: Path, tmp_path: Path, store: SnapshotStore) -> None:
    write(src / "lib" / "shared.py", "SHARED = 1\n")
    (src / "shared.py").symlink_to(src / "lib" / "shared.py")  # inside the folder: stored as its content
    outside = write(tmp_path / "outside" / "secret.py", "SECRET = 1\n")
    (src / "linked_folder").symlink_to(outside.parent, target_is_directory=True)
    (src / "broken").symlink_to(tmp_path / "nowhere")

    snap = store.take(src)

    assert "shared.py" in paths(src)
    assert not any(p.startswith("linked_folder") for p in paths(src))
    assert snap.skipped == ("broken", "linked_folder")
    manifest = store.manifest(snap.snapshot_id)
    assert manifest["skipped"] == [{"path": "broken", "reason": "broken symbolic link"},
                                   {"path": "linked_folder", "reason": "symbolic link to a folder"}]
    dest = tmp_path / "dest"
    store.restore(snap.snapshot_id, dest)
    assert not (dest / "shared.py").is_symlink()
    assert (dest / "shared.py").read_text() == "SHARED = 1\n"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_special_files_are_skipped_not_read(src: Path, store: SnapshotStore) -> None:
    os.mkfifo(src / "pipe")  # reading it would block forever
    snap = store.take(src)
    assert snap.skipped == ("pipe",)
    assert snap.file_count == 3


def test_missing_source_folder(tmp_path: Path, store: SnapshotStore) -> None:
    with pytest.raises(UserError, match="does not exist") as info:
        store.take(tmp_path / "nope")
    assert info.value.path == tmp_path / "nope"  # type: ignore[attr-defined]
    assert not (store.root / "objects").exists()


def test_source_folder_that_is_a_file(tmp_path: Path) -> None:
    script = write(tmp_path / "train.py", "")
    with pytest.raises(UserError, match="not a folder") as info:
        list_files(script)
    assert "script='train.py'" in str(info.value)


# -- limits --------------------------------------------------------------------------------------------


def test_default_limits() -> None:
    assert SnapshotLimits() == SnapshotLimits(max_bytes=300 * MiB, max_files=2000)
    assert (DEFAULT_SNAPSHOT_MAX_BYTES, DEFAULT_SNAPSHOT_MAX_FILES) == (300 * MiB, 2000)
    with pytest.raises(UserError):
        SnapshotLimits(max_bytes=0)


def test_size_limit_error_names_largest_folders(src: Path, store: SnapshotStore) -> None:
    write(src / "data" / "raw" / "train.bin", b"\0" * (2 * MiB))
    write(src / "data" / "raw" / "test.bin", b"\0" * MiB)
    write(src / "data" / "readme.txt", "small")
    write(src / "models" / "ckpt.pt", b"\0" * (512 * 1024))

    with pytest.raises(SnapshotTooLargeError) as info:
        store.take(src, SnapshotLimits(max_bytes=MiB))

    error = info.value
    message = str(error)
    assert isinstance(error, UserError)
    assert error.unit == "bytes" and error.limit == MiB
    assert error.total == error.total_bytes > 3 * MiB
    assert error.largest[0].path == "data/raw"  # drilled down: data/raw holds nearly all of data
    assert error.largest[0].bytes == 3 * MiB and error.largest[0].files == 2
    assert error.largest[1].path == "models"
    assert "data/raw/" in message and "3.0 MiB" in message
    assert "over the limit of 1.0 MiB" in message
    assert "data/raw/train.bin" in message  # largest files
    assert ".runlabignore" in message
    assert "datastore.upload(" in message and "Dataset.File.from_files" in message
    assert not (store.root / "objects").exists()  # nothing copied
    assert not (store.root / "manifests").exists()


def test_size_limit_error_with_gitignore_in_use(src: Path, store: SnapshotStore) -> None:
    write(src / ".gitignore", "*.log\n")
    write(src / "data" / "x.bin", b"\0" * (2 * MiB))
    with pytest.raises(SnapshotTooLargeError) as info:
        store.take(src, SnapshotLimits(max_bytes=MiB))
    assert info.value.ignore_file == ".gitignore"
    assert "it replaces .gitignore" in str(info.value)


def test_file_count_limit(src: Path, store: SnapshotStore) -> None:
    for i in range(30):
        write(src / "images" / f"{i}.png", b"\0")
    with pytest.raises(SnapshotTooLargeError) as info:
        store.take(src, SnapshotLimits(max_files=10))
    error = info.value
    assert error.unit == "files" and error.limit == 10 and error.total == error.file_count == 33
    assert error.largest[0].path == "images" and error.largest[0].files == 30
    assert "10 files" in str(error) and "images/" in str(error)
    assert not (store.root / "objects").exists()


def test_limits_count_only_files_left_after_ignoring(src: Path, store: SnapshotStore) -> None:
    for i in range(30):
        write(src / "images" / f"{i}.png", b"\0")
    write(src / ".runlabignore", "images/\n")
    assert store.take(src, SnapshotLimits(max_files=10)).file_count == 4


# -- git -----------------------------------------------------------------------------------------------


def git(folder: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.com",
           "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.com",
           "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(["git", *args], cwd=folder, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


@needs_git
def test_git_info_in_a_real_repository(src: Path, store: SnapshotStore) -> None:
    git(src, "init", "-q", "-b", "main")
    git(src, "add", "-A")
    git(src, "commit", "-q", "-m", "first")
    commit = git(src, "rev-parse", "HEAD")

    clean = store.take(src)
    assert clean.git == GitInfo(commit=commit, branch="main", dirty=False)
    assert store.manifest(clean.snapshot_id)["git"] == {"commit": commit, "branch": "main", "dirty": False}

    write(src / "train.py", "print('edited')\n")
    assert store.take(src).git == GitInfo(commit=commit, branch="main", dirty=True)


@needs_git
def test_git_info_of_a_subfolder_and_detached_head(tmp_path: Path, src: Path) -> None:
    repo = tmp_path / "src"
    git(repo, "init", "-q", "-b", "dev")
    assert read_git_info(repo) == GitInfo(commit=None, branch="dev", dirty=True)  # no commit yet
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "first")
    git(repo, "checkout", "-q", "--detach")
    info = read_git_info(repo / "pkg")
    assert info is not None and info.branch is None and info.commit and info.dirty is False


@needs_git
def test_no_git_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    folder = tmp_path / "plain"
    folder.mkdir()
    assert read_git_info(folder) is None


def test_no_git_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    assert read_git_info(tmp_path) == GitInfo(commit=None, branch=None, dirty=None)


# -- links that lead out of the source folder (issue 13, item 9) ----------------------------------


OUTSIDE_REASON = "symbolic link to a file outside the source folder"


@pytest.mark.skipif(sys.platform == "win32", reason="symbolic links need privileges on Windows")
def test_a_link_to_a_file_outside_the_folder_is_skipped_and_listed(src: Path, tmp_path: Path,
                                                                    store: SnapshotStore) -> None:
    secret = write(tmp_path / "home" / ".ssh" / "id_rsa", "PRIVATE KEY\n")
    (src / "key").symlink_to(secret)  # absolute
    (src / "pkg" / "relative_key").symlink_to(os.path.relpath(secret, src / "pkg"))  # relative, '../..'
    (src / "hop").symlink_to(src / "key")  # a link inside that leads to a link out
    (src / "reentering.py").symlink_to(Path("..") / "src" / "train.py")  # leaves and comes back: inside
    (src / "loop").symlink_to(src / "loop")

    snap = store.take(src)

    assert paths(src) == ["pkg/__init__.py", "pkg/model.py", "reentering.py", "train.py"]
    assert snap.skipped == ("hop", "key", "loop", "pkg/relative_key")
    manifest = store.manifest(snap.snapshot_id)
    reasons = {item["path"]: item["reason"] for item in manifest["skipped"]}
    assert reasons["key"] == reasons["hop"] == reasons["pkg/relative_key"] == OUTSIDE_REASON
    stored = b"".join(obj.read_bytes() for obj in all_files(store.root / "objects"))
    assert b"PRIVATE KEY" not in stored
    dest = tmp_path / "dest"
    store.restore(snap.snapshot_id, dest)
    assert (dest / "reentering.py").read_text() == "print('hello')\n"
    assert not (dest / "key").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="symbolic links need privileges on Windows")
def test_the_snapshot_says_in_one_line_what_it_left_out(src: Path, tmp_path: Path, store: SnapshotStore) -> None:
    assert store.take(src).skipped_line() is None
    (src / "key").symlink_to(write(tmp_path / "outside" / "key", "K"))
    line = store.take(src).skipped_line()
    assert line is not None and "\n" not in line
    assert "key" in line and "outside the source folder" in line
    for i in range(30):
        (src / f"broken{i:02d}").symlink_to(tmp_path / "nowhere")
    line = store.take(src).skipped_line()
    assert line is not None and "\n" not in line and "and 26 more" in line and len(line) < 600


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="symbolic links need privileges on Windows")
def test_submit_leaves_out_a_link_to_a_file_outside_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import runlab
    from tests_support import stop_agents

    ws = runlab.Workspace.create("snap-ws", path=tmp_path / "ws")
    source = tmp_path / "src"
    write(source / "train.py", "import os\nprint('key there:', os.path.exists('key'))\n")
    (source / "key").symlink_to(write(tmp_path / "home" / "id_rsa", "PRIVATE KEY\n"))
    try:
        run = runlab.Experiment(ws, "exp").submit(runlab.ScriptRunConfig(source_directory=str(source),
                                                                          script="train.py"))
        said = [line for line in capsys.readouterr().err.splitlines() if "key" in line]
        assert len(said) == 1 and "outside the source folder" in said[0] and str(source) in said[0]
        snapshot = run.get_properties()["runlab.snapshot_id"]
        files = [f["path"] for f in SnapshotStore(ws.folder.snapshots_dir).manifest(snapshot)["files"]]
        assert files == ["train.py"]
        assert run.wait_for_completion(timeout_seconds=120)["status"] == "Completed"
        with run.open_file("azureml-logs/70_driver_log.txt") as log:
            assert b"key there: False" in log.read()
    finally:
        stop_agents(ws)
