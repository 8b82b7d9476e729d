"""the datasets each run consumed

Revision ID: 0006_run_inputs
Revises: 0005_datasets
"""
import sqlalchemy as sa
from alembic import op

revision = '0006_run_inputs'
down_revision = '0005_datasets'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('run_inputs',
    sa.Column('run_pk', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('dataset_id', sa.String(length=64), nullable=True),
    sa.Column('dataset_name', sa.String(length=255), nullable=True),
    sa.Column('dataset_version', sa.Integer(), nullable=True),
    sa.Column('files_hash', sa.String(length=64), nullable=True),
    sa.Column('file_count', sa.Integer(), nullable=True),
    sa.Column('total_size', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['run_pk'], ['runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_pk', 'name')
    )
    op.create_index('ix_run_inputs_dataset', 'run_inputs', ['dataset_name', 'dataset_version'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_run_inputs_dataset', table_name='run_inputs')
    op.drop_table('run_inputs')
