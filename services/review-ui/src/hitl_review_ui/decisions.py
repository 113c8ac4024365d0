"""What a reviewer sees for a task, and what their decision does to the item."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from hitl_shared.db.models import (
    AIResult,
    AuditEvent,
    Canary,
    Delivery,
    Item,
    ReviewDecision,
    ReviewTask,
    RoutingDecision,
    Workflow,
    new_id,
)
from hitl_shared.db.types import utcnow
from hitl_shared.jobs import DELIVER_WEBHOOK, RECORD_FEEDBACK
from hitl_shared.lifecycle import (
    IllegalTransition,
    ItemStatus,
    Outcome,
    TaskStatus,
    can_transition,
)
from hitl_shared.public import item_view, webhook_payload
from hitl_shared.work import Work
from hitl_shared.workflows.config import WorkflowConfig
from hitl_shared.workflows.store import config_for
from hitl_shared.workflows.tasks import answer_from_output, label_set, output_errors, same_answer

REJECT_REASONS = {
    "wrong_input": "The input is not something this workflow should handle",
    "spam": "Spam or abuse",
    "duplicate": "Duplicate of another item",
    "insufficient_information": "Not enough information to decide",
    "other": "Other (explain in the note)",
}


class DecisionError(Exception):
    """A decision that cannot be taken; the message is shown to the reviewer."""


class TaskGone(DecisionError):
    """The task is no longer this reviewer's: its lock expired (and the sweeper returned it to
    the queue, or someone else took it) or it was decided."""

    def __init__(self) -> None:
        super().__init__(
            "This item is no longer assigned to you (its lock expired or it was decided); "
            "it has gone back to the queue."
        )


@dataclass
class ReviewContext:
    task: ReviewTask
    item: Item
    workflow: str
    config: WorkflowConfig
    ai: AIResult | None
    routing: RoutingDecision | None
    # A canary is the system's own test item: its decision never reaches an integration.
    is_canary: bool = False

    @property
    def text(self) -> str:
        parts = [
            str(self.item.input.get(name))
            for name in self.config.text_fields
            if self.item.input.get(name) is not None
        ]
        return "\n\n".join(parts)

    @property
    def other_fields(self) -> dict[str, Any]:
        return {k: v for k, v in self.item.input.items() if k not in self.config.text_fields}

    @property
    def ai_label(self) -> str | None:
        """The AI's label (its labels joined with " + " in a multi-label workflow)."""
        if self.ai is None:
            return None
        if self.config.multi_label:
            return " + ".join(self.ai_labels) or None
        label = self.ai.output.get("label")
        return label if isinstance(label, str) else None

    @property
    def ai_labels(self) -> list[str]:
        """The AI's labels, in the workflow's order (multi-label workflows)."""
        if self.ai is None or self.ai.error:
            return []
        return label_set(self.config, self.ai.output)

    @property
    def doubtful_labels(self) -> set[str]:
        """Multi-label: the label decisions (applies or not) the AI was least sure of, below
        the workflow's light-review threshold."""
        raw = (self.ai.output.get("label_probability") if self.ai else None) or {}
        limit = self.config.routing.thresholds.light
        return {
            name
            for name, p in raw.items()
            if isinstance(p, int | float) and max(float(p), 1 - float(p)) < limit
        }

    @property
    def ai_answer(self) -> dict[str, Any]:
        """The AI's answer in the task type's shape (empty when there is none)."""
        if self.ai is None or self.ai.error:
            return {}
        return answer_from_output(self.config, self.ai.output)

    @property
    def field_confidence(self) -> dict[str, float]:
        raw = (self.ai.output.get("field_confidence") if self.ai else None) or {}
        return {k: float(v) for k, v in raw.items() if isinstance(v, int | float)}

    @property
    def failed_rules(self) -> list[dict[str, Any]]:
        raw = (self.ai.output.get("failed_rules") if self.ai else None) or []
        return [r for r in raw if isinstance(r, dict)]

    @property
    def doubtful_fields(self) -> set[str]:
        """Fields to look at first: below the workflow's full-review threshold, or named by a
        failed rule."""
        limit = self.config.routing.thresholds.light
        out = {name for name, c in self.field_confidence.items() if c < limit}
        for rule in self.failed_rules:
            out.update(str(f) for f in rule.get("fields") or [])
        return out


