"""datastores and the index of the files runlab wrote to each

Revision ID: 0004_datastores
Revises: 0003_status_history
"""
import sqlalchemy as sa
from alembic import op

revision = '0004_datastores'
down_revision = '0003_status_history'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('datastores',
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('config', sa.Text(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('datastore_files',
    sa.Column('datastore', sa.String(length=255), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('etag', sa.String(length=255), nullable=True),
    sa.Column('uploaded_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['datastore'], ['datastores.name'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('datastore', 'path')
    )


def downgrade() -> None:
    op.drop_table('datastore_files')
    op.drop_table('datastores')
