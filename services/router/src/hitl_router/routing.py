"""Routing: give processed items their review level and put them in a human queue (or, where a
workflow allows it, approve them automatically); place canaries; enforce SLAs.

``route_items`` routes many items in one transaction (a handful of statements for hundreds
of items); the ``route_item`` job is the same path for one id, so it stays idempotent: an
item that is no longer ``processed`` is skipped.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from hitl_router.policy import (
    RoutingChoice,
    canary_due,
    choose_level,
    light_reason,
    sample_fraction,
)
from hitl_shared.audit import record
from hitl_shared.db.models import (
    AIResult,
    Canary,
    Delivery,
    FeedbackRecord,
    Item,
    ReviewDecision,
    ReviewTask,
    RoutingDecision,
    Workflow,
)
from hitl_shared.db.types import utcnow
from hitl_shared.escalation import SLA_ESCALATOR, due_at, escalate
from hitl_shared.jobs import DELIVER_WEBHOOK, RECORD_FEEDBACK, ROUTE_ITEM
from hitl_shared.lifecycle import ItemStatus, Outcome, ReviewLevel, TaskStatus
from hitl_shared.metrics import (
    CANARIES_PLACED,
    ESCALATIONS,
    ITEMS_ROUTED,
    ROUTING_AUDIT_SAMPLES,
    ROUTING_RULE_MATCHES,
    ROUTING_SHADOW,
    SLA_BREACHES,
    SWEEP_REQUEUED,
)
from hitl_shared.public import item_view, webhook_payload
from hitl_shared.runtime import Runtime
from hitl_shared.work import Work
from hitl_shared.workflows.config import WorkflowConfig
from hitl_shared.workflows.store import config_for
from hitl_shared.workflows.tasks import (
    answer_from_output,
    answer_key,
    label_set,
    normalise,
    same_answer,
)

log = logging.getLogger(__name__)

BATCH_SIZE = 500


def now() -> datetime:
    """The router's clock; tests move it forward to expire locks and deadlines."""
    return utcnow()


# Workflow versions never change once written, so their parsed configuration (with compiled
# risk rules) is kept per process. Parsing checks the input JSON Schema: milliseconds.
_CONFIGS: dict[tuple[uuid.UUID, int], WorkflowConfig] = {}
_NAMES: dict[uuid.UUID, str] = {}


async def _config(session: AsyncSession, workflow_id: uuid.UUID, version: int) -> WorkflowConfig:
    key = (workflow_id, version)
    config = _CONFIGS.get(key)
    if config is None:
        if len(_CONFIGS) > 512:
            _CONFIGS.clear()
        config = _CONFIGS[key] = await config_for(session, workflow_id, version)
    return config


async def _name(session: AsyncSession, workflow_id: uuid.UUID) -> str:
    name = _NAMES.get(workflow_id)
    if name is None:
        name = await session.scalar(sa.select(Workflow.name).where(Workflow.id == workflow_id))
        name = _NAMES[workflow_id] = name or "unknown"
    return name


async def route_item(work: Work, runtime: Runtime, item_id: str) -> None:
    await route_items(work, [uuid.UUID(item_id)])


