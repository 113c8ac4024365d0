"""The figures leads and operators watch, computed from recorded decisions.

One computation serves both the feedback API (JSON under ``/v1/feedback/workflows/<name>/…``)
and the review UI's insight pages (inline SVG), so the two can never disagree:

- ``reliability``: calibrated confidence per bin against the accuracy humans observed;
- ``band_accuracy``: the AI's accuracy per review band over time, with 95% Wilson intervals;
- ``review_times``: active seconds per human decision, as a histogram per level;
- ``queue_load``: items routed per level per day, and what waits now, by age.

Each has a pure part (rows in, figure out; unit-tested) and a query part. Figures are plain
JSON-ready dicts: rates in [0, 1], times in seconds, dates as ISO strings, None for "no data".
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from hitl_shared.calibration import current_calibration
from hitl_shared.db.models import (
    AIResult,
    FeedbackRecord,
    Item,
    ReviewDecision,
    ReviewTask,
    RoutingDecision,
    Workflow,
)
from hitl_shared.db.types import UTCDateTime, utcnow
from hitl_shared.lifecycle import TaskStatus

LEVEL_ORDER = ("auto", "light", "full", "manual", "batch", "escalated")
DEFAULT_DAYS = 90
MAX_DAYS = 730
RELIABILITY_HISTORY = 2000  # the recent decisions the feedback loop calibrates on
RELIABILITY_BINS = 10
DAILY_BELOW_DAYS = 28  # shorter history: accuracy per day; otherwise per week (Monday first)
# Active seconds per decision: finer where most reviews fall, coarse for the long tail.
TIME_EDGES: tuple[float, ...] = (0, 5, 10, 20, 30, 60, 120, 300, 600)
AGE_EDGES_HOURS: tuple[float, ...] = (0, 1, 4, 24, 72)
OPEN_STATUSES = (TaskStatus.OPEN.value, TaskStatus.CLAIMED.value)
DASH = "\u2013"  # en dash, for ranges in labels


def level_key(level: str) -> tuple[int, str]:
    return (LEVEL_ORDER.index(level) if level in LEVEL_ORDER else len(LEVEL_ORDER), level)


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a proportion; (0, 1) when there is no data."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion(successes: int, n: int) -> dict[str, Any]:
    """A rate with its interval, as the figures report it."""
    low, high = wilson_interval(successes, n)
    return {
        "n": n,
        "successes": successes,
        "rate": round(successes / n, 4) if n else None,
        "ci95": [round(low, 4), round(high, 4)] if n else None,
    }


def median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    s = sorted(values)
    mid = len(s) // 2
    return float(s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2)


def quantile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank quantile (an observed value, never an interpolation)."""
    if not values:
        return None
    s = sorted(values)
    return float(s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))])


def clamp_days(days: int | None) -> int:
    return min(max(int(days or DEFAULT_DAYS), 1), MAX_DAYS)


def _day_expr(session: AsyncSession, column: Any) -> Any:
    """The UTC calendar day of a timestamp column, as 'YYYY-MM-DD', on either database."""
    # Literal SQL, not bound parameters: the same expression appears in GROUP BY, and
    # PostgreSQL only matches the two when they are textually identical.
    if session.get_bind().dialect.name == "postgresql":
        return sa.func.to_char(
            sa.func.timezone(sa.literal_column("'UTC'"), column),
            sa.literal_column("'YYYY-MM-DD'"),
        )
    return sa.func.strftime(sa.literal_column("'%Y-%m-%d'"), column)


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def period_start(day: date, granularity: str) -> date:
    return day - timedelta(days=day.weekday()) if granularity == "week" else day


def periods(first: date, last: date, granularity: str) -> list[date]:
    step = timedelta(days=7 if granularity == "week" else 1)
    start, end = period_start(first, granularity), period_start(last, granularity)
    out = []
    while start <= end:
        out.append(start)
        start += step
    return out


# --- Reliability diagram ---------------------------------------------------------------


def reliability_bins(
    confidences: Sequence[float], correct: Sequence[bool], bins: int = RELIABILITY_BINS
) -> list[dict[str, Any]]:
    """Per equal-width confidence bin: items, mean confidence, observed accuracy (with its
    Wilson interval). Confidence 1.0 falls in the last bin."""
    n_b = [0] * bins
    conf_sum = [0.0] * bins
    right = [0] * bins
    for c, ok in zip(confidences, correct, strict=True):
        b = min(bins - 1, max(0, int(c * bins)))
        n_b[b] += 1
        conf_sum[b] += c
        right[b] += int(ok)
    out = []
    for b in range(bins):
        n = n_b[b]
        acc = proportion(right[b], n)
        out.append(
            {
                "low": round(b / bins, 4),
                "high": round((b + 1) / bins, 4),
                "items": n,
                "correct": right[b],
                "confidence": round(conf_sum[b] / n, 4) if n else None,
                "accuracy": acc["rate"],
                "accuracy_ci95": acc["ci95"],
            }
        )
    return out


