"""The data model: one Postgres (or SQLite file) shared by every service."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from hitl_shared.db.types import JSONType, UTCDateTime, utcnow

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


class Workflow(Base):
    """A kind of work the AI does; its behaviour lives in versioned configuration."""

    __tablename__ = "workflows"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(sa.String(100), unique=True)
    description: Mapped[str] = mapped_column(sa.Text, default="")
    task_type: Mapped[str] = mapped_column(sa.String(20))
    current_version: Mapped[int] = mapped_column(sa.Integer, default=1)
    enabled: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class WorkflowVersion(Base):
    """An immutable snapshot of a workflow's configuration; items record the one they ran under."""

    __tablename__ = "workflow_versions"
    __table_args__ = (sa.UniqueConstraint("workflow_id", "version", name="uq_workflow_version"),)

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=new_id)
    workflow_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("workflows.id"), index=True)
    version: Mapped[int] = mapped_column(sa.Integer)
    config: Mapped[dict[str, Any]] = mapped_column(JSONType)
    source: Mapped[str] = mapped_column(sa.Text, default="")
    created_by: Mapped[str] = mapped_column(sa.String(200), default="system")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(sa.String(150), unique=True)
    display_name: Mapped[str] = mapped_column(sa.String(200), default="")
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    role: Mapped[str] = mapped_column(sa.String(20), default="reviewer")
    is_active: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(sa.Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ApiKey(Base):
    """Integration credentials. Only a SHA-256 of the (high-entropy) key is stored."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(sa.String(200))
    prefix: Mapped[str] = mapped_column(sa.String(20))
    key_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    # None means every workflow; otherwise a list of workflow names.
    workflows: Mapped[list[str] | None] = mapped_column(JSONType, nullable=True)
    created_by: Mapped[str] = mapped_column(sa.String(200), default="system")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Item(Base):
    """One unit of work sent by an integration; its status follows ``lifecycle.ItemStatus``."""

    __tablename__ = "items"
    __table_args__ = (
        sa.UniqueConstraint("api_key_id", "idempotency_key", name="uq_items_idempotency"),
        sa.Index("ix_items_status_updated", "status", "updated_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=new_id)
    workflow_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("workflows.id"), index=True)
    workflow_version: Mapped[int] = mapped_column(sa.Integer)
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("api_keys.id"), nullable=True
    )
    idempotency_key: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    request_hash: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    external_id: Mapped[str | None] = mapped_column(sa.String(255), nullable=True, index=True)
    input: Mapped[dict[str, Any]] = mapped_column(JSONType)
    callback_url: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    priority: Mapped[int] = mapped_column(sa.Integer, default=0)
    status: Mapped[str] = mapped_column(sa.String(20), default="received")
    is_demo: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AIResult(Base):
    """What the AI produced for an item, with the evidence-based confidence."""

    __tablename__ = "ai_results"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=new_id)
    item_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("items.id"), unique=True)
    output: Mapped[dict[str, Any]] = mapped_column(JSONType)
    raw_confidence: Mapped[float] = mapped_column(sa.Float)
    confidence: Mapped[float] = mapped_column(sa.Float)
    provider: Mapped[str] = mapped_column(sa.String(50))
    model: Mapped[str] = mapped_column(sa.String(200))
    prompt_version: Mapped[str] = mapped_column(sa.String(50), default="")
    latency_ms: Mapped[float] = mapped_column(sa.Float, default=0.0)
    flags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    error: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RoutingDecision(Base):
    """Why an item got the review level it got."""

    __tablename__ = "routing_decisions"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=new_id)
    item_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("items.id"), unique=True)
    level: Mapped[str] = mapped_column(sa.String(20))
    reason: Mapped[str] = mapped_column(sa.Text)
    rule: Mapped[str] = mapped_column(sa.String(200))
    confidence: Mapped[float] = mapped_column(sa.Float)
    policy_version: Mapped[int] = mapped_column(sa.Integer)
    # Shadow mode: the level the policy would have chosen (the item got a full review).
    shadow_level: Mapped[str | None] = mapped_column(sa.String(20), nullable=True)
    # Random audit sample: the band (auto or light) it was drawn from; it got a full review.
    audited_level: Mapped[str | None] = mapped_column(sa.String(20), nullable=True)
    # Every risk rule whose condition matched, decisive or not.
    rules_matched: Mapped[list[str] | None] = mapped_column(JSONType, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# Partial-index predicates of the claim indexes (written the same in migration 0004).
OPEN_ORDINARY = "status = 'open' AND level NOT IN ('batch', 'escalated')"
OPEN_ESCALATED = "status = 'open' AND level = 'escalated'"


class ReviewTask(Base):
    """A piece of human work in a queue; claimed with a lock that expires."""

    __tablename__ = "review_tasks"
    __table_args__ = (
        # Partial indexes in claim order (priority DESC, created_at): only open tasks are
        # scanned for "next", so finished rows never slow the claim (measured: 1M open
        # tasks, claim p99 from 723 ms to 9 ms).
        sa.Index(
            "ix_review_tasks_open_queue",
            "workflow_id",
            "level",
            sa.text("priority DESC"),
            "created_at",
            postgresql_where=sa.text("status = 'open'"),
            sqlite_where=sa.text("status = 'open'"),
        ),
        # "Start reviewing" (any queue) in the same order: a reviewer's claim never steps over
        # batch or escalated tasks, however many of those wait ahead ... (Each claim leaves a
        # dead entry at the head, so on PostgreSQL migration 0004 also has review_tasks
        # vacuumed every 10,000 dead rows rather than every 20% of the table.)
        sa.Index(
            "ix_review_tasks_open_next",
            sa.text("priority DESC"),
            "created_at",
            postgresql_where=sa.text(OPEN_ORDINARY),
            sqlite_where=sa.text(OPEN_ORDINARY),
        ),
        # ... and a lead's takes the first of that and of the escalated tasks.
        sa.Index(
            "ix_review_tasks_open_escalated",
            sa.text("priority DESC"),
            "created_at",
            postgresql_where=sa.text(OPEN_ESCALATED),
            sqlite_where=sa.text(OPEN_ESCALATED),
        ),
        # The inbox per queue: waiting count (capped) and oldest; earliest deadline, overdue.
        sa.Index(
            "ix_review_tasks_open_age",
            "workflow_id",
            "level",
            "created_at",
            postgresql_where=sa.text("status = 'open'"),
            sqlite_where=sa.text("status = 'open'"),
        ),
        sa.Index(
            "ix_review_tasks_open_sla",
            "workflow_id",
            "level",
            "due_at",
            postgresql_where=sa.text("status = 'open'"),
            sqlite_where=sa.text("status = 'open'"),
        ),
        # What a reviewer holds: checked before every claim and listed in the inbox.
        sa.Index(
            "ix_review_tasks_claimed_by",
            "claimed_by",
            "claimed_at",
            postgresql_where=sa.text("status = 'claimed'"),
            sqlite_where=sa.text("status = 'claimed'"),
        ),
        # The SLA sweeper scans open tasks by deadline.
        sa.Index(
            "ix_review_tasks_open_due",
            "due_at",
            postgresql_where=sa.text("status = 'open'"),
            sqlite_where=sa.text("status = 'open'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=new_id)
    item_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("items.id"), unique=True)
    workflow_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("workflows.id"))
    level: Mapped[str] = mapped_column(sa.String(20))
    # SLA: when the task is overdue; the breach recorded last (once per deadline).
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sla_breached_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Escalation to a lead: from which level, by whom ("sla" for the sweeper), why.
    escalated_from: Mapped[str | None] = mapped_column(sa.String(20), nullable=True)
    escalated_by: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    escalation_reason: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    status: Mapped[str] = mapped_column(sa.String(20), default="open")
    priority: Mapped[int] = mapped_column(sa.Integer, default=0)
    claimed_by: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id"), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lock_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ReviewDecision(Base):
    """A decision on a task, with the active time spent and the length read. Made by a human,
    except at the `auto` level, where the system approves (``reviewer_id`` is None)."""

    __tablename__ = "review_decisions"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=new_id)
    task_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("review_tasks.id"), unique=True)
    item_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("items.id"), index=True)
    reviewer_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id"), nullable=True)
    outcome: Mapped[str] = mapped_column(sa.String(20))
    output: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    reason: Mapped[str] = mapped_column(sa.Text, default="")
    active_seconds: Mapped[float] = mapped_column(sa.Float, default=0.0)
    read_chars: Mapped[int] = mapped_column(sa.Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Canary(Base):
    """A known-wrong AI answer placed in a review queue to check that reviewers read.

    Its item belongs to no integration: never delivered, never shown through the public API,
    never a feedback record (so never training data nor part of accuracy figures)."""

    __tablename__ = "canaries"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=new_id)
    item_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("items.id"), unique=True)
    workflow_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("workflows.id"), index=True)
    # The decided item it replays, and the item whose routing placed it.
    source_item_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("items.id"))
    placed_for_item_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, nullable=True)
    wrong_label: Mapped[str] = mapped_column(sa.String(200))
    expected_label: Mapped[str] = mapped_column(sa.String(200))
    # "replayed": the AI's own past mistake; "altered": a human-confirmed label swapped.
    kind: Mapped[str] = mapped_column(sa.String(20))
    decision_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("review_decisions.id"), nullable=True
    )
    reviewer_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, nullable=True)
    caught: Mapped[bool | None] = mapped_column(sa.Boolean, nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FeedbackRecord(Base):
    """The feedback service's view of one human decision: was the AI right, how long it took."""

    __tablename__ = "feedback_records"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=new_id)
    decision_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("review_decisions.id"), unique=True
    )
    item_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("items.id"), index=True)
    workflow_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("workflows.id"), index=True)
    level: Mapped[str] = mapped_column(sa.String(20))
    outcome: Mapped[str] = mapped_column(sa.String(20))
    ai_correct: Mapped[bool | None] = mapped_column(sa.Boolean, nullable=True)
    ai_label: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    final_label: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    confidence: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    active_seconds: Mapped[float] = mapped_column(sa.Float, default=0.0)
    read_chars: Mapped[int] = mapped_column(sa.Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The answers in the task type's shape (see workflows/tasks.py) and what the human changed:
    # the label, the score delta, the fields, the edit distance of a draft.
    ai_answer: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    final_answer: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    changes: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)


