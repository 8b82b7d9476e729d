"""Tables of the metadata store. Changes go through an Alembic migration (migrations/versions).

Series are kept apart from the run list: ``metric_chunks`` holds compact arrays (one row per
flushed batch of one metric), ``metrics`` one summary row per run and metric (count, last, min,
max) so that run tables and sorts never read a series.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

# The Alembic revision this code expects; a test pins it to the newest migration file.
SCHEMA_REVISION = "0012_steps_int64_runs"

metadata = MetaData()

workspace_meta = Table(
    "workspace_meta",
    metadata,
    Column("key", String(255), primary_key=True),
    Column("value", Text, nullable=False),
)

experiments = Table(
    "experiments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    Column("tags", Text, nullable=True),  # JSON object of str -> str; NULL: none
    Column("archived_at", Float, nullable=True),  # set by Experiment.archive(), cleared by reactivate()
)

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(320), nullable=False, unique=True),
    Column("experiment_id", Integer, ForeignKey("experiments.id", ondelete="CASCADE"), nullable=False),
    Column("parent_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), nullable=True),
    Column("display_name", String(255), nullable=True),
    Column("run_type", String(32), nullable=False),
    Column("status", String(32), nullable=False),
    Column("target", String(255), nullable=False, default="local"),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("ended_at", Float, nullable=True),
    Column("heartbeat_at", Float, nullable=True),
    Column("owner", String(512), nullable=True),
    Column("error", Text, nullable=True),
    Column("definition", Text, nullable=True),
    Column("description", Text, nullable=False, default=""),
    Column("archived_at", Float, nullable=True),  # archived from the studio (hidden from listings) when set
    Index("ix_runs_experiment_created", "experiment_id", "created_at"),
    Index("ix_runs_status", "status"),
    Index("ix_runs_parent", "parent_id"),
    Index("ix_runs_created", "created_at"),
)

run_notes = Table(
    "run_notes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_pk", Integer, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("text", Text, nullable=False),
    Column("author", String(400), nullable=True),
    Column("created_at", Float, nullable=False),
    Index("ix_run_notes_run", "run_pk", "created_at"),
)

run_tags = Table(
    "run_tags",
    metadata,
    Column("run_pk", Integer, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(255), nullable=False),
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("run_pk", "key"),
    Index("ix_run_tags_key", "key"),
)

run_properties = Table(
    "run_properties",
    metadata,
    Column("run_pk", Integer, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(255), nullable=False),
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("run_pk", "key"),
    Index("ix_run_properties_key", "key"),
)

metrics = Table(
    "metrics",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_pk", Integer, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("count", Integer, nullable=False, default=0),
    Column("chunks", Integer, nullable=False, default=0),
    Column("last_json", Text, nullable=True),
    Column("last_number", Float, nullable=True),
    Column("last_step", BigInteger().with_variant(Integer, "sqlite"), nullable=True),  # SQLite: INTEGER is 64-bit
    Column("last_time", Float, nullable=True),
    Column("min_value", Float, nullable=True),
    Column("max_value", Float, nullable=True),
    UniqueConstraint("run_pk", "name", name="uq_metrics_run_name"),
    Index("ix_metrics_name_last", "name", "last_number"),
)

metric_chunks = Table(
    "metric_chunks",
    metadata,
    Column("metric_id", Integer, ForeignKey("metrics.id", ondelete="CASCADE"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("count", Integer, nullable=False),
    Column("encoding", String(8), nullable=False),
    Column("steps", LargeBinary, nullable=False),
    Column("times", LargeBinary, nullable=False),
    Column("values", LargeBinary, nullable=False),
    PrimaryKeyConstraint("metric_id", "seq"),
)

applied_batches = Table(
    "applied_batches",
    metadata,
    Column("batch_id", String(64), primary_key=True),
    Column("applied_at", Float, nullable=False),
)

environments = Table(
    "environments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False),
    Column("version", Integer, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("definition", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("name", "version", name="uq_environments_name_version"),
)

compute_targets = Table(
    "compute_targets",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("vm_size", String(64), nullable=True),
    Column("min_nodes", Integer, nullable=False, default=0),
    Column("max_nodes", Integer, nullable=False),
    Column("idle_seconds_before_scaledown", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("state", String(32), nullable=False),
    Column("settings", Text, nullable=False, default="{}"),
)

run_status_history = Table(
    "run_status_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_pk", Integer, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("status", String(32), nullable=False),
    Column("at", Float, nullable=False),
    Index("ix_run_status_history_run", "run_pk"),
)

# -- datastores (0004_datastores) -----------------------------------------------------------------
# A registered datastore: where its files are (``config``, JSON, never credentials). Its file index
# holds one row per file runlab wrote there, written once the file is complete: its size and sha256,
# and the object store's etag of the file then, so an upload skips what is already there and notices
# a file changed since.

datastores = Table(
    "datastores",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("config", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

datastore_files = Table(
    "datastore_files",
    metadata,
    Column("datastore", String(255), ForeignKey("datastores.name", ondelete="CASCADE"), nullable=False),
    Column("path", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("etag", String(255), nullable=True),
    Column("uploaded_at", Float, nullable=False),
    PrimaryKeyConstraint("datastore", "path"),
)

# -- datasets (0005_datasets) ---------------------------------------------------------------------
# Registered dataset versions (immutable: never updated) and the files each recorded, in the
# dataset's order. Sizes are BigInteger: PostgreSQL's INTEGER stops at 2 GiB.

datasets = Table(
    "datasets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dataset_id", String(64), nullable=False, unique=True),
    Column("name", String(255), nullable=False),
    Column("version", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("definition", Text, nullable=False),
    Column("files_hash", String(64), nullable=False),
    Column("file_count", Integer, nullable=False),
    Column("total_size", BigInteger, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("tags", Text, nullable=False, default="{}"),
    Column("created_at", Float, nullable=False),
    Column("data_changed_at", Float, nullable=True),
    UniqueConstraint("name", "version", name="uq_datasets_name_version"),
)

dataset_files = Table(
    "dataset_files",
    metadata,
    Column("dataset_pk", Integer, ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("datastore", String(255), nullable=True),
    Column("path", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("modified_at", Float, nullable=True),
    PrimaryKeyConstraint("dataset_pk", "seq"),
)

# -- run inputs (0006_run_inputs) ------------------------------------------------------------------
# The datasets a submitted run consumed (lineage): one row per named input. A registered dataset is
# named by id, name and version; files_hash, file_count and total_size say which bytes the run saw
# (set by the agent when it made the input available; the view of an unregistered dataset too).

run_inputs = Table(
    "run_inputs",
    metadata,
    Column("run_pk", Integer, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("mode", String(16), nullable=False),
    Column("dataset_id", String(64), nullable=True),
    Column("dataset_name", String(255), nullable=True),
    Column("dataset_version", Integer, nullable=True),
    Column("files_hash", String(64), nullable=True),
    Column("file_count", Integer, nullable=True),
    Column("total_size", BigInteger, nullable=True),
    PrimaryKeyConstraint("run_pk", "name"),
    Index("ix_run_inputs_dataset", "dataset_name", "dataset_version"),
)

# -- models (0007_models) --------------------------------------------------------------------------
# Registered model versions: their files never change (the bytes are stored once by sha256 under
# files/models/objects/), their tags, properties and description may. ``model_files.source`` and
# ``source_etag`` say where each file was copied from and that file's identity then, so that
# registering unchanged files again reads nothing (the index on source finds them).

models = Table(
    "models",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False),
    Column("version", Integer, nullable=False),
    Column("run_id", String(320), nullable=True),
    Column("path", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("tags", Text, nullable=False, default="{}"),
    Column("properties", Text, nullable=False, default="{}"),
    Column("framework", String(255), nullable=True),
    Column("framework_version", String(255), nullable=True),
    Column("details", Text, nullable=False, default="{}"),
    Column("file_count", Integer, nullable=False),
    Column("total_size", BigInteger, nullable=False),
    Column("files_hash", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("name", "version", name="uq_models_name_version"),
    Index("ix_models_run", "run_id"),
)

model_files = Table(
    "model_files",
    metadata,
    Column("model_pk", Integer, ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("path", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("source", Text, nullable=True),
    Column("source_etag", String(255), nullable=True),
    PrimaryKeyConstraint("model_pk", "seq"),
    Index("ix_model_files_source", "source"),
    Index("ix_model_files_sha256", "sha256"),
)

model_datasets = Table(
    "model_datasets",
    metadata,
    Column("model_pk", Integer, ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("scenario", String(255), nullable=False),
    Column("dataset_id", String(64), nullable=True),
    Column("dataset_name", String(255), nullable=True),
    Column("dataset_version", Integer, nullable=True),
    PrimaryKeyConstraint("model_pk", "seq"),
)


# -- tokens (0009_tokens) --------------------------------------------------------------------------
# The server's access tokens (runlab.store.sql.tokens): a public id, a role, and a PBKDF2 hash of the
# secret, never the secret itself. A run's token (role "run") names the one run it may write.

tokens = Table(
    "tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token_id", String(32), nullable=False, unique=True),
    Column("name", String(400), nullable=False),
    Column("role", String(16), nullable=False),
    Column("run_id", String(320), nullable=True),
    Column("secret_hash", String(255), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=True),
    Column("revoked_at", Float, nullable=True),
    Column("last_used_at", Float, nullable=True),
    Index("ix_tokens_name", "name"),
    Index("ix_tokens_run", "run_id"),
)