async def route_items(work: Work, item_ids: Sequence[uuid.UUID]) -> int:
    """Route every listed item that is still waiting for routing; returns how many."""
    if not item_ids:
        return 0
    session = work.session
    rows = (
        await session.execute(
            sa.select(
                Item.id,
                Item.workflow_id,
                Item.workflow_version,
                Item.input,
                Item.callback_url,
                Item.priority,
                AIResult.output,
                AIResult.confidence,
                AIResult.flags,
                AIResult.provider,
                AIResult.model,
            )
            .join(AIResult, AIResult.item_id == Item.id)
            .where(Item.id.in_(list(item_ids)), Item.status == ItemStatus.PROCESSED.value)
            .with_for_update(of=Item, skip_locked=True)
        )
    ).all()
    if not rows:
        return 0
    at = now()
    decisions: list[dict[str, Any]] = []
    tasks: list[dict[str, Any]] = []
    auto_decisions: list[dict[str, Any]] = []
    in_review: list[uuid.UUID] = []
    completed: list[uuid.UUID] = []
    routed: Counter[tuple[str, str]] = Counter()
    canary_for: list[tuple[Any, WorkflowConfig, str]] = []
    for row in rows:
        config = await _config(session, row.workflow_id, row.workflow_version)
        wf = await _name(session, row.workflow_id)
        choice = choose_level(
            config.routing,
            row.confidence,
            list(row.flags or []),
            row.input if isinstance(row.input, dict) else {},
            row.output if isinstance(row.output, dict) else {},
            row.id,
        )
        decisions.append(_decision_row(row.id, choice, row.confidence, row.workflow_version, at))
        task_id = uuid.uuid4()
        routed[(wf, choice.level.value)] += 1
        _count_choice(wf, choice)
        if choice.level == ReviewLevel.AUTO:
            tasks.append(
                _task_row(task_id, row, choice.level.value, TaskStatus.DONE, None, at, done=True)
            )
            auto_decisions.append(
                {
                    "id": uuid.uuid4(),
                    "task_id": task_id,
                    "item_id": row.id,
                    "reviewer_id": None,
                    "outcome": Outcome.APPROVED.value,
                    "output": answer_from_output(config, row.output),
                    "reason": choice.reason,
                    "active_seconds": 0.0,
                    "read_chars": 0,
                    "created_at": at,
                }
            )
            completed.append(row.id)
        else:
            due = due_at(config.routing.sla, choice.level.value, at)
            tasks.append(_task_row(task_id, row, choice.level.value, TaskStatus.OPEN, due, at))
            in_review.append(row.id)
        if canary_due(config.routing, row.id) and choice.level != ReviewLevel.AUTO:
            canary_for.append((row, config, wf))

    await session.execute(sa.insert(RoutingDecision), decisions)
    await session.execute(sa.insert(ReviewTask), tasks)
    if in_review:
        await session.execute(
            sa.update(Item)
            .where(Item.id.in_(in_review))
            .values(status=ItemStatus.IN_REVIEW.value, updated_at=at)
            .execution_options(synchronize_session=False)
        )
    if completed:
        await _complete_automatically(work, auto_decisions, completed, at)
    for (wf, level), n in routed.items():
        ITEMS_ROUTED.labels(wf, level).inc(n)
    for row, config, wf in canary_for:
        await place_canary(session, row, config, wf, at)
    return len(rows)


def _decision_row(
    item_id: uuid.UUID, choice: RoutingChoice, confidence: float, version: int, at: datetime
) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "item_id": item_id,
        "level": choice.level.value,
        "reason": choice.reason,
        "rule": choice.rule[:200],
        "confidence": confidence,
        "policy_version": version,
        "shadow_level": choice.shadow_level.value if choice.shadow_level else None,
        "audited_level": choice.audited_level.value if choice.audited_level else None,
        "rules_matched": list(choice.rules_matched) or None,
        "created_at": at,
    }


def _task_row(
    task_id: uuid.UUID,
    row: Any,
    level: str,
    status: TaskStatus,
    due: datetime | None,
    at: datetime,
    done: bool = False,
) -> dict[str, Any]:
    return {
        "id": task_id,
        "item_id": row.id,
        "workflow_id": row.workflow_id,
        "level": level,
        "status": status.value,
        "priority": row.priority,
        "due_at": due,
        "created_at": at,
        "completed_at": at if done else None,
    }


def _count_choice(wf: str, choice: RoutingChoice) -> None:
    if choice.audited_level is not None:
        ROUTING_AUDIT_SAMPLES.labels(wf, choice.audited_level.value).inc()
    if choice.shadow_level is not None:
        ROUTING_SHADOW.labels(wf, choice.shadow_level.value).inc()
    for name in choice.rules_matched:
        ROUTING_RULE_MATCHES.labels(wf, name).inc()


