"""The learning loop per workflow: refit calibration on human decisions, recommend
thresholds at the lower confidence bound, and (if the workflow allows) apply them."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from hitl_feedback.calibration import expected_calibration_error, fit
from hitl_feedback.thresholds import Recommendation, backtest, recommend
from hitl_shared.audit import record
from hitl_shared.calibration import (
    CALIBRATION_PROVIDER,
    calibration_snapshot,
    current_calibration,
    model_family,
)
from hitl_shared.db.models import (
    AIResult,
    FeedbackRecord,
    Item,
    ModelSnapshot,
    RoutingDecision,
    Workflow,
)
from hitl_shared.metrics import CALIBRATION_ECE, LIGHT_BAND_ACCURACY_LOW
from hitl_shared.runtime import Runtime
from hitl_shared.work import Work
from hitl_shared.workflows.config import Thresholds, WorkflowConfig
from hitl_shared.workflows.store import apply_workflow, current_version

log = logging.getLogger(__name__)

HISTORY = 2000  # recent decisions only: the model behind the confidences keeps improving


@dataclass
class History:
    model: str | None
    raw: np.ndarray
    correct: np.ndarray
    levels: list[str]
    movable: np.ndarray
    seconds: np.ndarray


async def current_model(session: AsyncSession, workflow_id: uuid.UUID) -> str | None:
    """The model family behind the workflow's latest AI result (see ``model_family``)."""
    value = await session.scalar(
        sa.select(AIResult.model)
        .join(Item, Item.id == AIResult.item_id)
        .where(Item.workflow_id == workflow_id, AIResult.error.is_(None))
        .order_by(AIResult.created_at.desc())
        .limit(1)
    )
    return model_family(str(value)) if value is not None else None


async def decided_history(
    session: AsyncSession, workflow_id: uuid.UUID, limit: int = HISTORY
) -> History:
    """Recent human decisions on answers of the current model only: a map fitted on another
    model's confidences would mis-correct this one's. Retrains of the local model count as
    the same model (``model_family``): each one calibrates itself on held-out folds."""
    model = await current_model(session, workflow_id)
    same_model = AIResult.model == model
    if model is not None:
        pattern = model.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        same_model = sa.or_(same_model, AIResult.model.like(pattern + " (%", escape="\\"))
    rows = (
        await session.execute(
            sa.select(
                AIResult.raw_confidence,
                FeedbackRecord.ai_correct,
                FeedbackRecord.level,
                RoutingDecision.rule,
                FeedbackRecord.active_seconds,
            )
            .join(AIResult, AIResult.item_id == FeedbackRecord.item_id)
            .outerjoin(RoutingDecision, RoutingDecision.item_id == FeedbackRecord.item_id)
            .where(
                FeedbackRecord.workflow_id == workflow_id,
                FeedbackRecord.ai_correct.is_not(None),
                same_model,
            )
            .order_by(FeedbackRecord.created_at.desc())
            .limit(limit)
        )
    ).all()
    return History(
        model=model,
        raw=np.array([r[0] for r in rows], dtype=float),
        correct=np.array([1.0 if r[1] else 0.0 for r in rows]),
        levels=[r[2] for r in rows],
        # Items a risk rule or flag sent somewhere keep their level whatever the thresholds.
        movable=np.array([(r[3] or "").startswith("threshold") for r in rows], dtype=bool),
        seconds=np.array([r[4] or 0.0 for r in rows], dtype=float),
    )


def out_of_fold(raw: np.ndarray, correct: np.ndarray, folds: int = 2) -> np.ndarray:
    """Calibrated confidences for each item from a map that never saw it, so thresholds
    are chosen on honest numbers."""
    out = np.empty_like(raw)
    idx = np.arange(len(raw))
    for f in range(folds):
        test = idx % folds == f
        cmap = fit(raw[~test], correct[~test])
        out[test] = cmap.apply(raw[test])
    return out


def seconds_per_level(history: History) -> dict[str, float]:
    out: dict[str, float] = {"auto": 0.0}
    for level in ("light", "full", "manual"):
        mask = np.array([lv == level for lv in history.levels], dtype=bool)
        if mask.any():
            out[level] = float(np.median(history.seconds[mask]))
    return out


