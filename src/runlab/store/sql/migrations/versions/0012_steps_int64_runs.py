"""steps are 64-bit on PostgreSQL too; series chunks whose steps are consecutive store only their first

``metrics.last_step`` was a 32-bit integer on PostgreSQL: a run logging ``step=3_000_000_000`` (a count
of samples or tokens) failed to write there, "integer out of range", where SQLite's integers are
64-bit. It is a bigint now, as the steps of every chunk always were.

``run.log`` without ``step=`` (the common case) logs steps 0, 1, 2, ...: a chunk of such points now
stores its first step alone (8 bytes) instead of 8 bytes a point, read back as that run
(runlab.store.series.encode_steps/decode_steps). A third of what each point cost to compress and
write ahead on PostgreSQL. Chunks written before keep their full arrays (read as they are): the
upgrade changes no table. The revision marks that a store may hold such chunks, so that a runlab
that cannot read them refuses the store rather than misreading it; the downgrade writes every such
chunk's steps out in full.

Revision ID: 0012_steps_int64_runs
Revises: 0011_chunks_lz4
"""
import numpy as np
import sqlalchemy as sa
from alembic import op

revision = '0012_steps_int64_runs'
down_revision = '0011_chunks_lz4'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.alter_column('metrics', 'last_step', type_=sa.BigInteger(), existing_type=sa.Integer(),
                        existing_nullable=True)


def downgrade() -> None:
    bind = op.get_bind()
    chunks = sa.table('metric_chunks', sa.column('metric_id'), sa.column('seq'), sa.column('count'),
                      sa.column('steps', sa.LargeBinary))
    rows = bind.execute(sa.select(chunks.c.metric_id, chunks.c.seq, chunks.c['count'], chunks.c.steps)
                        .where(chunks.c['count'] > 1, sa.func.length(chunks.c.steps) == 8)).all()
    for metric_id, seq, count, steps in rows:
        first = int(np.frombuffer(bytes(steps), dtype=np.int64)[0])
        full = np.arange(first, first + count, dtype=np.int64).tobytes()
        bind.execute(chunks.update().where(chunks.c.metric_id == metric_id, chunks.c.seq == seq).values(steps=full))
    if bind.dialect.name == 'postgresql':  # fails, saying so, while a step beyond 32 bits is stored
        op.alter_column('metrics', 'last_step', type_=sa.Integer(), existing_type=sa.BigInteger(),
                        existing_nullable=True)
