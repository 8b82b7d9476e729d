"""Snapshots between this machine and ``runlab server``: a submit sends one, an agent fetches one.

Both sides keep snapshots in a :class:`~runlab.execution.snapshot.SnapshotStore` (content-addressed
objects and manifests). :func:`push_snapshot` asks the server which objects it lacks and sends only
those, then the manifest, which the server checks against the objects. :func:`pull_snapshot` does the
reverse for an agent on another machine. Neither holds a whole file in memory.
"""

from __future__ import annotations

import http.client
import json
from typing import Any

from runlab.core.errors import StoreError, UserError
from runlab.execution.snapshot import SnapshotStore
from runlab.store.remote.client import ServerClient

BATCH = 500


def push_snapshot(client: ServerClient, local: SnapshotStore, snapshot_id: str) -> tuple[int, int]:
    """Send snapshot ``snapshot_id`` of ``local`` to the server; returns (objects sent, bytes sent)."""
    manifest = local.manifest(snapshot_id)
    shas = sorted({str(f["sha256"]) for f in manifest["files"]})
    missing: list[str] = []
    for start in range(0, len(shas), BATCH):
        missing += client.post_json("/api/remote/snapshots/missing", {"objects": shas[start:start + BATCH]})["missing"]
    sent = 0
    for sha in missing:
        path = local.object_path(sha)
        size = path.stat().st_size
        with open(path, "rb") as stream:
            client.request("PUT", f"/api/remote/snapshots/objects/{sha}", body=stream,
                           headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)})
        sent += size
    body = json.dumps(manifest).encode()
    client.request("PUT", f"/api/remote/snapshots/manifests/{snapshot_id}", body=body,
                   headers={"Content-Type": "application/json"})
    return len(missing), sent


def pull_snapshot(client: ServerClient, local: SnapshotStore, snapshot_id: str) -> dict[str, Any]:
    """Fetch snapshot ``snapshot_id`` from the server into ``local`` (objects it lacks, then the manifest)."""
    manifest = client.get_json(f"/api/remote/snapshots/manifests/{snapshot_id}")
    paths = {str(f.get("sha256")): str(f.get("path")) for f in manifest.get("files", []) if isinstance(f, dict)}
    for sha in sorted(set(local.missing_objects(sorted(paths)))):
        resp = client.request("GET", f"/api/remote/snapshots/{snapshot_id}/objects/{sha}", stream=True)
        try:
            local.import_object(resp, sha)  # type: ignore[arg-type]
        except UserError as exc:  # the bytes are not those the manifest names: never run them
            raise StoreError(f"snapshot {snapshot_id} is damaged on the server: the content of {paths[sha]!r} arrived "
                             f"as other bytes than the {sha} its manifest records ({exc}); nothing of it was run. "
                             "Submit the run again to send the files anew", snapshot_id=snapshot_id) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise StoreError(f"could not fetch {paths[sha]!r} ({sha}) of snapshot {snapshot_id} from the server: "
                             f"{exc!r} (the server's log says why: a content changed in its store is cut off rather "
                             "than sent)", snapshot_id=snapshot_id) from exc
        finally:
            resp.close()
    local.import_manifest(snapshot_id, manifest)
    return dict(manifest)


__all__ = ["pull_snapshot", "push_snapshot"]
