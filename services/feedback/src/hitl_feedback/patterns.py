"""Error patterns: what the AI gets wrong, grouped so prompts, rules and labels can be fixed."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from hitl_shared.db.models import AIResult, FeedbackRecord, Item, ReviewDecision


async def confusions(
    session: AsyncSession, workflow_id: uuid.UUID, top: int = 20
) -> dict[str, Any]:
    rows = (
        await session.execute(
            sa.select(
                FeedbackRecord.ai_label, FeedbackRecord.final_label, FeedbackRecord.outcome
            ).where(
                FeedbackRecord.workflow_id == workflow_id, FeedbackRecord.ai_correct.is_not(None)
            )
        )
    ).all()
    pairs: Counter[tuple[str, str]] = Counter()
    wrong_by_label: Counter[str] = Counter()
    seen_by_label: Counter[str] = Counter()
    rejected = 0
    for ai_label, final_label, outcome in rows:
        if ai_label:
            seen_by_label[ai_label] += 1
        if outcome == "rejected":
            rejected += 1
            continue
        if ai_label and final_label and ai_label != final_label:
            pairs[(ai_label, final_label)] += 1
            wrong_by_label[ai_label] += 1
    return {
        "decisions": len(rows),
        "rejected": rejected,
        "confusions": [
            {"ai_label": a, "human_label": h, "count": n} for (a, h), n in pairs.most_common(top)
        ],
        "most_corrected_labels": [
            {
                "label": label,
                "wrong": n,
                "of": seen_by_label[label],
                "share": round(n / seen_by_label[label], 4),
            }
            for label, n in wrong_by_label.most_common(top)
        ],
    }


async def corrections_jsonl(session: AsyncSession, workflow_id: uuid.UUID) -> AsyncIterator[str]:
    """Every human correction as one JSON line: input, AI output, human output, confidence."""
    q = (
        sa.select(
            Item.id,
            Item.input,
            AIResult.output,
            AIResult.confidence,
            ReviewDecision.output,
            ReviewDecision.outcome,
            ReviewDecision.reason,
            ReviewDecision.created_at,
        )
        .join(AIResult, AIResult.item_id == Item.id)
        .join(ReviewDecision, ReviewDecision.item_id == Item.id)
        .where(Item.workflow_id == workflow_id, ReviewDecision.outcome.in_(["edited", "rejected"]))
        .order_by(ReviewDecision.created_at)
    )
    result = await session.stream(q)
    async for item_id, data, ai_out, conf, human_out, outcome, reason, at in result:
        yield (
            json.dumps(
                {
                    "item_id": str(item_id),
                    "input": data,
                    "ai_output": ai_out,
                    "ai_confidence": conf,
                    "human_output": human_out,
                    "outcome": outcome,
                    "reason": reason or None,
                    "decided_at": at.isoformat(),
                },
                ensure_ascii=False,
            )
            + "\n"
        )
