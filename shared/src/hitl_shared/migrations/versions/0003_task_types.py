"""task types: the AI's and the reviewer's answers and what changed, per feedback record; model signatures

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    with op.batch_alter_table('feedback_records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ai_answer', JSON, nullable=True))
        batch_op.add_column(sa.Column('final_answer', JSON, nullable=True))
        batch_op.add_column(sa.Column('changes', JSON, nullable=True))

    with op.batch_alter_table('model_snapshots', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('signature', sa.String(length=80), server_default='', nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table('model_snapshots', schema=None) as batch_op:
        batch_op.drop_column('signature')

    with op.batch_alter_table('feedback_records', schema=None) as batch_op:
        batch_op.drop_column('changes')
        batch_op.drop_column('final_answer')
        batch_op.drop_column('ai_answer')