def expected_calibration_error(bins: Sequence[dict[str, Any]]) -> float | None:
    total = sum(b["items"] for b in bins)
    if not total:
        return None
    return round(
        sum(b["items"] / total * abs(b["confidence"] - b["accuracy"]) for b in bins if b["items"]),
        4,
    )


def reliability_figure(rows: Sequence[tuple[float, float, bool]]) -> dict[str, Any]:
    """Rows of (raw confidence, calibrated confidence, AI correct). The calibrated series is
    the confidence routing used; the raw one shows what calibration changed, when it did."""
    raw = [float(r[0]) for r in rows]
    calibrated = [float(r[1]) for r in rows]
    correct = [bool(r[2]) for r in rows]
    cal_bins = reliability_bins(calibrated, correct)
    differs = any(abs(a - b) > 1e-9 for a, b in zip(raw, calibrated, strict=True))
    raw_bins = reliability_bins(raw, correct) if differs else None
    return {
        "judged": len(rows),
        "ai_correct": sum(correct),
        "calibration_applied": differs,
        "calibrated": {"bins": cal_bins, "ece": expected_calibration_error(cal_bins)},
        "raw": (
            {"bins": raw_bins, "ece": expected_calibration_error(raw_bins)} if raw_bins else None
        ),
    }


async def reliability(
    session: AsyncSession, workflow_id: uuid.UUID, limit: int = RELIABILITY_HISTORY
) -> dict[str, Any]:
    rows = (
        await session.execute(
            sa.select(AIResult.raw_confidence, AIResult.confidence, FeedbackRecord.ai_correct)
            .join(AIResult, AIResult.item_id == FeedbackRecord.item_id)
            .where(
                FeedbackRecord.workflow_id == workflow_id,
                FeedbackRecord.ai_correct.is_not(None),
            )
            .order_by(FeedbackRecord.created_at.desc())
            .limit(limit)
        )
    ).all()
    figure = reliability_figure([(r[0], r[1], bool(r[2])) for r in rows])
    cmap = await current_calibration(session, workflow_id)
    figure["map"] = {"method": cmap.method, "items": cmap.items}
    figure["history_limit"] = limit
    return figure


# --- Accuracy per review band over time -----------------------------------------------


def band_accuracy_figure(
    counts: Iterable[tuple[Any, str, bool, int]], today: date, days: int
) -> dict[str, Any]:
    """Counts of (day, band, AI correct, decisions) to accuracy per band per period.

    Per day while the history is short (under ``DAILY_BELOW_DAYS``), per week after.
    """
    by_day: dict[tuple[date, str], list[int]] = defaultdict(lambda: [0, 0])
    for day, band, ok, n in counts:
        cell = by_day[(_as_date(day), band)]
        cell[0] += int(n)
        cell[1] += int(n) if ok else 0
    if not by_day:
        return {"days": days, "granularity": "day", "periods": [], "bands": [], "judged": 0}
    first = min(d for d, _ in by_day)
    granularity = "day" if (today - first).days < DAILY_BELOW_DAYS else "week"
    keys = periods(first, today, granularity)
    index = {p: i for i, p in enumerate(keys)}
    per_band: dict[str, list[list[int]]] = {}
    for (day, band), (judged, right) in by_day.items():
        cells = per_band.setdefault(band, [[0, 0] for _ in keys])
        cell = cells[index[period_start(day, granularity)]]
        cell[0] += judged
        cell[1] += right
    bands = []
    for band in sorted(per_band, key=level_key):
        cells = per_band[band]
        n_all = sum(c[0] for c in cells)
        ok_all = sum(c[1] for c in cells)
        overall = proportion(ok_all, n_all)
        points = []
        for p, (judged, right) in zip(keys, cells, strict=True):
            prop = proportion(right, judged)
            points.append(
                {
                    "period": p.isoformat(),
                    "judged": judged,
                    "ai_correct": right,
                    "accuracy": prop["rate"],
                    "accuracy_ci95": prop["ci95"],
                }
            )
        bands.append(
            {
                "band": band,
                "judged": n_all,
                "ai_correct": ok_all,
                "accuracy": overall["rate"],
                "accuracy_ci95": overall["ci95"],
                "points": points,
            }
        )
    return {
        "days": days,
        "granularity": granularity,
        "periods": [p.isoformat() for p in keys],
        "bands": bands,
        "judged": sum(b["judged"] for b in bands),
    }