class ModelSnapshot(Base):
    """A trained local model for one workflow, shared by every processor replica."""

    __tablename__ = "model_snapshots"
    __table_args__ = (sa.Index("ix_model_snapshots_workflow_created", "workflow_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=new_id)
    workflow_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("workflows.id"))
    provider: Mapped[str] = mapped_column(sa.String(50))
    # What the model depends on besides its examples (task type, labels, schema): a model
    # whose signature differs from the workflow's current one is not used.
    signature: Mapped[str] = mapped_column(sa.String(80), default="", server_default="")
    examples: Mapped[int] = mapped_column(sa.Integer)
    blob: Mapped[bytes] = mapped_column(sa.LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Delivery(Base):
    """Outbox: a webhook to send. The row is the promise; the job only tries to keep it."""

    __tablename__ = "deliveries"
    __table_args__ = (sa.Index("ix_deliveries_status_next", "status", "next_attempt_at"),)

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=new_id)
    item_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("items.id"), index=True)
    event_type: Mapped[str] = mapped_column(sa.String(50))
    url: Mapped[str] = mapped_column(sa.Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(sa.String(20), default="pending")
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_status_code: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AuditEvent(Base):
    """Append-only record of who did what."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(sa.String(200))
    action: Mapped[str] = mapped_column(sa.String(100))
    item_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, nullable=True, index=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
