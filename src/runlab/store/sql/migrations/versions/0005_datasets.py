"""registered dataset versions and their files

Revision ID: 0005_datasets
Revises: 0004_datastores
"""
import sqlalchemy as sa
from alembic import op

revision = '0005_datasets'
down_revision = '0004_datastores'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('datasets',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('dataset_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('definition', sa.Text(), nullable=False),
    sa.Column('files_hash', sa.String(length=64), nullable=False),
    sa.Column('file_count', sa.Integer(), nullable=False),
    sa.Column('total_size', sa.BigInteger(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('tags', sa.Text(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('data_changed_at', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('dataset_id'),
    sa.UniqueConstraint('name', 'version', name='uq_datasets_name_version')
    )
    op.create_table('dataset_files',
    sa.Column('dataset_pk', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('datastore', sa.String(length=255), nullable=True),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('modified_at', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['dataset_pk'], ['datasets.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('dataset_pk', 'seq')
    )


def downgrade() -> None:
    op.drop_table('dataset_files')
    op.drop_table('datasets')