def band_column() -> Any:
    """The band whose accuracy a decision measures: an audit sample (reviewed in full) and a
    shadow-mode item measure the band the policy chose for them, others their own level."""
    return sa.func.coalesce(
        RoutingDecision.audited_level, RoutingDecision.shadow_level, FeedbackRecord.level
    )


async def band_accuracy(
    session: AsyncSession, workflow_id: uuid.UUID, days: int = DEFAULT_DAYS
) -> dict[str, Any]:
    days = clamp_days(days)
    now = utcnow()
    day = _day_expr(session, FeedbackRecord.created_at)
    band = band_column()
    rows = (
        await session.execute(
            sa.select(day, band, FeedbackRecord.ai_correct, sa.func.count())
            .select_from(FeedbackRecord)
            .outerjoin(RoutingDecision, RoutingDecision.item_id == FeedbackRecord.item_id)
            .where(
                FeedbackRecord.workflow_id == workflow_id,
                FeedbackRecord.ai_correct.is_not(None),
                FeedbackRecord.created_at >= now - timedelta(days=days),
            )
            .group_by(day, band, FeedbackRecord.ai_correct)
        )
    ).all()
    return band_accuracy_figure(
        [(r[0], str(r[1]), bool(r[2]), int(r[3])) for r in rows], now.date(), days
    )


# --- Review time ------------------------------------------------------------------------


def time_bins() -> list[dict[str, Any]]:
    out = []
    for i, low in enumerate(TIME_EDGES):
        high = TIME_EDGES[i + 1] if i + 1 < len(TIME_EDGES) else None
        if high is None:
            text = f"≥ {low / 60:g} min" if low >= 60 else f"≥ {low:g} s"
        elif low == 0:
            text = f"< {high:g} s"
        elif high <= 60:
            text = f"{low:g}{DASH}{high:g} s"
        else:
            text = f"{low / 60:g}{DASH}{high / 60:g} min"
        out.append({"low": low, "high": high, "label": text})
    return out


def time_bin(seconds: float) -> int:
    for i in range(len(TIME_EDGES) - 1, -1, -1):
        if seconds >= TIME_EDGES[i]:
            return i
    return 0


def review_times_figure(rows: Iterable[tuple[str, float]], days: int) -> dict[str, Any]:
    """Rows of (level, active seconds) for human decisions to a histogram per level."""
    per_level: dict[str, list[float]] = defaultdict(list)
    for level, seconds in rows:
        per_level[level].append(max(0.0, float(seconds or 0.0)))
    bins = time_bins()
    levels = []
    for level in sorted(per_level, key=level_key):
        values = per_level[level]
        counts = [0] * len(bins)
        for v in values:
            counts[time_bin(v)] += 1
        levels.append(
            {
                "level": level,
                "decisions": len(values),
                "median_seconds": _round(median(values)),
                "p90_seconds": _round(quantile(values, 0.9)),
                "total_hours": round(sum(values) / 3600, 3),
                "counts": counts,
            }
        )
    everything = [v for vs in per_level.values() for v in vs]
    return {
        "days": days,
        "decisions": len(everything),
        "median_seconds": _round(median(everything)),
        "bins": bins,
        "levels": levels,
    }


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


async def review_times(
    session: AsyncSession, workflow_id: uuid.UUID, days: int = DEFAULT_DAYS
) -> dict[str, Any]:
    days = clamp_days(days)
    rows = (
        await session.execute(
            sa.select(FeedbackRecord.level, FeedbackRecord.active_seconds)
            .join(ReviewDecision, ReviewDecision.id == FeedbackRecord.decision_id)
            .where(
                FeedbackRecord.workflow_id == workflow_id,
                ReviewDecision.reviewer_id.is_not(None),  # people only, not auto approvals
                FeedbackRecord.created_at >= utcnow() - timedelta(days=days),
            )
        )
    ).all()
    return review_times_figure([(str(r[0]), float(r[1] or 0.0)) for r in rows], days)


# --- Queue load -------------------------------------------------------------------------


