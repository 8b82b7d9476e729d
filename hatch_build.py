"""Build hook: plotly.js's cartesian bundle for the studio, fetched from the npm registry at build time.

The studio's run page draws scatter, bar and heatmap traces only. plotly's PyPI package ships the whole
plotly.js (4.8 MB: parsing and running it took 0.9-1.2 s of a cold run page in Chromium); plotly.js's
own cartesian bundle (``plotly.js-cartesian-dist-min``, 1.5 MB, on npm only) holds those traces and runs in
a third of the time. Nothing of it is in the repository: the wheel (and an editable install) gets it here,
pinned by version and by the registry's sha512 integrity, into ``src/runlab/server/vendor/`` (ignored by
git, carried into the wheel as an artifact), with plotly.js's license beside it.

Where the registry cannot be reached the build goes on without it and says so: the studio then serves the
full bundle from the plotly package on every page. ``npm_config_registry`` (npm's own variable) names a
mirror; ``RUNLAB_SKIP_VENDOR=1`` skips the fetch.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import tarfile
import urllib.request
from pathlib import Path
from typing import Any

try:
    from hatchling.builders.hooks.plugin.interface import BuildHookInterface
except ImportError:  # imported by the tests, outside a build
    BuildHookInterface = object

PACKAGE = "plotly.js-cartesian-dist-min"
VERSION = "4.1.1"
INTEGRITY = "sha512-o8GrFeusncwBIxbBynRJpY4pkgVB6caM+JLpwrLYbbsO7dZ8FJ+SVN2Fr+L7kiG/Z6w4P5O0Jus/Qr5EefHVeg=="
# what the studio reads (runlab.server.pages.CARTESIAN_BUNDLE), from the tarball's members
FILES = {"package/plotly-cartesian.min.js": f"plotly-cartesian-{VERSION}.min.js",
         "package/LICENSE": f"plotly-cartesian-{VERSION}.LICENSE"}
VENDOR = Path("src") / "runlab" / "server" / "vendor"


def tarball_url(registry: str | None = None) -> str:
    registry = (registry or os.environ.get("npm_config_registry") or os.environ.get("NPM_CONFIG_REGISTRY")
                or "https://registry.npmjs.org").rstrip("/")
    return f"{registry}/{PACKAGE}/-/{PACKAGE}-{VERSION}.tgz"


def check_integrity(data: bytes) -> None:
    algorithm, _, expected = INTEGRITY.partition("-")
    got = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
    if got != expected:
        raise ValueError(f"{PACKAGE} {VERSION}: the tarball's {algorithm} is {got}, not the pinned {expected}")


def unpack(data: bytes, target: Path) -> list[Path]:
    """The pinned files of the verified tarball ``data``, written into ``target``."""
    check_integrity(data)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member, name in FILES.items():
            try:
                source = tar.extractfile(member)
            except KeyError:
                source = None
            if source is None:
                raise ValueError(f"{PACKAGE} {VERSION}: {member} is missing from the tarball")
            partial = target / (name + ".partial")
            partial.write_bytes(source.read())
            partial.replace(target / name)
            written.append(target / name)
    return written


def fetch(target: Path, timeout_s: float = 60.0) -> list[Path]:
    with urllib.request.urlopen(tarball_url(), timeout=timeout_s) as response:
        data = response.read()
    return unpack(data, target)


class VendorBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        target = Path(self.root) / VENDOR
        if all((target / name).is_file() for name in FILES.values()):
            return
        if os.environ.get("RUNLAB_SKIP_VENDOR"):
            self.app.display_info(f"RUNLAB_SKIP_VENDOR is set: {PACKAGE} not fetched (the studio uses plotly's "
                                  "full bundle)")
            return
        try:
            fetch(target)
        except Exception as exc:  # noqa: BLE001 - the studio works without it, only slower to a first chart
            self.app.display_warning(f"could not fetch {PACKAGE} {VERSION} from {tarball_url()}: {exc}; the studio "
                                     "will serve plotly's full bundle on every page (its run page's first chart "
                                     "comes about 0.5 s later)")
        else:
            self.app.display_info(f"{PACKAGE} {VERSION} fetched into {VENDOR}")