def parse_answer(config: WorkflowConfig, form: dict[str, Any]) -> dict[str, Any]:
    """A reviewer's own answer from the decision form, in the task type's shape.

    Raises DecisionError with what to fix."""
    task = config.task_type
    if task == "classify" and config.multi_label:
        chosen = form.get("labels")
        answer: dict[str, Any] = {
            "labels": [v for v in chosen if isinstance(v, str)] if isinstance(chosen, list) else []
        }
    elif task == "classify":
        answer = {"label": form.get("label")}
    elif task == "score":
        raw = (form.get("score") or "").strip()
        try:
            score = float(raw)
        except ValueError:
            raise DecisionError(f"Enter the score as a number ({raw!r} is not one).") from None
        assert config.scale is not None
        answer = {"score": int(score) if score.is_integer() else score}
        rationale = (form.get("rationale") or "").strip()
        if rationale:
            answer["rationale"] = rationale[:4000]
    elif task == "extract":
        fields: dict[str, Any] = {}
        for name in config.field_names:
            value = (form.get(f"field.{name}") or "").strip()
            fields[name] = _field_value(config.field_spec(name), value, name)
        answer = {"fields": {k: v for k, v in fields.items() if v is not None}}
    else:
        answer = {"text": (form.get("text") or "").replace("\r\n", "\n").strip()}
    problems = output_errors(config, answer)
    if problems:
        raise DecisionError("Fix the answer: " + "; ".join(problems) + ".")
    return answer


def _field_value(spec: dict[str, Any], value: str, name: str) -> Any:
    """A form value as the field's JSON type; an empty box means the field is absent."""
    if value == "":
        return None
    kind = spec.get("type")
    if kind in ("number", "integer"):
        try:
            number = float(value.replace(",", ""))
        except ValueError:
            raise DecisionError(f"{name}: enter a number ({value!r} is not one).") from None
        if kind == "integer":
            if not number.is_integer():
                raise DecisionError(f"{name}: enter a whole number.")
            return int(number)
        return number
    if kind == "boolean":
        lowered = value.lower()
        if lowered in ("true", "yes", "1"):
            return True
        if lowered in ("false", "no", "0"):
            return False
        raise DecisionError(f"{name}: answer yes or no.")
    return value


async def load_context(session: AsyncSession, task_id: uuid.UUID) -> ReviewContext | None:
    """The task with its item, workflow name, AI result and routing decision: one query (one
    round trip instead of five; this runs twice per decision)."""
    row = (await session.execute(_context_statement(), {"task_id": task_id})).first()
    if row is None:
        return None
    task, item, name, ai, routing, canary_id = row
    config = await _config(session, item.workflow_id, item.workflow_version)
    return ReviewContext(task, item, name or "", config, ai, routing, canary_id is not None)


@functools.cache
def _context_statement() -> sa.Select[ReviewTask, Item, str, AIResult, RoutingDecision, uuid.UUID]:
    return (
        sa.select(ReviewTask, Item, Workflow.name, AIResult, RoutingDecision, Canary.id)
        .join(Item, Item.id == ReviewTask.item_id)
        .join(Workflow, Workflow.id == Item.workflow_id)
        .outerjoin(AIResult, AIResult.item_id == Item.id)
        .outerjoin(RoutingDecision, RoutingDecision.item_id == Item.id)
        .outerjoin(Canary, Canary.item_id == Item.id)
        .where(ReviewTask.id == sa.bindparam("task_id"))
    )


# Workflow versions never change once written, so their parsed configuration can be kept.
# Parsing is not cheap (the input JSON Schema is checked): ~3 ms, twice per decision.
_CONFIGS: dict[tuple[uuid.UUID, int], WorkflowConfig] = {}
_CONFIGS_MAX = 256


async def _config(session: AsyncSession, workflow_id: uuid.UUID, version: int) -> WorkflowConfig:
    key = (workflow_id, version)
    config = _CONFIGS.get(key)
    if config is None:
        config = await config_for(session, workflow_id, version)
        if len(_CONFIGS) >= _CONFIGS_MAX:
            _CONFIGS.clear()
        _CONFIGS[key] = config
    return config


