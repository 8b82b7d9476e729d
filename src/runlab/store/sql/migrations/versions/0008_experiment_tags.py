"""experiment tags and archiving (Azure ML v1's Experiment.tag, archive, reactivate)

Revision ID: 0008_experiment_tags
Revises: 0007_models
"""
import sqlalchemy as sa
from alembic import op

revision = '0008_experiment_tags'
down_revision = '0007_models'
branch_labels = None
depends_on = None


# Plain ALTER TABLE (no batch copy of the table): recreating `experiments` would cascade to the runs of a
# database opened with foreign keys on. SQLite drops columns in place from 3.35.
def upgrade() -> None:
    op.add_column('experiments', sa.Column('tags', sa.Text(), nullable=True))
    op.add_column('experiments', sa.Column('archived_at', sa.Float(), nullable=True))


def downgrade() -> None:
    op.drop_column('experiments', 'archived_at')
    op.drop_column('experiments', 'tags')