async def _complete_automatically(
    work: Work, decisions: list[dict[str, Any]], item_ids: list[uuid.UUID], at: datetime
) -> None:
    """`auto` items: the system approves the AI answer; the integration gets it as usual."""
    session = work.session
    await session.execute(sa.insert(ReviewDecision), decisions)
    await session.execute(
        sa.update(Item)
        .where(Item.id.in_(item_ids))
        .values(status=ItemStatus.COMPLETED.value, updated_at=at, completed_at=at)
        .execution_options(synchronize_session=False)
    )
    for d in decisions:
        work.enqueue(RECORD_FEEDBACK, d["id"])
        await record(
            session,
            "system",
            "item.auto_approved",
            d["item_id"],
            {"output": d["output"], "reason": d["reason"]},
        )
    with_callback = (
        await session.scalars(
            sa.select(Item).where(Item.id.in_(item_ids), Item.callback_url.is_not(None))
        )
    ).all()
    for item in with_callback:
        assert item.callback_url is not None
        view = await item_view(session, item)
        delivery = Delivery(
            item_id=item.id,
            event_type="item.completed",
            url=item.callback_url,
            payload=webhook_payload(view, "item.completed", at),
        )
        session.add(delivery)
        await session.flush()
        work.enqueue(DELIVER_WEBHOOK, delivery.id)


async def place_canary(
    session: AsyncSession, trigger: Any, config: WorkflowConfig, wf: str, at: datetime
) -> Canary | None:
    """A past, human-decided item of the same workflow, shown again with a known-wrong answer:
    the AI's own past mistake where there is one ("replayed"), else the human's answer swapped
    for another label ("altered"). Nothing on the review page tells it apart."""
    past = (
        await session.execute(
            sa.select(
                FeedbackRecord.item_id,
                FeedbackRecord.ai_label,
                FeedbackRecord.final_label,
                FeedbackRecord.ai_answer,
                FeedbackRecord.final_answer,
                Item.input,
            )
            .join(Item, Item.id == FeedbackRecord.item_id)
            .where(
                FeedbackRecord.workflow_id == trigger.workflow_id,
                sa.or_(
                    FeedbackRecord.final_answer.is_not(None),
                    FeedbackRecord.final_label.is_not(None),
                ),
            )
            .order_by(FeedbackRecord.created_at.desc())
            .limit(200)
        )
    ).all()
    answers = [_answers(config, p) for p in past]
    usable = [(p, ai, final) for p, (ai, final) in zip(past, answers, strict=True) if final]
    if not usable:
        return None  # nothing decided yet to build a canary from
    pick = sample_fraction(trigger.id, "canary-source")
    mistakes = [u for u in usable if u[1] and not same_answer(config, u[1], u[2])]
    wrong: dict[str, Any] | None = None
    if mistakes:
        source, wrong, expected = mistakes[int(pick * len(mistakes))]
        kind = "replayed"
    else:
        source, _ai, expected = usable[int(pick * len(usable))]
        others = [u[2] for u in usable if not same_answer(config, u[2], expected)]
        wrong = altered_answer(config, expected, others, sample_fraction(trigger.id, "canary-alt"))
        kind = "altered"
    if wrong is None:
        return None
    t = config.routing.thresholds
    # A confidence in the light band, like the items around it.
    confidence = round(t.light + (0.99 - t.light) * sample_fraction(trigger.id, "canary-conf"), 4)
    confidence = min(max(confidence, t.light), 1.0)
    level = ReviewLevel.FULL if config.routing.shadow else ReviewLevel.LIGHT
    reason = light_reason(config.routing, confidence)
    if config.routing.shadow:
        reason = (
            "Shadow mode: every item gets at least a full review. The policy would have "
            f"chosen light ({reason})"
        )
    item_id = uuid.uuid4()
    session.add(
        Item(
            id=item_id,
            workflow_id=trigger.workflow_id,
            workflow_version=trigger.workflow_version,
            input=source.input,
            priority=trigger.priority,
            status=ItemStatus.IN_REVIEW.value,
            created_at=at,
            updated_at=at,
        )
    )
    await session.flush()
    session.add(
        AIResult(
            item_id=item_id,
            output=_canary_output(config, wrong, confidence),
            raw_confidence=confidence,
            confidence=confidence,
            provider=trigger.provider,
            model=trigger.model,
            flags=[],
            created_at=at,
        )
    )
    session.add(
        RoutingDecision(
            item_id=item_id,
            level=level.value,
            reason=reason,
            rule="canary",
            confidence=confidence,
            policy_version=trigger.workflow_version,
            created_at=at,
        )
    )
    session.add(
        ReviewTask(
            item_id=item_id,
            workflow_id=trigger.workflow_id,
            level=level.value,
            status=TaskStatus.OPEN.value,
            priority=trigger.priority,
            due_at=due_at(config.routing.sla, level.value, at),
            created_at=at,
        )
    )
    canary = Canary(
        item_id=item_id,
        workflow_id=trigger.workflow_id,
        source_item_id=source.item_id,
        placed_for_item_id=trigger.id,
        wrong_label=_short_key(config, wrong),
        expected_label=_short_key(config, expected),
        kind=kind,
        created_at=at,
    )
    session.add(canary)
    await session.flush()
    CANARIES_PLACED.labels(wf).inc()
    ITEMS_ROUTED.labels(wf, level.value).inc()
    return canary


