"""store.paths.folder_files: the one rule for the folders a run uploads (Run.upload_folder, the agent's
./outputs, a Ray node's): links that lead outside the folder are never followed, links inside are."""

from __future__ import annotations

import os
from pathlib import Path

from runlab.store.paths import folder_files


def test_links_inside_are_their_files_and_links_outside_are_listed_not_followed(tmp_path: Path) -> None:
    root = tmp_path / "outputs"
    (root / "sub").mkdir(parents=True)
    (root / "model.pt").write_bytes(b"w")
    (root / "sub" / "b.txt").write_text("b")
    secret_dir = tmp_path / "home"
    secret_dir.mkdir()
    (secret_dir / "id_rsa").write_text("secret")
    (root / "alias.pt").symlink_to(root / "model.pt")  # inside: uploaded as the file
    (root / "sub" / "up.txt").symlink_to("../model.pt")  # relative, inside
    (root / "key").symlink_to(secret_dir / "id_rsa")  # a file outside
    (root / "data").symlink_to(secret_dir, target_is_directory=True)  # a folder outside: not walked
    (root / "sub" / "escape").symlink_to("../../home/id_rsa")  # relative, outside
    (root / "subalias").symlink_to(root / "sub", target_is_directory=True)  # a folder inside: not walked twice
    (root / "self").symlink_to(root, target_is_directory=True)  # the folder itself: no loop
    (root / "broken").symlink_to(tmp_path / "missing")
    os.mkfifo(root / "pipe")  # a special file: left out (reading it would block)
    files, outside = folder_files(root)
    assert [rel for rel, _path in files] == ["alias.pt", "model.pt", "sub/b.txt", "sub/up.txt"]
    assert dict(files)["alias.pt"] == str(root / "alias.pt")
    assert sorted(outside) == sorted([("key", str(secret_dir / "id_rsa")), ("data", str(secret_dir)),
                                      ("sub/escape", str(secret_dir / "id_rsa"))])


def test_the_folder_itself_may_be_a_link_and_is_judged_by_its_target(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch" / "out"
    scratch.mkdir(parents=True)
    (scratch / "a.txt").write_text("a")
    (scratch / "near").symlink_to(scratch / "a.txt")
    (scratch / "far").symlink_to(tmp_path / "scratch")  # the link's parent: outside the target folder
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "outputs").symlink_to(scratch, target_is_directory=True)
    files, outside = folder_files(tmp_path / "run" / "outputs")
    assert [rel for rel, _p in files] == ["a.txt", "near"]
    assert outside == [("far", str(tmp_path / "scratch"))]
