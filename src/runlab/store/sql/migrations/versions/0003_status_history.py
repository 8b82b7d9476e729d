"""status history of runs (when each status was reached)

Revision ID: 0003_status_history
Revises: 0002_environments_compute
"""
import sqlalchemy as sa
from alembic import op

revision = '0003_status_history'
down_revision = '0002_environments_compute'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('run_status_history',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('run_pk', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['run_pk'], ['runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('run_status_history', schema=None) as batch_op:
        batch_op.create_index('ix_run_status_history_run', ['run_pk'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('run_status_history', schema=None) as batch_op:
        batch_op.drop_index('ix_run_status_history_run')
    op.drop_table('run_status_history')