def _answers(config: WorkflowConfig, row: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(AI's answer, human's answer) of a past decision, in the task type's shape."""
    ai = row.ai_answer if isinstance(row.ai_answer, dict) else {}
    final = row.final_answer if isinstance(row.final_answer, dict) else {}
    if config.task_type == "classify" and config.multi_label:
        ai_labels, final_labels = label_set(config, ai), label_set(config, final)
        ai = {"labels": ai_labels} if ai_labels else {}
        final = {"labels": final_labels} if final_labels else {}
    elif config.task_type == "classify":  # records from before answers were kept whole
        ai = ai or ({"label": row.ai_label} if row.ai_label else {})
        final = final or ({"label": row.final_label} if row.final_label else {})
        if final.get("label") not in config.label_names:
            final = {}
        if ai.get("label") not in config.label_names:
            ai = {}
    return ai, final


def altered_answer(
    config: WorkflowConfig, right: dict[str, Any], others: list[dict[str, Any]], pick: float
) -> dict[str, Any] | None:
    """A deliberately wrong version of a human-approved answer, wrong enough that a reader
    who checks the item sees it, plausible enough that one who does not will approve it."""
    task = config.task_type
    if task == "classify" and config.multi_label:
        # One label decision flipped: a label the item has is dropped, or one it lacks added.
        chosen = label_set(config, right)
        flip = config.label_names[int(pick * len(config.label_names))]
        flipped = [n for n in config.label_names if (n in chosen) != (n == flip)]
        if not flipped:  # dropping its only label would leave none: add another instead
            absent = [n for n in config.label_names if n not in chosen]
            flipped = sorted(chosen + absent[:1], key=config.label_names.index)
        return {"labels": flipped} if flipped != chosen else None
    if task == "classify":
        labels = [n for n in config.label_names if n != right.get("label")]
        return {"label": labels[int(pick * len(labels))]} if labels else None
    if task == "score":
        scale = config.scale
        assert scale is not None
        value = float(right.get("score", scale.min))
        span = scale.max - scale.min
        # Far from the right score, on the side with more room.
        target = value - 0.5 * span if value - scale.min > scale.max - value else value + 0.5 * span
        wrong = scale.snap(target)
        if abs(wrong - value) <= scale.tolerance:
            return None
        return {"score": int(wrong) if float(wrong).is_integer() else wrong, "rationale": ""}
    if task == "extract":
        fields = dict(right.get("fields") or {})
        names = [n for n in config.field_names if fields.get(n) is not None]
        if not names:
            return None
        name = names[int(pick * len(names))]
        value = fields[name]
        replacement = next(
            (
                o["fields"][name]
                for o in others
                if isinstance(o.get("fields"), dict)
                and o["fields"].get(name) is not None
                and normalise(o["fields"][name]) != normalise(value)
            ),
            None,
        )
        if replacement is None and isinstance(value, int | float) and not isinstance(value, bool):
            replacement = type(value)(value * 10) if value else 1
        if replacement is None:
            return None
        fields[name] = replacement
        return {"fields": fields}
    # draft: the approved reply to a different item
    texts = [o["text"] for o in others if isinstance(o.get("text"), str)]
    return {"text": texts[int(pick * len(texts))]} if texts else None


def _canary_output(
    config: WorkflowConfig, answer: dict[str, Any], confidence: float
) -> dict[str, Any]:
    """The wrong answer dressed as the AI's output of the task type, confident like its
    neighbours in the light queue."""
    if config.task_type == "extract":
        return {
            "fields": answer.get("fields") or {},
            "field_confidence": {name: confidence for name in config.field_names},
            "failed_rules": [],
        }
    if config.task_type == "draft":
        return {"text": answer.get("text", ""), "sources": []}
    if config.task_type == "classify" and config.multi_label:
        chosen = label_set(config, answer)
        # Each label decision as sure as the whole answer (at least), like a real output's.
        sure = max(confidence, 0.5) ** (1 / max(len(config.label_names), 1))
        return {
            "labels": chosen,
            "label_probability": {
                n: round(sure if n in chosen else 1 - sure, 4) for n in config.label_names
            },
        }
    return dict(answer)


def _short_key(config: WorkflowConfig, answer: dict[str, Any]) -> str:
    key = answer_key(config, answer)
    if key is None:
        key = json.dumps(answer, sort_keys=True, ensure_ascii=False, default=str)
    return key[:200]


async def sweep_processed(work: Work, runtime: Runtime) -> int:
    """Items left processed (a lost wake-up, a backlog): routed here in batches; if a batch
    fails, each item is re-enqueued on its own so one bad item cannot block the rest."""
    cutoff = utcnow() - timedelta(seconds=runtime.settings.stuck_after_seconds)
    ids = list(
        (
            await work.session.scalars(
                sa.select(Item.id)
                .where(Item.status == ItemStatus.PROCESSED.value, Item.updated_at < cutoff)
                .order_by(Item.updated_at)
                .limit(2000)
            )
        ).all()
    )
    routed = 0
    for start in range(0, len(ids), BATCH_SIZE):
        chunk = ids[start : start + BATCH_SIZE]
        try:
            async with work.session.begin_nested():
                routed += await route_items(work, chunk)
        except Exception:
            log.warning("batch routing failed; re-enqueuing %d items", len(chunk), exc_info=True)
            for item_id in chunk:
                work.enqueue(ROUTE_ITEM, item_id)
            SWEEP_REQUEUED.labels(ROUTE_ITEM).inc(len(chunk))
    return routed


async def sweep_expired_locks(work: Work, runtime: Runtime) -> int:
    """An abandoned review goes back to its queue when its lock expires."""
    result = await work.session.execute(
        sa.update(ReviewTask)
        .where(ReviewTask.status == TaskStatus.CLAIMED.value, ReviewTask.lock_expires_at < now())
        .values(
            status=TaskStatus.OPEN.value, claimed_by=None, claimed_at=None, lock_expires_at=None
        )
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def sweep_overdue_tasks(work: Work, runtime: Runtime) -> int:
    """Open tasks past their due time: counted once per deadline; escalated to a lead unless
    they already wait in the lead queue."""
    session = work.session
    at = now()
    rows = (
        await session.execute(
            sa.select(ReviewTask, Item.workflow_version)
            .join(Item, Item.id == ReviewTask.item_id)
            .where(
                ReviewTask.status == TaskStatus.OPEN.value,
                ReviewTask.due_at < at,
                sa.or_(
                    ReviewTask.sla_breached_at.is_(None),
                    ReviewTask.sla_breached_at < ReviewTask.due_at,
                ),
            )
            .order_by(ReviewTask.due_at)
            .limit(500)
            .with_for_update(of=ReviewTask, skip_locked=True)
        )
    ).all()
    for task, version in rows:
        config = await _config(session, task.workflow_id, version)
        wf = await _name(session, task.workflow_id)
        SLA_BREACHES.labels(wf, task.level).inc()
        task.sla_breached_at = at
        if task.level == ReviewLevel.ESCALATED.value:
            continue
        waited = config.routing.sla.for_level(task.level)
        reason = f"Not reviewed within the {task.level} SLA" + (
            f" ({_span(waited)})" if waited else ""
        )
        escalate(task, SLA_ESCALATOR, reason, at, config.routing.sla)
        ESCALATIONS.labels(wf, SLA_ESCALATOR).inc()
        await record(
            session,
            SLA_ESCALATOR,
            "item.escalated",
            task.item_id,
            {"task": str(task.id), "from": task.escalated_from, "reason": reason},
        )
    return len(rows)


def _span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes % 1440 == 0:
        return f"{minutes // 1440} d"
    if minutes % 60 == 0:
        return f"{minutes // 60} h"
    return f"{minutes} min"
