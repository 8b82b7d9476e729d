"""The data cache: content-addressed objects, read-only views, and what happens when things go wrong."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import threading
from pathlib import Path

import pytest

from runlab.core.assets import DatasetFile
from runlab.core.errors import DatasetChangedError, DatasetPathError
from runlab.store import datacache
from runlab.store.datacache import CacheCanceled, DataCache, view_key


def _files(folder: Path, contents: dict[str, bytes]) -> list[DatasetFile]:
    out = []
    for name, data in contents.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        st = path.stat()
        out.append(DatasetFile(None, str(path), st.st_size, name, None, st.st_mtime))
    return out


def test_a_view_holds_the_files_read_only_and_is_found_again(tmp_path: Path) -> None:
    files = _files(tmp_path / "src", {"a.bin": b"alpha", "sub/b.bin": b"beta", "sub/c.bin": b"alpha"})
    cache = DataCache(tmp_path / "cache")
    view = cache.view(files, None, verify=False)
    assert not view.reused and view.fetched_files == 3
    assert (view.path / "sub" / "b.bin").read_bytes() == b"beta"
    assert stat.S_IMODE((view.path / "a.bin").stat().st_mode) == 0o444
    assert stat.S_IMODE((view.path / "sub").stat().st_mode) == 0o555
    # identical contents are one object, linked twice
    assert (view.path / "a.bin").stat().st_ino == (view.path / "sub" / "c.bin").stat().st_ino
    again = cache.view(files, None, verify=False)
    assert again.reused and again.path == view.path
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []


def test_a_changed_source_file_gets_a_new_view(tmp_path: Path) -> None:
    cache = DataCache(tmp_path / "cache")
    first = cache.view(_files(tmp_path / "src", {"a.bin": b"one"}), None, verify=False)
    os.utime(tmp_path / "src" / "a.bin", (1, 1))
    second = cache.view(_files(tmp_path / "src", {"a.bin": b"two"}), None, verify=False)
    assert second.path != first.path and (second.path / "a.bin").read_bytes() == b"two"
    assert (first.path / "a.bin").read_bytes() == b"one"  # an older view keeps its own bytes


def test_verify_refuses_bytes_that_are_not_the_recorded_ones(tmp_path: Path) -> None:
    [file] = _files(tmp_path / "src", {"a.bin": b"real"})
    recorded = DatasetFile(None, file.path, 4, "a.bin", hashlib.sha256(b"fake").hexdigest())
    cache = DataCache(tmp_path / "cache")
    with pytest.raises(DatasetChangedError, match="sha256 differs"):
        cache.view([recorded], None, verify=True)
    assert not (cache.views).exists() or list(cache.views.iterdir()) == []
    assert list(cache.tmp.iterdir()) == []


def test_names_that_leave_the_view_are_refused(tmp_path: Path) -> None:
    [file] = _files(tmp_path / "src", {"a.bin": b"x"})
    cache = DataCache(tmp_path / "cache")
    for name in ("../escape", "/etc/passwd", "a/../../b", "", "a//b", "a\x00b"):
        with pytest.raises(DatasetPathError):
            cache.view([DatasetFile(None, file.path, 1, name)], None, verify=False)
    assert not (tmp_path / "escape").exists()


def test_an_object_with_too_many_links_is_copied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = _files(tmp_path / "src", {"a.bin": b"same", "b.bin": b"same"})
    cache = DataCache(tmp_path / "cache")
    real_link = os.link
    calls = []

    def link(src: str, dst: str) -> None:
        if not src.startswith(str(cache.objects)):  # a new object put in place
            return real_link(src, dst)
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(errno.EMLINK, "Too many links")
        real_link(src, dst)

    monkeypatch.setattr(datacache.os, "link", link)
    view = cache.view(files, None, verify=False)
    assert (view.path / "b.bin").read_bytes() == b"same" and (view.path / "a.bin").read_bytes() == b"same"
    assert (view.path / "a.bin").stat().st_ino != (view.path / "b.bin").stat().st_ino


def test_two_agents_making_one_view_at_once_both_get_it(tmp_path: Path) -> None:
    files = _files(tmp_path / "src", {f"d{i % 5}/f{i}": bytes([i % 256]) * 50 for i in range(300)})
    cache = DataCache(tmp_path / "cache")
    results, errors = [], []
    barrier = threading.Barrier(2)

    def make() -> None:
        barrier.wait()
        try:
            results.append(cache.view(files, None, verify=False).path)
        except Exception as exc:  # noqa: BLE001 - the test reports it
            errors.append(exc)

    threads = [threading.Thread(target=make) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(set(results)) == 1
    assert list(cache.views.iterdir()) == [results[0]] and list(cache.tmp.iterdir()) == []


def test_a_cancel_stops_the_copy_and_leaves_nothing(tmp_path: Path) -> None:
    files = _files(tmp_path / "src", {f"f{i}": b"x" * i for i in range(50)})
    cancel = threading.Event()
    cancel.set()
    cache = DataCache(tmp_path / "cache")
    with pytest.raises(CacheCanceled):
        cache.view(files, None, verify=False, cancel=cancel)
    assert list(cache.tmp.iterdir()) == [] and list(cache.views.iterdir()) == []


def test_a_missing_source_file_fails_without_a_partial_view(tmp_path: Path) -> None:
    files = _files(tmp_path / "src", {"a": b"1", "b": b"2"})
    (tmp_path / "src" / "b").unlink()
    cache = DataCache(tmp_path / "cache")
    with pytest.raises(DatasetPathError, match="cannot read"):
        cache.view(files, None, verify=False)
    assert list(cache.views.iterdir()) == [] and list(cache.tmp.iterdir()) == []


def test_the_key_names_contents_for_checksummed_files_and_places_for_others() -> None:
    a = DatasetFile("ds", "x/a", 3, "a", "0" * 64)
    moved = DatasetFile("other", "y/a", 3, "a", "0" * 64)
    assert view_key([a]) == view_key([moved])  # same name, same bytes: same view
    plain = DatasetFile("ds", "x/a", 3, "a", None, 10.0)
    assert view_key([plain]) != view_key([DatasetFile("ds", "x/a", 3, "a", None, 11.0)])


def test_what_a_killed_agent_left_in_tmp_is_swept(tmp_path: Path) -> None:
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    cache = DataCache(tmp_path / "cache")
    cache.tmp.mkdir(parents=True)
    (cache.tmp / f"object-{dead.pid}-?-abc").write_bytes(b"half")
    (cache.tmp / f"view-{dead.pid}-?-def" / "sub").mkdir(parents=True)
    (cache.tmp / f"view-{dead.pid}-?-def").chmod(0o555)
    mine = cache.tmp / f"object-{datacache._owner()}-ghi"  # a live process's copy in progress stays
    mine.write_bytes(b"going")
    cache.view(_files(tmp_path / "src", {"a": b"1"}), None, verify=False)
    assert sorted(p.name for p in cache.tmp.iterdir()) == [mine.name]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to hold a file by its inode")
def test_a_maker_linking_while_another_stores_the_same_objects_gets_the_view(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The interleaving of a flaky failure, forced: maker A has looked an object up and is about to
    link it when maker B copies the same contents, sweeps ``tmp``, links and renames its view first.
    link(2) of a name whose inode lost its last link meanwhile fails with ENOENT, so an object in
    place must never be replaced; and B's sweep must leave A's tree alone (A's thread is alive)."""
    files = _files(tmp_path / "src", {f"d{i % 3}/f{i}": bytes([i]) * 50 for i in range(20)})
    cache = DataCache(tmp_path / "cache")
    real_link = os.link
    a_paused, b_done = threading.Event(), threading.Event()
    maker_a: list[int] = []

    def link(src: str, dst: str) -> None:
        if threading.get_ident() not in maker_a or a_paused.is_set() or not src.startswith(str(cache.objects)):
            return real_link(src, dst)
        fd = os.open(src, os.O_RDONLY)  # A's lookup: the inode the name has now
        proc = os.open("/proc/self", os.O_RDONLY | os.O_DIRECTORY)
        try:
            a_paused.set()
            assert b_done.wait(30)
            # A's link, of that inode (linkat following /proc's link: ENOENT once it has no name)
            real_link(f"fd/{fd}", dst, src_dir_fd=proc, follow_symlinks=True)
        finally:
            os.close(proc)
            os.close(fd)

    monkeypatch.setattr(datacache.os, "link", link)
    results, errors = [], []

    def make_a() -> None:
        maker_a.append(threading.get_ident())
        try:
            results.append(cache.view(files, None, verify=False).path)
        except Exception as exc:  # noqa: BLE001 - the test reports it
            errors.append(exc)

    a = threading.Thread(target=make_a)
    a.start()
    try:
        assert a_paused.wait(30)
        [a_tree] = cache.tmp.iterdir()  # A's view, half linked
        b = cache.view(files, None, verify=False)  # B: copies, sweeps, links and renames first
        assert not b.reused and b.fetched_files == len(files)
        assert cache.sweep() == 0 and list(cache.tmp.iterdir()) == [a_tree]
    finally:
        b_done.set()
        a.join()
    assert errors == [] and results == [b.path]  # A lost the rename and uses B's view
    assert list(cache.views.iterdir()) == [b.path] and list(cache.tmp.iterdir()) == []
    assert sorted(p.name for p in b.path.rglob("*") if p.is_file()) == sorted(f"f{i}" for i in range(20))