def age_bins() -> list[dict[str, Any]]:
    def label(hours: float) -> str:
        return f"{hours / 24:g} days" if hours >= 48 else f"{hours:g} h"

    out = []
    for i, low in enumerate(AGE_EDGES_HOURS):
        high = AGE_EDGES_HOURS[i + 1] if i + 1 < len(AGE_EDGES_HOURS) else None
        if high is None:
            text = f"≥ {label(low)}"
        elif low == 0:
            text = f"< {label(high)}"
        elif high == 72:
            text = f"1{DASH}3 days"
        else:
            text = f"{low:g}{DASH}{label(high)}"
        out.append({"low_hours": low, "high_hours": high, "label": text})
    return out


def queue_load_figure(
    routed: Iterable[tuple[Any, str, int]],
    waiting: Iterable[tuple[str, str, int, int, datetime | None, int]],
    now: datetime,
    days: int,
) -> dict[str, Any]:
    """``routed``: (day, level, items); ``waiting``: (level, status, age bin, tasks, oldest
    created_at, overdue tasks) for open and claimed tasks."""
    per_day: dict[tuple[date, str], int] = defaultdict(int)
    for day, level, n in routed:
        per_day[(_as_date(day), level)] += int(n)
    day_keys = periods(min(d for d, _ in per_day), now.date(), "day") if per_day else []
    index = {d: i for i, d in enumerate(day_keys)}
    routed_levels: dict[str, list[int]] = {}
    for (day, level), n in per_day.items():
        routed_levels.setdefault(level, [0] * len(day_keys))[index[day]] += n
    ages = age_bins()
    queues: dict[str, dict[str, Any]] = {}
    for level, status, age_bin, n, oldest, overdue in waiting:
        q = queues.setdefault(
            level,
            {
                "level": level,
                "waiting": 0,
                "claimed": 0,
                "overdue": 0,
                "oldest_age_seconds": None,
                "ages": [0] * len(ages),
            },
        )
        q["waiting"] += int(n)
        if status == TaskStatus.CLAIMED.value:
            q["claimed"] += int(n)
        q["overdue"] += int(overdue or 0)
        q["ages"][min(max(int(age_bin), 0), len(ages) - 1)] += int(n)
        if oldest is not None:
            age = round((now - oldest).total_seconds(), 1)
            q["oldest_age_seconds"] = max(q["oldest_age_seconds"] or 0.0, age)
    return {
        "days": days,
        "dates": [d.isoformat() for d in day_keys],
        "routed_total": sum(per_day.values()),
        "routed": [
            {"level": level, "items": sum(values), "per_day": values}
            for level, values in sorted(routed_levels.items(), key=lambda kv: level_key(kv[0]))
        ],
        "waiting_total": sum(q["waiting"] for q in queues.values()),
        "age_bins": ages,
        "waiting": [queues[k] for k in sorted(queues, key=level_key)],
    }


async def queue_load(
    session: AsyncSession, workflow_id: uuid.UUID, days: int = DEFAULT_DAYS
) -> dict[str, Any]:
    days = clamp_days(days)
    now = utcnow()
    day = _day_expr(session, RoutingDecision.created_at)
    routed = (
        await session.execute(
            sa.select(day, RoutingDecision.level, sa.func.count())
            .select_from(RoutingDecision)
            .join(Item, Item.id == RoutingDecision.item_id)
            .where(
                Item.workflow_id == workflow_id,
                RoutingDecision.created_at >= now - timedelta(days=days),
            )
            .group_by(day, RoutingDecision.level)
        )
    ).all()
    cases = [
        (ReviewTask.created_at > now - timedelta(hours=h), i - 1)
        for i, h in enumerate(AGE_EDGES_HOURS)
        if i > 0
    ]
    # Bins computed in a subquery: grouping by an expression with bound parameters (the
    # cut-off times) is refused by PostgreSQL.
    tasks = (
        sa.select(
            ReviewTask.level.label("level"),
            ReviewTask.status.label("status"),
            sa.case(*cases, else_=len(AGE_EDGES_HOURS) - 1).label("age_bin"),
            ReviewTask.created_at.label("created_at"),
            sa.case(
                (sa.and_(ReviewTask.due_at.is_not(None), ReviewTask.due_at < now), 1), else_=0
            ).label("overdue"),
        )
        .where(ReviewTask.workflow_id == workflow_id, ReviewTask.status.in_(OPEN_STATUSES))
        .subquery()
    )
    waiting = (
        await session.execute(
            sa.select(
                tasks.c.level,
                tasks.c.status,
                tasks.c.age_bin,
                sa.func.count(),
                sa.type_coerce(sa.func.min(tasks.c.created_at), UTCDateTime),
                sa.func.sum(tasks.c.overdue),
            ).group_by(tasks.c.level, tasks.c.status, tasks.c.age_bin)
        )
    ).all()
    return queue_load_figure(
        [(r[0], str(r[1]), int(r[2])) for r in routed],
        [(str(r[0]), str(r[1]), int(r[2]), int(r[3]), r[4], int(r[5] or 0)) for r in waiting],
        now,
        days,
    )


