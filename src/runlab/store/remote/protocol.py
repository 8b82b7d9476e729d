"""The store interface over HTTP: which methods a client may call, and who may call each.

``POST /api/store/<method>`` with ``{"args": [...], "kwargs": {...}}`` (the JSON of
:mod:`runlab.store.remote.codec`) calls that method of the server's store and answers
``{"result": ...}``; metric points go to ``POST /api/store/append_metrics`` as a binary batch instead.
Only the methods of :data:`METHODS` exist: a name that is not there is a 404, whatever the store has.

Access, checked by the server for the caller's token:

- ``READ``: any token that can read (admin, writer, reader); a run's own token for catalog reads
  (datasets, datastores, models, environments, compute targets) it may need;
- ``RUN_READ`` / ``RUN_WRITE``: the first argument is a run id: readers may read, writers may write
  any run, and a run's token only its own run (and the child runs it made);
- ``WRITE``: writers and admins; ``AGENT``: writers and admins (the agents that run queued runs).

Meta keys starting with ``server.`` (the session secret) are never readable or writable through it.
"""

from __future__ import annotations

import enum


class Access(str, enum.Enum):
    READ = "read"  # catalog reads; a run token may make them
    LIST = "list"  # reads of the whole workspace (runs, experiments): not for a run token
    RUN_READ = "run_read"
    RUN_WRITE = "run_write"
    WRITE = "write"
    AGENT = "agent"


METHODS: dict[str, Access] = {
    # experiments
    "get_or_create_experiment": Access.WRITE,
    "get_experiment": Access.LIST,
    "list_experiments": Access.LIST,
    "update_experiment": Access.WRITE,
    "delete_experiment": Access.WRITE,
    # runs
    "create_run": Access.WRITE,  # a run token may create its own child runs (checked by the server)
    "get_run": Access.RUN_READ,
    "list_runs": Access.LIST,
    "set_status": Access.RUN_WRITE,
    "heartbeat": Access.RUN_WRITE,
    "set_display_name": Access.RUN_WRITE,
    "set_tags": Access.RUN_WRITE,
    "remove_tags": Access.RUN_WRITE,
    "add_properties": Access.RUN_WRITE,
    "set_description": Access.RUN_WRITE,
    "add_run_note": Access.RUN_WRITE,
    "list_run_notes": Access.RUN_READ,
    "set_run_archived": Access.WRITE,  # not a run token's: archiving hides runs from everyone
    "delete_run": Access.WRITE,  # not a run token's, not even for its own run
    "reap_stale_runs": Access.AGENT,
    # metrics
    "append_metrics": Access.RUN_WRITE,
    "get_metric_summaries": Access.RUN_READ,
    "get_metric_series": Access.RUN_READ,
    # submitted runs
    "claim_queued_run": Access.AGENT,
    "update_definition": Access.AGENT,
    "count_runs_by_status": Access.LIST,
    # environments and compute targets
    "register_environment": Access.WRITE,
    "get_environment": Access.READ,
    "list_environments": Access.READ,
    "create_compute_target": Access.WRITE,
    "get_compute_target": Access.READ,
    "list_compute_targets": Access.READ,
    "delete_compute_target": Access.WRITE,
    # datasets
    "register_dataset": Access.WRITE,
    "get_dataset": Access.READ,
    "get_dataset_by_id": Access.READ,
    "list_datasets": Access.READ,
    "get_dataset_files": Access.READ,
    "record_run_inputs": Access.AGENT,
    "get_run_inputs": Access.RUN_READ,
    "list_dataset_runs": Access.READ,
    # models
    "register_model": Access.WRITE,  # a run token may register models of its own run (checked by the server)
    "get_model": Access.READ,
    "list_models": Access.READ,
    "get_model_files": Access.READ,
    "known_model_files": Access.READ,
    "update_model": Access.WRITE,
    "delete_model": Access.WRITE,
    # datastores
    "register_datastore": Access.WRITE,
    "get_datastore": Access.READ,
    "list_datastores": Access.READ,
    "get_datastore_files": Access.READ,
    "record_datastore_files": Access.WRITE,
    "forget_datastore_files": Access.WRITE,
    # workspace settings
    "get_meta": Access.READ,
    "set_meta": Access.WRITE,
}

PRIVATE_META_PREFIX = "server."

__all__ = ["METHODS", "PRIVATE_META_PREFIX", "Access"]
