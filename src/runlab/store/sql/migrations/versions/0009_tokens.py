"""the server's access tokens (runlab token create|list|revoke; a token per submitted run)

Revision ID: 0009_tokens
Revises: 0008_experiment_tags
"""
import sqlalchemy as sa
from alembic import op

revision = '0009_tokens'
down_revision = '0008_experiment_tags'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('tokens',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('token_id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=400), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('run_id', sa.String(length=320), nullable=True),
    sa.Column('secret_hash', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('expires_at', sa.Float(), nullable=True),
    sa.Column('revoked_at', sa.Float(), nullable=True),
    sa.Column('last_used_at', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_id')
    )
    op.create_index('ix_tokens_name', 'tokens', ['name'], unique=False)
    op.create_index('ix_tokens_run', 'tokens', ['run_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_tokens_run', table_name='tokens')
    op.drop_index('ix_tokens_name', table_name='tokens')
    op.drop_table('tokens')
