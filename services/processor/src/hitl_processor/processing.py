"""The process_item job: run the workflow's AI task on one item, then hand it to the router."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from hitl_processor.providers.base import AIOutcome, Provider
from hitl_processor.providers.local import LocalProvider
from hitl_processor.providers.openai_compat import OpenAICompatibleProvider, ProviderFailed
from hitl_processor.text import item_text, safety_flags
from hitl_shared.calibration import CalibrationMap, current_calibration
from hitl_shared.db.models import AIResult, Item, Workflow
from hitl_shared.db.types import utcnow
from hitl_shared.jobs import PROCESS_ITEM, ROUTE_ITEM
from hitl_shared.lifecycle import ItemStatus, transition
from hitl_shared.metrics import (
    AI_CONFIDENCE,
    AI_COST,
    AI_LATENCY,
    AI_RESULTS,
    AI_TOKENS,
    SWEEP_REQUEUED,
)
from hitl_shared.runtime import Runtime
from hitl_shared.work import Work
from hitl_shared.workflows.config import WorkflowConfig
from hitl_shared.workflows.store import config_for
from hitl_shared.workflows.tasks import failed_validations, field_errors

log = logging.getLogger(__name__)

PROVIDERS: dict[str, Provider] = {
    "local": LocalProvider(),
    "openai": OpenAICompatibleProvider(),
}
CALIBRATION_RECHECK_SECONDS = 5.0
SCHEMA_BREAK_CAP = 0.2
FAILED_RULE_CAP = 0.5


async def process_item(work: Work, runtime: Runtime, item_id: str) -> None:
    session = work.session
    item = await session.get(Item, uuid.UUID(item_id), with_for_update=True)
    if item is None or item.status != ItemStatus.RECEIVED.value:
        return  # already processed (a repeated message) or cancelled
    config = await config_for(session, item.workflow_id, item.workflow_version)
    workflow_name = await session.scalar(
        sa.select(Workflow.name).where(Workflow.id == item.workflow_id)
    )
    text = item_text(config, item.input)
    provider = PROVIDERS[config.provider.name]
    try:
        outcome = await provider.run(work, runtime, item.workflow_id, config, text)
    except Exception as exc:
        # The item still reaches a human, who does the task without an AI hint.
        log.warning("provider %s failed on item %s: %s", provider.name, item.id, exc, exc_info=True)
        reason = (
            str(exc)
            if isinstance(exc, ProviderFailed)
            else f"The AI could not process this item ({type(exc).__name__}); "
            "please do the task by hand."
        )
        outcome = AIOutcome(
            output={},
            raw_confidence=0.0,
            confidence=0.0,
            provider=provider.name,
            model="",
            flags=["ai_failed"],
            error=reason,
        )
    if outcome.error is None and config.task_type == "extract":
        check_extraction(config, item.input, outcome)
    outcome.flags = sorted(set(outcome.flags) | set(await asyncio.to_thread(safety_flags, text)))
    if outcome.error is None:
        cmap = await calibration_for(runtime, session, item.workflow_id)
        if cmap.applies_to(outcome.model):
            outcome.confidence = cmap.apply_one(outcome.raw_confidence)
    session.add(
        AIResult(
            item_id=item.id,
            output=outcome.output,
            raw_confidence=outcome.raw_confidence,
            confidence=outcome.confidence,
            provider=outcome.provider,
            model=outcome.model,
            prompt_version=outcome.prompt_version,
            latency_ms=outcome.latency_ms,
            flags=outcome.flags,
            error=outcome.error,
        )
    )
    transition(item, ItemStatus.PROCESSED)
    item.updated_at = utcnow()
    work.enqueue(ROUTE_ITEM, item.id)
    wf = workflow_name or "unknown"
    AI_RESULTS.labels(wf, outcome.provider, "error" if outcome.error else "ok").inc()
    AI_CONFIDENCE.labels(wf).observe(outcome.confidence)
    AI_LATENCY.labels(wf, outcome.provider).observe(outcome.latency_ms / 1000)
    if outcome.usage:
        AI_TOKENS.labels(wf, outcome.provider, "input").inc(outcome.usage.get("input_tokens", 0))
        AI_TOKENS.labels(wf, outcome.provider, "output").inc(outcome.usage.get("output_tokens", 0))
        AI_COST.labels(wf, outcome.provider).inc(outcome.usage.get("cost_usd", 0.0))


def check_extraction(config: WorkflowConfig, data: dict[str, Any], outcome: AIOutcome) -> None:
    """Whatever the provider: a value that breaks the field's schema is doubtful (capped at
    20%), a field named by a failed validation rule is capped at 50%, and the item's
    confidence is its least sure field's."""
    fields = outcome.output.get("fields")
    fields = dict(fields) if isinstance(fields, dict) else {}
    raw = outcome.output.get("field_confidence")
    conf = {
        name: float(raw.get(name, 0.0)) if isinstance(raw, dict) else 0.0
        for name in config.field_names
    }
    present = {k: v for k, v in fields.items() if v is not None}
    for name in field_errors(config, present):
        if name in conf:
            conf[name] = min(conf[name], SCHEMA_BREAK_CAP)
    failed = failed_validations(config, data, present)
    for rule in failed:
        for name in rule["fields"]:
            if name in conf:
                conf[name] = min(conf[name], FAILED_RULE_CAP)
    outcome.output["fields"] = present
    outcome.output["field_confidence"] = {k: round(v, 4) for k, v in conf.items()}
    outcome.output["failed_rules"] = failed
    if failed:
        outcome.flags.append("failed_validation")
    lowest = min(conf.values()) if conf else 0.0
    outcome.raw_confidence = min(outcome.raw_confidence, lowest)
    outcome.confidence = outcome.raw_confidence


async def calibration_for(
    runtime: Runtime, session: AsyncSession, workflow_id: uuid.UUID
) -> CalibrationMap:
    """The workflow's current calibration map, re-read at most every few seconds."""
    cache: dict[uuid.UUID, tuple[float, CalibrationMap]] = runtime.state.setdefault(
        "processor.calibration", {}
    )
    hit = cache.get(workflow_id)
    now = time.monotonic()
    if hit is None or now - hit[0] > CALIBRATION_RECHECK_SECONDS:
        hit = (now, await current_calibration(session, workflow_id))
        cache[workflow_id] = hit
    return hit[1]


async def sweep_received(work: Work, runtime: Runtime) -> int:
    """Items accepted but never processed (a lost wake-up, a crashed worker) get another go."""
    cutoff = utcnow() - timedelta(seconds=runtime.settings.stuck_after_seconds)
    ids = (
        await work.session.scalars(
            sa.select(Item.id)
            .where(Item.status == ItemStatus.RECEIVED.value, Item.updated_at < cutoff)
            .order_by(Item.updated_at)
            .limit(1000)
        )
    ).all()
    for item_id in ids:
        work.enqueue(PROCESS_ITEM, item_id)
    SWEEP_REQUEUED.labels(PROCESS_ITEM).inc(len(ids))
    return len(ids)
