"""archived runs and run notes (the studio's write actions: archive/unarchive a run, add a note)

Revision ID: 0010_run_archive_notes
Revises: 0009_tokens
"""
import sqlalchemy as sa
from alembic import op

revision = '0010_run_archive_notes'
down_revision = '0009_tokens'
branch_labels = None
depends_on = None


# Plain ALTER TABLE (no batch copy of `runs`): recreating it would cascade to every child table of a
# database opened with foreign keys on.
def upgrade() -> None:
    op.add_column('runs', sa.Column('archived_at', sa.Float(), nullable=True))
    op.create_table('run_notes',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('run_pk', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('author', sa.String(length=400), nullable=True),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['run_pk'], ['runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_run_notes_run', 'run_notes', ['run_pk', 'created_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_run_notes_run', table_name='run_notes')
    op.drop_table('run_notes')
    op.drop_column('runs', 'archived_at')
