"""The lead's team view: is each reviewer really reviewing, or rubber-stamping?"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from hitl_review_ui.auth import LeadDep
from hitl_review_ui.history import INSTANT_SECONDS
from hitl_review_ui.pages import templates
from hitl_review_ui.ui import READING_SECONDS_PER_1000_CHARS, reading_seconds
from hitl_shared.db import models
from hitl_shared.db.models import ReviewDecision, ReviewTask, RoutingDecision, User
from hitl_shared.db.types import utcnow
from hitl_shared.http import WorkDep

WINDOWS = (7, 30)
# Below this many approvals a reviewer's shares are noise; figures show, flags do not.
MIN_APPROVALS_FOR_FLAGS = 5
INSTANT_SHARE_FLAG = 0.2
# Approving in under a quarter of the time the text takes to read means it was not read.
UNREAD_RATIO_FLAG = 0.25


@dataclass
class ReviewerStats:
    username: str
    role: str
    is_active: bool
    decisions: int = 0
    approvals: int = 0
    edits: int = 0
    rejections: int = 0
    median_active_per_approval: float | None = None
    median_reading_per_approval: float | None = None
    instant_approvals: int = 0
    canaries: int = 0
    canaries_caught: int = 0
    flags: list[str] = field(default_factory=list)

    @property
    def approval_rate(self) -> float | None:
        return self.approvals / self.decisions if self.decisions else None

    @property
    def instant_share(self) -> float | None:
        return self.instant_approvals / self.approvals if self.approvals else None

    @property
    def reading_ratio(self) -> float | None:
        """Active time per approval as a share of the time the text takes to read."""
        active, reading = self.median_active_per_approval, self.median_reading_per_approval
        if active is None or not reading:
            return None
        return active / reading

    @property
    def canary_catch_rate(self) -> float | None:
        return self.canaries_caught / self.canaries if self.canaries else None


@dataclass
class TeamView:
    days: int
    since: datetime
    reviewers: list[ReviewerStats]
    canaries_tracked: bool  # whether any canary was decided in the window

    @property
    def totals(self) -> ReviewerStats:
        t = ReviewerStats("team", "", True)
        for r in self.reviewers:
            t.decisions += r.decisions
            t.approvals += r.approvals
            t.edits += r.edits
            t.rejections += r.rejections
            t.instant_approvals += r.instant_approvals
            t.canaries += r.canaries
            t.canaries_caught += r.canaries_caught
        return t


def _canary_model() -> Any:
    # The canaries table arrives with the routing-policy migration; before it, none exist.
    return getattr(models, "Canary", None)


def canary_condition() -> sa.ColumnElement[bool]:
    """Known-wrong items seeded to test reviewers: a row in `canaries` when the schema has
    that table, or an item routed by a `canary…` rule."""
    conds: list[sa.ColumnElement[bool]] = [RoutingDecision.rule.like("canary%")]
    canary = _canary_model()
    if canary is not None:
        conds.append(canary.id.is_not(None))
    return sa.or_(*conds)


async def team_view(session: AsyncSession, days: int) -> TeamView:
    since = utcnow() - timedelta(days=days)
    canary = _canary_model()
    q = (
        sa.select(
            ReviewDecision.reviewer_id,
            ReviewDecision.outcome,
            ReviewDecision.active_seconds,
            ReviewDecision.read_chars,
            canary_condition(),
            canary.caught if canary is not None else sa.null(),
        )
        .join(ReviewTask, ReviewTask.id == ReviewDecision.task_id)
        .outerjoin(RoutingDecision, RoutingDecision.item_id == ReviewDecision.item_id)
        .where(ReviewDecision.created_at >= since)
        .order_by(ReviewDecision.created_at)
    )
    if canary is not None:
        q = q.outerjoin(canary, canary.item_id == ReviewDecision.item_id)
    rows = (await session.execute(q)).all()
    users = (await session.execute(sa.select(User).order_by(User.username))).scalars().all()
    stats = {u.id: ReviewerStats(u.username, u.role, u.is_active) for u in users}
    active: dict[object, list[float]] = {}
    reading: dict[object, list[float]] = {}
    for reviewer_id, outcome, seconds, chars, is_canary, caught in rows:
        s = stats.get(reviewer_id)
        if s is None:
            continue
        s.decisions += 1
        if outcome == "approved":
            s.approvals += 1
            active.setdefault(reviewer_id, []).append(seconds)
            reading.setdefault(reviewer_id, []).append(reading_seconds(chars))
            if seconds < INSTANT_SECONDS:
                s.instant_approvals += 1
        elif outcome == "edited":
            s.edits += 1
        else:
            s.rejections += 1
        if is_canary:
            s.canaries += 1
            # A canary's AI answer is known to be wrong: approving it means missing it.
            if caught if caught is not None else outcome != "approved":
                s.canaries_caught += 1
    for reviewer_id, s in stats.items():
        if reviewer_id in active:
            s.median_active_per_approval = statistics.median(active[reviewer_id])
            s.median_reading_per_approval = statistics.median(reading[reviewer_id])
        s.flags = flags_for(s)
    shown = [s for s in stats.values() if s.decisions or s.is_active]
    # Most decisions first: the people whose figures mean something lead the table.
    shown.sort(key=lambda s: (-s.decisions, s.username))
    return TeamView(days, since, shown, any(s.canaries for s in shown))


def flags_for(s: ReviewerStats) -> list[str]:
    if s.approvals < MIN_APPROVALS_FOR_FLAGS:
        return []
    out = []
    if (s.instant_share or 0) > INSTANT_SHARE_FLAG:
        out.append("near-zero approvals")
    ratio = s.reading_ratio
    if ratio is not None and ratio < UNREAD_RATIO_FLAG:
        out.append("approves faster than reading")
    if s.canary_catch_rate is not None and s.canaries >= 3 and s.canary_catch_rate < 0.5:
        out.append("misses canaries")
    return out


def build_team_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/team", response_class=HTMLResponse)
    async def team_page(request: Request, lead: LeadDep, work: WorkDep, days: int = 7) -> Response:
        days = days if days in WINDOWS else WINDOWS[0]
        view = await team_view(work.session, days)
        return templates.TemplateResponse(
            request,
            "team.html",
            {
                "reviewer": lead,
                "view": view,
                "windows": WINDOWS,
                "instant_seconds": INSTANT_SECONDS,
                "reading_per_1000": READING_SECONDS_PER_1000_CHARS,
            },
        )

    return router