def test_an_object_in_place_is_kept_when_the_same_content_is_copied_again(tmp_path: Path) -> None:
    """Its inode stays: a maker that looked it up can still link it (see the test above)."""
    cache = DataCache(tmp_path / "cache")
    first = cache.view(_files(tmp_path / "src", {"a.bin": b"same"}), None, verify=False)
    inode = (first.path / "a.bin").stat().st_ino
    os.utime(tmp_path / "src" / "a.bin", (1, 1))  # another view (by place and time), copied again
    second = cache.view(_files(tmp_path / "src", {"a.bin": b"same"}), None, verify=False)
    assert second.path != first.path and second.fetched_files == 1
    assert (second.path / "a.bin").stat().st_ino == inode
    assert cache.object_path(hashlib.sha256(b"same").hexdigest()).stat().st_ino == inode
    assert list(cache.tmp.iterdir()) == []


_MAKER = """
import json, os, sys, time
from pathlib import Path
from runlab.core.assets import DatasetFile
from runlab.store.datacache import DataCache
root, listing, go = sys.argv[1:]
files = [DatasetFile(*f) for f in json.loads(Path(listing).read_text())]
while not os.path.exists(go):
    time.sleep(0.001)
print(DataCache(Path(root)).view(files, None, verify=False).path)
"""