async def decide(
    work: Work,
    ctx: ReviewContext,
    reviewer_id: uuid.UUID,
    reviewer_name: str,
    action: str,
    form: dict[str, Any],
    reason_code: str | None,
    note: str,
    active_ms: int | None,
) -> uuid.UUID:
    """Record a reviewer's decision and return its id. ``form`` holds the answer fields of the
    decision form (``label``, or the list ``labels`` when multi-label;
    ``score``/``rationale``; ``field.<name>``; ``text``), read for ``edit``."""
    session = work.session
    task = ctx.task
    now = utcnow()
    if task.status != TaskStatus.CLAIMED.value or task.claimed_by != reviewer_id:
        raise TaskGone()
    output: dict[str, Any] | None
    ai_answer = ctx.ai_answer
    if action == "approve":
        if not ai_answer:
            raise DecisionError("There is no AI answer to approve here: give the answer yourself.")
        if task.level == "manual":
            raise DecisionError(
                "At manual level the AI answer is only a hint: give the answer yourself."
            )
        if ctx.config.task_type == "extract":
            problems = output_errors(ctx.config, ai_answer)
            if problems:
                raise DecisionError(
                    "The AI's fields cannot be approved as they are ("
                    + "; ".join(problems)
                    + "): correct them and save."
                )
        outcome = Outcome.APPROVED
        output = ai_answer
    elif action == "edit":
        output = parse_answer(ctx.config, form)
        same = bool(ai_answer) and same_answer(ctx.config, ai_answer, output)
        outcome = Outcome.APPROVED if same else Outcome.EDITED
    elif action == "reject":
        if reason_code not in REJECT_REASONS:
            raise DecisionError("Choose a reason for rejecting this item.")
        if reason_code == "other" and not note.strip():
            raise DecisionError("Say in the note why you reject this item.")
        outcome = Outcome.REJECTED
        output = None
    else:
        raise DecisionError(f"Unknown action {action!r}.")

    elapsed = (now - task.claimed_at).total_seconds() if task.claimed_at else 0.0
    # The page measures active, visible time; it can never exceed the time the task was held.
    active = elapsed if active_ms is None else min(max(active_ms / 1000, 0.0), elapsed)
    reason = REJECT_REASONS.get(reason_code or "", "") if outcome == Outcome.REJECTED else ""
    if note.strip():
        reason = f"{reason}: {note.strip()}" if reason else note.strip()
    decision_id = new_id()  # known now: the feedback job is named without reading it back
    written = await _write(
        session,
        ctx,
        reviewer_id,
        now,
        decision={
            "id": decision_id,
            "task_id": task.id,
            "item_id": ctx.item.id,
            "reviewer_id": reviewer_id,
            "outcome": outcome.value,
            "output": output,
            "reason": reason[:4000],
            "active_seconds": round(active, 3),
            "read_chars": len(ctx.text),
            "created_at": now,
        },
        audit={
            "at": now,
            "actor": reviewer_name,
            "action": f"item.{outcome.value}",
            "item_id": ctx.item.id,
            "details": {
                "task": str(task.id),
                "level": task.level,
                "output": output,
                "reason": reason,
            },
        },
    )
    if not written:  # the lock was lost between loading the page data and this write
        raise TaskGone()
    work.enqueue(RECORD_FEEDBACK, decision_id)
    if ctx.item.callback_url and not ctx.is_canary:
        view = await item_view(session, ctx.item)
        delivery = Delivery(
            item_id=ctx.item.id,
            event_type="item.completed",
            url=ctx.item.callback_url,
            payload=webhook_payload(view, "item.completed", now),
        )
        session.add(delivery)
        await session.flush()
        work.enqueue(DELIVER_WEBHOOK, delivery.id)
    return decision_id


