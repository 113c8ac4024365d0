"""routing policy: risk rules, audit samples, shadow mode, SLAs, escalation, canaries, auto

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from hitl_shared.db.types import UTCDateTime

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    with op.batch_alter_table('routing_decisions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('shadow_level', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('audited_level', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('rules_matched', JSON, nullable=True))

    with op.batch_alter_table('review_tasks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('due_at', UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('sla_breached_at', UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('escalated_from', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('escalated_by', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('escalation_reason', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('escalated_at', UTCDateTime(), nullable=True))
        batch_op.create_index('ix_review_tasks_open_due', ['due_at'], unique=False, postgresql_where=sa.text("status = 'open'"), sqlite_where=sa.text("status = 'open'"))

    # The system approves `auto` items: such a decision has no human reviewer.
    with op.batch_alter_table('review_decisions', schema=None) as batch_op:
        batch_op.alter_column('reviewer_id', existing_type=sa.Uuid(), nullable=True)

    op.create_table('canaries',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('item_id', sa.Uuid(), nullable=False),
    sa.Column('workflow_id', sa.Uuid(), nullable=False),
    sa.Column('source_item_id', sa.Uuid(), nullable=False),
    sa.Column('placed_for_item_id', sa.Uuid(), nullable=True),
    sa.Column('wrong_label', sa.String(length=200), nullable=False),
    sa.Column('expected_label', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('decision_id', sa.Uuid(), nullable=True),
    sa.Column('reviewer_id', sa.Uuid(), nullable=True),
    sa.Column('caught', sa.Boolean(), nullable=True),
    sa.Column('decided_at', UTCDateTime(), nullable=True),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['decision_id'], ['review_decisions.id'], name=op.f('fk_canaries_decision_id_review_decisions')),
    sa.ForeignKeyConstraint(['item_id'], ['items.id'], name=op.f('fk_canaries_item_id_items')),
    sa.ForeignKeyConstraint(['source_item_id'], ['items.id'], name=op.f('fk_canaries_source_item_id_items')),
    sa.ForeignKeyConstraint(['workflow_id'], ['workflows.id'], name=op.f('fk_canaries_workflow_id_workflows')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_canaries')),
    sa.UniqueConstraint('item_id', name=op.f('uq_canaries_item_id'))
    )
    with op.batch_alter_table('canaries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_canaries_workflow_id'), ['workflow_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('canaries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_canaries_workflow_id'))
    op.drop_table('canaries')

    with op.batch_alter_table('review_decisions', schema=None) as batch_op:
        batch_op.alter_column('reviewer_id', existing_type=sa.Uuid(), nullable=False)

    with op.batch_alter_table('review_tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_review_tasks_open_due', postgresql_where=sa.text("status = 'open'"), sqlite_where=sa.text("status = 'open'"))
        batch_op.drop_column('escalated_at')
        batch_op.drop_column('escalation_reason')
        batch_op.drop_column('escalated_by')
        batch_op.drop_column('escalated_from')
        batch_op.drop_column('sla_breached_at')
        batch_op.drop_column('due_at')

    with op.batch_alter_table('routing_decisions', schema=None) as batch_op:
        batch_op.drop_column('rules_matched')
        batch_op.drop_column('audited_level')
        batch_op.drop_column('shadow_level')
