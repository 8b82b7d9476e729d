"""series chunks compressed with lz4 on PostgreSQL (its default, pglz, took most of an append's time)

PostgreSQL compresses a ``bytea`` over about 2 KB when it stores it; with pglz, its default, storing
a 50,000-point chunk (1.2 MB) took 49-83 ms here, with lz4 22 ms, for 10 % more bytes
(benchmarks/bench_server_scale.py's ingest figure goes through it). Values stored before keep pglz
(PostgreSQL reads both). PostgreSQL before 14 has no per-column compression, and a server built
without lz4 refuses it: both keep pglz, with a notice. SQLite stores blobs as they are: nothing to do.

Revision ID: 0011_chunks_lz4
Revises: 0010_run_archive_notes
"""
from alembic import op

revision = '0011_chunks_lz4'
down_revision = '0010_run_archive_notes'
branch_labels = None
depends_on = None

_COLUMNS = ('steps', 'times', 'values')


def _set(method: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != 'postgresql' or (bind.dialect.server_version_info or (0,)) < (14,):
        return
    alter = ', '.join(f'ALTER COLUMN "{c}" SET COMPRESSION {method}' for c in _COLUMNS)
    op.execute(f"""DO $$ BEGIN
        ALTER TABLE metric_chunks {alter};
    EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
        RAISE NOTICE 'metric_chunks keeps its compression: %', SQLERRM;
    END $$""")


def upgrade() -> None:
    _set('lz4')


def downgrade() -> None:
    _set('pglz')