_SWEEPER = """
import os, sys, time
from pathlib import Path
from runlab.store.datacache import DataCache
root, go, stop = sys.argv[1:]
cache, removed = DataCache(Path(root)), 0
while not os.path.exists(go):
    time.sleep(0.001)
while not os.path.exists(stop):
    removed += cache.sweep()
print(removed)
"""


def test_two_processes_making_one_view_while_a_third_sweeps_all_get_it(tmp_path: Path) -> None:
    import dataclasses
    import json
    import subprocess
    import sys

    files = _files(tmp_path / "src", {f"d{i % 5}/f{i}": bytes([i % 256]) * 50 for i in range(400)})
    listing = tmp_path / "files.json"
    listing.write_text(json.dumps([dataclasses.astuple(f) for f in files]))
    root, go, stop = tmp_path / "cache", tmp_path / "go", tmp_path / "stop"
    root.mkdir()
    sweeper = subprocess.Popen([sys.executable, "-c", _SWEEPER, str(root), str(go), str(stop)],
                               stdout=subprocess.PIPE, text=True)
    makers = [subprocess.Popen([sys.executable, "-c", _MAKER, str(root), str(listing), str(go)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        go.touch()
        outs = [m.communicate(timeout=60) for m in makers]
    finally:
        stop.touch()
        swept, _ = sweeper.communicate(timeout=60)
    assert [m.returncode for m in makers] == [0, 0], [err for _, err in outs]
    [path] = {Path(out.strip()) for out, _ in outs}
    assert swept.strip() == "0"  # the makers were alive: nothing of theirs was swept
    assert list((root / "views").iterdir()) == [path] and list((root / "tmp").iterdir()) == []
    assert len([p for p in path.rglob("*") if p.is_file()]) == len(files)
