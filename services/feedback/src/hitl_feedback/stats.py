"""Figures computed from feedback records, with honest uncertainty."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from hitl_shared.db.models import FeedbackRecord, RoutingDecision, Workflow
from hitl_shared.figures import wilson_interval


def median(values: list[float]) -> float | None:
    if not values:
        return None
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def time_saved(all_seconds: list[float], manual_seconds: list[float]) -> dict[str, Any]:
    """Reviewer time against doing every item by hand, the manual level being the baseline
    (its median, so one coffee break does not make the AI look good)."""
    baseline = median(manual_seconds)
    spent = sum(all_seconds)
    if baseline is None or len(manual_seconds) < 5:
        return {
            "baseline_seconds_per_item": None,
            "spent_hours": round(spent / 3600, 3),
            "saved_hours": None,
            "saved_share": None,
        }
    manual_only = baseline * len(all_seconds)
    return {
        "baseline_seconds_per_item": round(baseline, 2),
        "spent_hours": round(spent / 3600, 3),
        "saved_hours": round((manual_only - spent) / 3600, 3),
        "saved_share": round(1 - spent / manual_only, 4) if manual_only else None,
    }


async def workflow_summaries(session: AsyncSession) -> list[dict[str, Any]]:
    rows = (
        await session.execute(
            sa.select(
                Workflow.name,
                FeedbackRecord.level,
                FeedbackRecord.outcome,
                FeedbackRecord.ai_correct,
                FeedbackRecord.active_seconds,
                RoutingDecision.audited_level,
            )
            .join(Workflow, Workflow.id == FeedbackRecord.workflow_id)
            .outerjoin(RoutingDecision, RoutingDecision.item_id == FeedbackRecord.item_id)
        )
    ).all()
    by_wf: dict[str, dict[str, Any]] = {}
    for name, level, outcome, correct, seconds, audited in rows:
        wf = by_wf.setdefault(
            name,
            {
                "workflow": name,
                "decisions": 0,
                "outcomes": {},
                "levels": {},
                "audit_samples": {},
                "_t": [],
            },
        )
        if audited and correct is not None:
            # The band's real error rate: items that would have had a lighter look.
            band = wf["audit_samples"].setdefault(audited, {"judged": 0, "ai_correct": 0})
            band["judged"] += 1
            band["ai_correct"] += int(bool(correct))
        wf["decisions"] += 1
        wf["outcomes"][outcome] = wf["outcomes"].get(outcome, 0) + 1
        lv = wf["levels"].setdefault(
            level, {"decisions": 0, "ai_correct": 0, "judged": 0, "_t": []}
        )
        lv["decisions"] += 1
        lv["_t"].append(seconds or 0.0)
        if correct is not None:
            lv["judged"] += 1
            lv["ai_correct"] += int(bool(correct))
        wf["_t"].append(seconds)
    out = []
    for wf in by_wf.values():
        manual_times = wf["levels"].get("manual", {}).get("_t", [])
        for lv in wf["levels"].values():
            lv["median_active_seconds"] = median(lv.pop("_t"))
            low, high = wilson_interval(lv["ai_correct"], lv["judged"])
            lv["ai_accuracy"] = lv["ai_correct"] / lv["judged"] if lv["judged"] else None
            lv["ai_accuracy_95ci"] = [round(low, 4), round(high, 4)]
        for band in wf["audit_samples"].values():
            low, high = wilson_interval(band["ai_correct"], band["judged"])
            band["ai_accuracy"] = band["ai_correct"] / band["judged"]
            band["ai_accuracy_95ci"] = [round(low, 4), round(high, 4)]
        times = wf.pop("_t")
        wf["median_active_seconds"] = median(times)
        wf["time_saved"] = time_saved(times, manual_times)
        out.append(wf)
    return sorted(out, key=lambda w: w["workflow"])
