"""One Ray cluster (a head on 127.0.0.1, 2 CPUs, a temp dir of its own) for the Ray tests of a session.

Every test here is marked ``ray`` (deselect with ``-m 'not ray'``). The cluster is stopped by its own
pids at the end, and the fixture checks that none of its processes is left.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from ray_support import RayCluster, new_cluster  # noqa: E402

pytest.importorskip("ray.job_submission", reason="the Ray tests need ray: pip install -e '.[test]'")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.ray)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    cluster = new_cluster(num_cpus=2)
    try:
        cluster.warm()
        yield cluster
    finally:
        cluster.stop()
        left = cluster.processes()
        cluster.remove()
        assert not left, f"processes of the test's Ray cluster left running: {[p.pid for p in left]}"