async def analyse(
    session: AsyncSession, workflow_id: uuid.UUID, config: WorkflowConfig
) -> dict[str, Any]:
    """Calibration and threshold recommendation for one workflow, without changing anything."""
    history = await decided_history(session, workflow_id)
    t = config.routing.thresholds
    if len(history.raw) == 0:
        return {"items": 0, "calibration": None, "recommendation": None}
    cmap = fit(history.raw, history.correct, model=history.model)
    oof = (
        out_of_fold(history.raw, history.correct)
        if len(history.raw) >= 60
        else cmap.apply(history.raw)
    )
    fb = config.feedback
    rec = recommend(
        oof,
        history.correct,
        t.light,
        t.full,
        fb.target_light_error,
        period=fb.target_period_items,
    )
    rec.backtest = backtest(
        oof,
        history.correct,
        history.levels,
        history.movable,
        seconds_per_level(history),
        rec.light,
        rec.full,
    )
    return {
        "items": len(history.raw),
        "calibration": cmap,
        "ece_raw": expected_calibration_error(history.raw, history.correct),
        "ece_calibrated": expected_calibration_error(oof, history.correct),
        "recommendation": rec,
    }


async def recalibrate_workflow(work: Work, runtime: Runtime, workflow_id: str) -> None:
    session = work.session
    wf = await session.get(Workflow, uuid.UUID(workflow_id))
    if wf is None:
        return
    version = await current_version(session, wf)
    config = WorkflowConfig.model_validate(version.config)
    decided = int(
        await session.scalar(
            sa.select(sa.func.count())
            .select_from(FeedbackRecord)
            .where(FeedbackRecord.workflow_id == wf.id, FeedbackRecord.ai_correct.is_not(None))
        )
        or 0
    )
    last = await current_calibration(session, wf.id)
    last_total = await _decided_at_last_fit(session, wf.id)
    if decided - last_total < config.feedback.recalibrate_every:
        return  # not enough new evidence since the last fit (also makes repeats harmless)
    result = await analyse(session, wf.id, config)
    cmap = result["calibration"]
    if cmap is None:
        return
    snapshot = calibration_snapshot(wf.id, cmap)
    snapshot.examples = decided  # the count of decisions it was fitted after, for the next check
    session.add(snapshot)
    CALIBRATION_ECE.labels(wf.name).set(result["ece_calibrated"])
    rec: Recommendation = result["recommendation"]
    if rec.band_accuracy_low is not None:
        LIGHT_BAND_ACCURACY_LOW.labels(wf.name).set(rec.band_accuracy_low)
    await record(
        session,
        "feedback-loop",
        "calibration.fitted",
        details={
            "workflow": wf.name,
            "method": cmap.method,
            "items": cmap.items,
            "previous": last.method,
            "ece_raw": round(result["ece_raw"], 4),
            "ece_calibrated": round(result["ece_calibrated"], 4),
            "recommendation": rec.to_json(),
        },
    )
    t = config.routing.thresholds
    if config.feedback.auto_apply_thresholds and abs(rec.light - t.light) >= 0.005:
        await apply_recommendation(session, wf, config, rec, actor="feedback-loop")


async def apply_recommendation(
    session: AsyncSession, wf: Workflow, config: WorkflowConfig, rec: Recommendation, actor: str
) -> int:
    new = config.model_copy(deep=True)
    new.routing.thresholds = Thresholds(
        light=round(rec.light, 4), full=round(min(rec.full, rec.light), 4)
    )
    applied = await apply_workflow(session, new, source="", actor=actor)
    await record(
        session,
        actor,
        "thresholds.applied",
        details={
            "workflow": wf.name,
            "version": applied.version,
            "light": rec.light,
            "reason": rec.reason,
        },
    )
    return applied.version


async def _decided_at_last_fit(session: AsyncSession, workflow_id: uuid.UUID) -> int:
    value = await session.scalar(
        sa.select(ModelSnapshot.examples)
        .where(
            ModelSnapshot.workflow_id == workflow_id, ModelSnapshot.provider == CALIBRATION_PROVIDER
        )
        .order_by(ModelSnapshot.created_at.desc())
        .limit(1)
    )
    return int(value or 0)