# --- Key figures per workflow -----------------------------------------------------------


async def overview(session: AsyncSession, days: int = DEFAULT_DAYS) -> list[dict[str, Any]]:
    """One row of key figures per workflow, for the list of workflows."""
    days = clamp_days(days)
    now = utcnow()
    since = now - timedelta(days=days)
    workflows = (await session.execute(sa.select(Workflow).order_by(Workflow.name))).scalars()
    rows: dict[uuid.UUID, dict[str, Any]] = {
        wf.id: {
            "workflow": wf.name,
            "description": wf.description,
            "enabled": wf.enabled,
            "decisions": 0,
            "auto_approved": 0,
            "judged": 0,
            "ai_correct": 0,
            "light_judged": 0,
            "light_correct": 0,
            "median_seconds": None,
            "routed": 0,
            "waiting": 0,
            "oldest_age_seconds": None,
        }
        for wf in workflows
    }
    band = band_column()
    judged = (
        await session.execute(
            sa.select(FeedbackRecord.workflow_id, band, FeedbackRecord.ai_correct, sa.func.count())
            .select_from(FeedbackRecord)
            .outerjoin(RoutingDecision, RoutingDecision.item_id == FeedbackRecord.item_id)
            .where(FeedbackRecord.created_at >= since, FeedbackRecord.ai_correct.is_not(None))
            .group_by(FeedbackRecord.workflow_id, band, FeedbackRecord.ai_correct)
        )
    ).all()
    for wid, level, ok, n in judged:
        row = rows.get(wid)
        if row is None:
            continue
        row["judged"] += n
        row["ai_correct"] += n if ok else 0
        if level == "light":
            row["light_judged"] += n
            row["light_correct"] += n if ok else 0
    seconds: dict[uuid.UUID, list[float]] = defaultdict(list)
    decided = (
        await session.execute(
            sa.select(
                FeedbackRecord.workflow_id,
                ReviewDecision.reviewer_id.is_(None),
                FeedbackRecord.active_seconds,
            )
            .join(ReviewDecision, ReviewDecision.id == FeedbackRecord.decision_id)
            .where(FeedbackRecord.created_at >= since)
        )
    ).all()
    for wid, by_system, secs in decided:
        row = rows.get(wid)
        if row is None:
            continue
        if by_system:
            row["auto_approved"] += 1
        else:
            row["decisions"] += 1
            seconds[wid].append(float(secs or 0.0))
    routed = (
        await session.execute(
            sa.select(Item.workflow_id, sa.func.count())
            .select_from(RoutingDecision)
            .join(Item, Item.id == RoutingDecision.item_id)
            .where(RoutingDecision.created_at >= since)
            .group_by(Item.workflow_id)
        )
    ).all()
    for wid, n in routed:
        if wid in rows:
            rows[wid]["routed"] = int(n)
    waiting = (
        await session.execute(
            sa.select(
                ReviewTask.workflow_id,
                sa.func.count(),
                sa.type_coerce(sa.func.min(ReviewTask.created_at), UTCDateTime),
            )
            .where(ReviewTask.status.in_(OPEN_STATUSES))
            .group_by(ReviewTask.workflow_id)
        )
    ).all()
    for wid, n, oldest in waiting:
        if wid in rows:
            rows[wid]["waiting"] = int(n)
            if oldest is not None:
                rows[wid]["oldest_age_seconds"] = round((now - oldest).total_seconds(), 1)
    out = []
    for wid, row in rows.items():
        acc = proportion(row["ai_correct"], row["judged"])
        light = proportion(row["light_correct"], row["light_judged"])
        row["accuracy"], row["accuracy_ci95"] = acc["rate"], acc["ci95"]
        row["light_accuracy"], row["light_accuracy_ci95"] = light["rate"], light["ci95"]
        row["median_seconds"] = _round(median(seconds.get(wid, [])))
        row["days"] = days
        out.append(row)
    return out


__all__ = [
    "DEFAULT_DAYS",
    "LEVEL_ORDER",
    "band_accuracy",
    "band_accuracy_figure",
    "clamp_days",
    "overview",
    "queue_load",
    "queue_load_figure",
    "reliability",
    "reliability_bins",
    "reliability_figure",
    "review_times",
    "review_times_figure",
    "wilson_interval",
]