async def _write(
    session: AsyncSession,
    ctx: ReviewContext,
    reviewer_id: uuid.UUID,
    now: datetime,
    decision: dict[str, Any],
    audit: dict[str, Any],
) -> bool:
    """Close the task (only if this reviewer still holds it), record the decision, complete
    the item and audit it, all or nothing. False when the task was no longer theirs.

    This is the review UI's hottest write, so it goes without ORM objects, in statements built
    once: on PostgreSQL one statement (data-modifying CTEs, each gated on the task update), on
    SQLite four."""
    if not can_transition(ctx.item.status, ItemStatus.COMPLETED):
        raise IllegalTransition(ctx.item.status, ItemStatus.COMPLETED)
    params = {
        "p_task": ctx.task.id,
        "p_reviewer": reviewer_id,
        "p_item": ctx.item.id,
        "p_now": now,
        **{f"d_{k}": decision[k] for k in _DECISION_COLUMNS},
        **{f"a_{k}": audit[k] for k in _AUDIT_COLUMNS},
    }
    if session.get_bind().dialect.name == "postgresql":
        done = bool(await session.scalar(_decision_statement(), params))
    else:
        close, record, complete, audit_it = _decision_statements()
        done = (await session.execute(close, params)).first() is not None
        if done:
            for stmt in (record, complete, audit_it):
                await session.execute(stmt, params)
    if done:
        # The loaded objects follow what was written, without becoming changes to flush.
        for name, value in _task_done(now).items():
            set_committed_value(ctx.task, name, value)
        for name, value in _item_done(now).items():
            set_committed_value(ctx.item, name, value)
    return done


_DECISION_COLUMNS = (
    "id",
    "task_id",
    "item_id",
    "reviewer_id",
    "outcome",
    "output",
    "reason",
    "active_seconds",
    "read_chars",
    "created_at",
)
_AUDIT_COLUMNS = ("at", "actor", "action", "item_id", "details")
_TASKS, _ITEMS, _DECISIONS, _AUDITS = (
    cast(sa.Table, model.__table__) for model in (ReviewTask, Item, ReviewDecision, AuditEvent)
)


def _task_done(now: Any) -> dict[str, Any]:
    return {"status": TaskStatus.DONE.value, "completed_at": now, "lock_expires_at": None}


def _item_done(now: Any) -> dict[str, Any]:
    return {"status": ItemStatus.COMPLETED.value, "completed_at": now, "updated_at": now}


def _binds(table: sa.Table, prefix: str, columns: tuple[str, ...]) -> dict[str, Any]:
    """A typed parameter per column, named ``prefix + column``."""
    return {k: sa.bindparam(f"{prefix}{k}", type_=table.c[k].type) for k in columns}


def _rows(table: sa.Table, prefix: str, columns: tuple[str, ...], gate: Any) -> sa.Select[Any]:
    """One row of those parameters per row of ``gate`` (none when the gate is empty)."""
    return sa.select(*(b.label(k) for k, b in _binds(table, prefix, columns).items())).select_from(
        gate
    )


def _close_task() -> sa.Update:
    t = _TASKS
    return (
        sa.update(t)
        .where(
            t.c.id == sa.bindparam("p_task"),
            t.c.status == TaskStatus.CLAIMED.value,
            t.c.claimed_by == sa.bindparam("p_reviewer"),
        )
        .values(_task_done(sa.bindparam("p_now", type_=t.c.completed_at.type)))
        .returning(t.c.id)
    )


def _complete_item() -> sa.Update:
    now = sa.bindparam("p_now", type_=_ITEMS.c.completed_at.type)
    return sa.update(_ITEMS).where(_ITEMS.c.id == sa.bindparam("p_item")).values(_item_done(now))


@functools.cache
def _decision_statement() -> sa.Select[Any]:
    closed = _close_task().cte("closed")
    return (
        sa.select(sa.func.count())
        .select_from(closed)
        .add_cte(
            sa.insert(_DECISIONS)
            .from_select(_DECISION_COLUMNS, _rows(_DECISIONS, "d_", _DECISION_COLUMNS, closed))
            .cte("decision"),
            _complete_item().where(sa.select(closed.c.id).exists()).cte("item"),
            sa.insert(_AUDITS)
            .from_select(_AUDIT_COLUMNS, _rows(_AUDITS, "a_", _AUDIT_COLUMNS, closed))
            .cte("audit"),
        )
    )


@functools.cache
def _decision_statements() -> tuple[sa.Update, sa.Insert, sa.Update, sa.Insert]:
    return (
        _close_task(),
        sa.insert(_DECISIONS).values(_binds(_DECISIONS, "d_", _DECISION_COLUMNS)),
        _complete_item(),
        sa.insert(_AUDITS).values(_binds(_AUDITS, "a_", _AUDIT_COLUMNS)),
    )
