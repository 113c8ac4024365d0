"""claim and inbox indexes: any-queue claims never step over batch or escalated tasks; the
inbox reads each queue's count (capped), oldest task and earliest deadline from an index;
review_tasks is vacuumed after a fixed number of changes, not a fifth of the table

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

OPEN_ORDINARY = "status = 'open' AND level NOT IN ('batch', 'escalated')"
OPEN_ESCALATED = "status = 'open' AND level = 'escalated'"
OPEN = "status = 'open'"


def upgrade() -> None:
    with op.batch_alter_table('review_tasks', schema=None) as batch_op:
        # Replaced by the two below: every open task, so a reviewer's "any queue" claim read
        # (and skipped) each batch or escalated task waiting ahead - after an SLA sweep in a
        # backlog, every overdue one.
        batch_op.drop_index('ix_review_tasks_open_any', postgresql_where=sa.text(OPEN), sqlite_where=sa.text(OPEN))
        batch_op.create_index('ix_review_tasks_open_next', [sa.text('priority DESC'), 'created_at'], unique=False, postgresql_where=sa.text(OPEN_ORDINARY), sqlite_where=sa.text(OPEN_ORDINARY))
        batch_op.create_index('ix_review_tasks_open_escalated', [sa.text('priority DESC'), 'created_at'], unique=False, postgresql_where=sa.text(OPEN_ESCALATED), sqlite_where=sa.text(OPEN_ESCALATED))
        # The inbox: it scanned every open task to count and date each queue.
        batch_op.create_index('ix_review_tasks_open_age', ['workflow_id', 'level', 'created_at'], unique=False, postgresql_where=sa.text(OPEN), sqlite_where=sa.text(OPEN))
        batch_op.create_index('ix_review_tasks_open_sla', ['workflow_id', 'level', 'due_at'], unique=False, postgresql_where=sa.text(OPEN), sqlite_where=sa.text(OPEN))

    if op.get_bind().dialect.name == 'postgresql':
        # Every claim leaves a dead entry at the head of the claim index, which every later
        # claim reads past (and, while an old snapshot is open anywhere, checks in the table)
        # until VACUUM removes it. By default that waits for dead rows worth 20% of the table:
        # 100,000 claims with a million tasks waiting. Claim cost then grew with every claim.
        op.execute(
            'ALTER TABLE review_tasks SET (autovacuum_vacuum_scale_factor = 0, '
            'autovacuum_vacuum_threshold = 10000)'
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(
            'ALTER TABLE review_tasks RESET (autovacuum_vacuum_scale_factor, '
            'autovacuum_vacuum_threshold)'
        )
    with op.batch_alter_table('review_tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_review_tasks_open_sla', postgresql_where=sa.text(OPEN), sqlite_where=sa.text(OPEN))
        batch_op.drop_index('ix_review_tasks_open_age', postgresql_where=sa.text(OPEN), sqlite_where=sa.text(OPEN))
        batch_op.drop_index('ix_review_tasks_open_escalated', postgresql_where=sa.text(OPEN_ESCALATED), sqlite_where=sa.text(OPEN_ESCALATED))
        batch_op.drop_index('ix_review_tasks_open_next', postgresql_where=sa.text(OPEN_ORDINARY), sqlite_where=sa.text(OPEN_ORDINARY))
        batch_op.create_index('ix_review_tasks_open_any', [sa.text('priority DESC'), 'created_at'], unique=False, postgresql_where=sa.text(OPEN), sqlite_where=sa.text(OPEN))
