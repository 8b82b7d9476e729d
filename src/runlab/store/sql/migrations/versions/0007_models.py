"""registered model versions, their files and datasets

Revision ID: 0007_models
Revises: 0006_run_inputs
"""
import sqlalchemy as sa
from alembic import op

revision = '0007_models'
down_revision = '0006_run_inputs'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('models',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.String(length=320), nullable=True),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('tags', sa.Text(), nullable=False),
    sa.Column('properties', sa.Text(), nullable=False),
    sa.Column('framework', sa.String(length=255), nullable=True),
    sa.Column('framework_version', sa.String(length=255), nullable=True),
    sa.Column('details', sa.Text(), nullable=False),
    sa.Column('file_count', sa.Integer(), nullable=False),
    sa.Column('total_size', sa.BigInteger(), nullable=False),
    sa.Column('files_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name', 'version', name='uq_models_name_version')
    )
    op.create_index('ix_models_run', 'models', ['run_id'], unique=False)
    op.create_table('model_files',
    sa.Column('model_pk', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('source', sa.Text(), nullable=True),
    sa.Column('source_etag', sa.String(length=255), nullable=True),
    sa.ForeignKeyConstraint(['model_pk'], ['models.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('model_pk', 'seq')
    )
    op.create_index('ix_model_files_source', 'model_files', ['source'], unique=False)
    op.create_index('ix_model_files_sha256', 'model_files', ['sha256'], unique=False)
    op.create_table('model_datasets',
    sa.Column('model_pk', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('scenario', sa.String(length=255), nullable=False),
    sa.Column('dataset_id', sa.String(length=64), nullable=True),
    sa.Column('dataset_name', sa.String(length=255), nullable=True),
    sa.Column('dataset_version', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['model_pk'], ['models.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('model_pk', 'seq')
    )


def downgrade() -> None:
    op.drop_table('model_datasets')
    op.drop_index('ix_model_files_sha256', table_name='model_files')
    op.drop_index('ix_model_files_source', table_name='model_files')
    op.drop_table('model_files')
    op.drop_index('ix_models_run', table_name='models')
    op.drop_table('models')
