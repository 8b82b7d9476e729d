"""HttpStore: the :class:`~runlab.store.base.Store` interface, each call a request to ``runlab server``.

Every method of :data:`~runlab.store.remote.protocol.METHODS` is ``POST /api/store/<method>`` with its
arguments as tagged JSON; ``append_metrics`` sends a binary batch instead (8 bytes per step, time and
value). Errors are runlab's own (see :mod:`runlab.store.remote.client`): an unreachable or slow server
is :class:`~runlab.core.errors.StoreUnavailableError`, which sends a training script's points to its
journal; they are replayed later with the same batch id, which the server applies once.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

from runlab.core.entities import MetricBatch
from runlab.store.remote import codec
from runlab.store.remote.client import ServerClient
from runlab.store.remote.protocol import METHODS

JSON = {"Content-Type": "application/json"}
BATCH = {"Content-Type": "application/x-runlab-metrics"}
SERIES = "application/x-runlab-series"
MIN_WRITE_TIMEOUT_S = 2.0
POINTS_PER_REQUEST = 50_000  # about 1.2 MB of binary batch: one request stays well under a second


class HttpStore:
    """The store of the workspace a server serves. Methods are those of ``SqlStore`` (see
    :class:`~runlab.store.base.Store`); all but the few below are generated from the protocol's table."""

    is_remote = True

    def __init__(self, client: ServerClient) -> None:
        self.client = client

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        body = codec.dumps({"args": list(args), "kwargs": kwargs})
        resp = self.client.request("POST", f"/api/store/{method}", body=body, headers=JSON)
        return codec.loads(resp.body or b"{}")["result"]

    def append_metrics(self, run_id: str, batches: Sequence[MetricBatch], batch_id: str | None = None) -> None:
        """Send the points in requests of at most :data:`POINTS_PER_REQUEST`, so that each is written well
        within the flusher's timeout however fast the script logs. A batch sent in several requests has
        ids derived from its own (``<id>.0``, ``<id>.1``...): sent again (from the journal), the parts the
        server has are skipped and the rest written."""
        parts = list(_parts(batches, POINTS_PER_REQUEST))
        for i, part in enumerate(parts):
            part_id = batch_id if batch_id is None or len(parts) == 1 else f"{batch_id}.{i}"
            self.client.request("POST", "/api/store/append_metrics", body=codec.encode_batches(run_id, part, part_id),
                                headers=BATCH)

    def get_metric_series(self, run_id: str, name: str) -> Any:
        """One metric's points, sent by the server as binary arrays (24 bytes a point)."""
        resp = self.client.request("POST", "/api/store/get_metric_series", body=codec.dumps({"args": [run_id, name]}),
                                   headers={**JSON, "Accept": SERIES})
        return codec.decode_series(resp.body or b"")

    def with_lock_wait(self, seconds: float) -> "HttpStore":
        """This store with writes that give up after about ``seconds`` (at least 2 s): the metric
        flusher's view, so that a slow server sends points to the journal instead of blocking."""
        return HttpStore(self.client.with_timeout(max(MIN_WRITE_TIMEOUT_S, seconds)))

    def reap_stale_runs(self, timeout_s: float, throttle: bool = False) -> list[str]:
        return list(self.call("reap_stale_runs", timeout_s))

    def set_heartbeat_timeout(self, seconds: float) -> None:
        pass  # the server's own setting decides

    def close(self) -> None:
        self.client.close()


def _parts(batches: Sequence[MetricBatch], limit: int) -> Iterator[list[MetricBatch]]:
    """``batches`` cut into lists of at most ``limit`` points, in order (a metric's points may span lists)."""
    part: list[MetricBatch] = []
    room = limit
    for batch in batches:
        start, n = 0, len(batch.values)
        while start < n:
            take = min(room, n - start)
            part.append(batch if take == n else MetricBatch(
                name=batch.name, kind=batch.kind, steps=batch.steps[start:start + take],
                times=batch.times[start:start + take], values=batch.values[start:start + take],
                description=batch.description))
            start += take
            room -= take
            if room == 0:
                yield part
                part, room = [], limit
    if part:
        yield part


def _method(name: str) -> Callable[..., Any]:
    def method(self: HttpStore, *args: Any, **kwargs: Any) -> Any:
        return self.call(name, *args, **kwargs)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"``{name}`` of the server's store (see runlab.store.base.Store)."
    return method


for _name in METHODS:
    if not hasattr(HttpStore, _name):
        setattr(HttpStore, _name, _method(_name))

__all__ = ["HttpStore"]
