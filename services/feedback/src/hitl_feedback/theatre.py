"""Review theatre: approvals without reading. Time per approval against the length of what
had to be read, streaks of instant approvals, and reviewers far from their team."""

from __future__ import annotations

import statistics
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from hitl_shared.db.models import ReviewDecision, User
from hitl_shared.db.types import utcnow
from hitl_shared.metrics import REVIEWER_FLAGGED, REVIEWER_INSTANT_SHARE, REVIEWER_INSTANT_STREAK
from hitl_shared.runtime import Runtime
from hitl_shared.work import Work

INSTANT_SECONDS = 2.0  # nobody reads and checks an item in less
# Fast readers skim ~50 characters a second; approving faster than that means not reading.
MAX_READ_CHARS_PER_SECOND = 50.0
MIN_APPROVALS = 20  # below this a reviewer's figures are noise
STREAK_ALERT = 10


@dataclass
class Decision:
    outcome: str
    seconds: float
    chars: int


@dataclass
class ReviewerTheatre:
    reviewer: str
    decisions: int
    approvals: int
    approval_rate: float
    median_seconds_per_approval: float | None
    median_chars_per_approval: float | None
    instant_approvals: int
    instant_share: float
    unread_approvals: int  # faster than anyone can read what was shown
    longest_instant_streak: int
    flags: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _is_instant(d: Decision) -> bool:
    return d.seconds < INSTANT_SECONDS


def _unread(d: Decision) -> bool:
    return d.chars > 0 and d.seconds < d.chars / MAX_READ_CHARS_PER_SECOND


def reviewer_figures(name: str, decisions: list[Decision]) -> ReviewerTheatre:
    approvals = [d for d in decisions if d.outcome == "approved"]
    streak = longest = 0
    for d in decisions:  # in decision order
        if d.outcome == "approved" and _is_instant(d):
            streak += 1
            longest = max(longest, streak)
        else:
            streak = 0
    instant = sum(1 for d in approvals if _is_instant(d))
    return ReviewerTheatre(
        reviewer=name,
        decisions=len(decisions),
        approvals=len(approvals),
        approval_rate=len(approvals) / len(decisions) if decisions else 0.0,
        median_seconds_per_approval=statistics.median([d.seconds for d in approvals])
        if approvals
        else None,
        median_chars_per_approval=statistics.median([d.chars for d in approvals])
        if approvals
        else None,
        instant_approvals=instant,
        instant_share=instant / len(approvals) if approvals else 0.0,
        unread_approvals=sum(1 for d in approvals if _unread(d)),
        longest_instant_streak=longest,
    )


def flag(team: list[ReviewerTheatre]) -> list[ReviewerTheatre]:
    """Flags are relative where the team is the yardstick and absolute where no team could
    justify the behaviour (approving a long text in one second)."""
    rates = [r.approval_rate for r in team if r.decisions >= MIN_APPROVALS]
    speeds = [
        r.median_seconds_per_approval
        for r in team
        if r.approvals >= MIN_APPROVALS and r.median_seconds_per_approval is not None
    ]
    for r in team:
        if r.approvals < MIN_APPROVALS:
            continue
        if r.instant_share > 0.2 or r.longest_instant_streak >= STREAK_ALERT:
            r.flags.append("instant_approvals")
        if r.unread_approvals / r.approvals > 0.2:
            r.flags.append("approves_faster_than_reading")
        if len(rates) >= 3:
            med = statistics.median(rates)
            mad = statistics.median([abs(x - med) for x in rates]) or 0.02
            if r.approval_rate - med > 3 * mad:
                r.flags.append("approval_rate_far_above_team")
        if len(speeds) >= 3 and r.median_seconds_per_approval is not None:
            med_s = statistics.median(speeds)
            if r.median_seconds_per_approval < med_s / 3:
                r.flags.append("much_faster_than_team")
    return team


THEATRE_REFRESH_SECONDS = 60.0


async def refresh_theatre_gauges(work: Work, runtime: Runtime) -> int:
    """Review-theatre figures for Prometheus, at most once a minute (a 30-day scan)."""
    last = runtime.state.get("feedback.theatre_at", 0.0)
    now = time.monotonic()
    if now - last < THEATRE_REFRESH_SECONDS:
        return 0
    runtime.state["feedback.theatre_at"] = now
    team = await team_theatre(work.session)
    REVIEWER_INSTANT_SHARE.clear()
    REVIEWER_INSTANT_STREAK.clear()
    REVIEWER_FLAGGED.clear()
    for r in team:
        REVIEWER_INSTANT_SHARE.labels(r.reviewer).set(r.instant_share)
        REVIEWER_INSTANT_STREAK.labels(r.reviewer).set(r.longest_instant_streak)
        for f in r.flags:
            REVIEWER_FLAGGED.labels(r.reviewer, f).set(1)
    return 0


async def team_theatre(
    session: AsyncSession, since: datetime | None = None, workflow_id: uuid.UUID | None = None
) -> list[ReviewerTheatre]:
    since = since or utcnow() - timedelta(days=30)
    q = (
        sa.select(
            User.username,
            ReviewDecision.outcome,
            ReviewDecision.active_seconds,
            ReviewDecision.read_chars,
        )
        .join(User, User.id == ReviewDecision.reviewer_id)
        .where(ReviewDecision.created_at >= since)
        .order_by(ReviewDecision.created_at)
    )
    if workflow_id is not None:
        from hitl_shared.db.models import ReviewTask

        q = q.join(ReviewTask, ReviewTask.id == ReviewDecision.task_id).where(
            ReviewTask.workflow_id == workflow_id
        )
    by_reviewer: dict[str, list[Decision]] = {}
    for name, outcome, seconds, chars in (await session.execute(q)).all():
        by_reviewer.setdefault(name, []).append(Decision(outcome, seconds or 0.0, chars or 0))
    return flag([reviewer_figures(n, ds) for n, ds in sorted(by_reviewer.items())])
