"""Which plotly.js a page links: the cartesian bundle the build fetched from npm (hatch_build.py) for the
run page, plotly's full bundle for compare (parcoords) and wherever the cartesian one is missing."""

from __future__ import annotations

import base64
import hashlib
import io
import re
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from runlab.server import pages

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import hatch_build  # noqa: E402  (the build hook: importable without hatchling)


def _preload(html: str) -> str:
    return re.search(r'<link rel="preload" id="plotly-src" href="([^"]+)" as="script">', html).group(1)


def _tarball(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_the_run_page_links_the_cartesian_bundle_and_compare_the_full_one(populated: Any, client: Any,
                                                                         tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    (vendor / "plotly-cartesian-9.9.9.min.js").write_text("/* plotly.js cartesian */ window.Plotly = {};")
    monkeypatch.setattr(pages, "VENDOR", vendor)
    href = _preload(client.get("/runs/mnist_run_11").text)
    assert href == "/vendor/plotly-cartesian-9.9.9.min.js"
    served = client.get(href)
    # the file as installed, after V8's compile hint (its functions compiled off the page's main thread)
    assert served.status_code == 200
    assert served.content == b"//# allFunctionsCalledOnLoad\n/* plotly.js cartesian */ window.Plotly = {};"
    assert served.headers["content-type"].startswith("text/javascript")
    assert "immutable" in served.headers["cache-control"] and "max-age=31536000" in served.headers["cache-control"]
    assert _preload(client.get("/compare?runs=mnist_run_10,mnist_run_11").text).startswith("/vendor/plotly.min.js?v=")
    other = client.get("/vendor/plotly-cartesian-1.0.0.min.js")  # only the version this install has
    assert other.status_code == 404 and "plotly-cartesian-9.9.9.min.js" in other.text


def test_without_the_cartesian_bundle_every_page_links_the_full_one(populated: Any, client: Any, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pages, "VENDOR", tmp_path / "no-vendor")
    href = _preload(client.get("/runs/mnist_run_11").text)
    assert href.startswith("/vendor/plotly.min.js?v=")
    full = client.get(href)
    assert full.status_code == 200 and full.content == b"//# allFunctionsCalledOnLoad\n" + pages.plotly_js_path().read_bytes()
    assert "immutable" in full.headers["cache-control"]
    missing = client.get("/vendor/plotly-cartesian-4.1.1.min.js")
    assert missing.status_code == 404 and "could not fetch" in missing.text


def test_a_bundle_replaced_on_disk_is_served_as_it_is_now(populated: Any, client: Any, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The served bytes are kept in memory (the hint before them): a reinstall that rewrites the file is
    served at once, not the bytes read before it."""
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    bundle = vendor / "plotly-cartesian-9.9.9.min.js"
    bundle.write_text("window.Plotly = {v: 1};")
    monkeypatch.setattr(pages, "VENDOR", vendor)
    assert client.get("/vendor/plotly-cartesian-9.9.9.min.js").content.endswith(b"window.Plotly = {v: 1};")
    bundle.write_text("window.Plotly = {v: 22};")
    assert client.get("/vendor/plotly-cartesian-9.9.9.min.js").content.endswith(b"window.Plotly = {v: 22};")


def test_the_build_hook_unpacks_only_the_tarball_it_pinned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _tarball({"package/plotly-cartesian.min.js": b"window.Plotly = {};", "package/LICENSE": b"MIT",
                     "package/README.md": b"not taken"})
    with pytest.raises(ValueError, match="not the pinned"):
        hatch_build.unpack(data, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    monkeypatch.setattr(hatch_build, "INTEGRITY", "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode())
    written = hatch_build.unpack(data, tmp_path / "vendor")
    assert sorted(p.name for p in written) == sorted(hatch_build.FILES.values())
    assert sorted(p.name for p in (tmp_path / "vendor").iterdir()) == sorted(hatch_build.FILES.values())
    assert (tmp_path / "vendor" / f"plotly-cartesian-{hatch_build.VERSION}.min.js").read_bytes() == b"window.Plotly = {};"
    truncated = _tarball({"package/LICENSE": b"MIT"})
    monkeypatch.setattr(hatch_build, "INTEGRITY",
                        "sha512-" + base64.b64encode(hashlib.sha512(truncated).digest()).decode())
    with pytest.raises(ValueError, match="plotly-cartesian.min.js is missing"):
        hatch_build.unpack(truncated, tmp_path / "other")
    monkeypatch.setenv("npm_config_registry", "http://mirror.example/npm/")
    assert hatch_build.tarball_url() == ("http://mirror.example/npm/plotly.js-cartesian-dist-min/-/"
                                         f"plotly.js-cartesian-dist-min-{hatch_build.VERSION}.tgz")


def test_the_bundle_the_build_fetched_is_the_one_it_pinned() -> None:
    """The installed bundle's name says the pinned version and the studio finds it (skipped where the build
    could not reach npm: then the test above shows the full bundle is linked)."""
    bundle = pages.cartesian_bundle()
    if bundle is None:
        pytest.skip(f"{pages.VENDOR} holds no cartesian bundle: this install's build could not fetch it from npm")
    assert bundle.name == hatch_build.FILES["package/plotly-cartesian.min.js"]
    assert (bundle.parent / hatch_build.FILES["package/LICENSE"]).read_text().startswith("MIT License")
    assert b"plotly.js" in bundle.read_bytes()[:400].lower()
