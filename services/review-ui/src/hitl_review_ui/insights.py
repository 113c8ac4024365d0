"""Insights for leads: how well the AI is calibrated, how accurate each review band really
is, where reviewers' time goes and how loaded the queues are, as server-rendered SVG.

The numbers come from ``hitl_shared.figures``, the same computation behind the feedback
API's JSON (``/v1/feedback/workflows/<name>/reliability``, ``…/bands``, ``…/review-times``,
``…/queue-load``), so a page and a script never disagree.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from hitl_review_ui.auth import LeadDep
from hitl_review_ui.pages import templates
from hitl_review_ui.ui import percent, seconds
from hitl_shared import figures
from hitl_shared.db.models import Workflow
from hitl_shared.http import WorkDep
from hitl_shared.svg import LEVEL_COLOURS, Bars, Point, Series, Strip, bar_chart, xy_chart
from hitl_shared.svg import percent as pct_tick

WINDOWS = (30, 90, 365)
# Age of waiting work: from fresh to stale, light to dark.
AGE_COLOURS = ("#fdd49e", "#fdbb84", "#fc8d59", "#e34a33", "#b30000")
DASH = "\u2013"


def _ci(ci: list[float] | None) -> str:
    return f"95% CI {percent(ci[0])}{DASH}{percent(ci[1])}" if ci else "no data"


def _short_date(iso: str) -> str:
    d = date.fromisoformat(iso)
    return f"{d.day} {d.strftime('%b')}"


def reliability_chart(workflow: str, fig: dict[str, Any]) -> str:
    applied = fig["calibration_applied"]
    named = [
        (
            "calibrated confidence" if applied else "confidence (no calibration applied yet)",
            fig["calibrated"],
        )
    ]
    if fig["raw"]:
        named.append(("raw confidence, before calibration", fig["raw"]))
    series = []
    for name, data in named:
        points: list[Point | None] = []
        for b in data["bins"]:
            if not b["items"]:
                continue
            low, high = b["accuracy_ci95"]
            points.append(
                Point(
                    b["confidence"],
                    b["accuracy"],
                    low,
                    high,
                    f"{percent(b['low'])}{DASH}{percent(b['high'])} bin: {b['items']} items, "
                    f"{b['correct']} right ({percent(b['accuracy'])}, {_ci(b['accuracy_ci95'])}), "
                    f"mean confidence {percent(b['confidence'])}",
                )
            )
        series.append(Series(name, points))
    ece = fig["calibrated"]["ece"]
    description = (
        f"Observed accuracy against {named[0][0]} in ten bins, for the {fig['judged']} most "
        f"recent decisions a human judged; points on the dashed diagonal are perfectly "
        f"calibrated. Expected calibration error {percent(ece) if ece is not None else 'n/a'}."
    )
    strip = Strip(
        "items",
        [(b["low"], b["high"]) for b in fig["calibrated"]["bins"]],
        [[b["items"] for b in data["bins"]] for _name, data in named],
    )
    return xy_chart(
        chart_id="reliability",
        title=f"Reliability: {workflow}",
        description=description,
        x_label="AI confidence (mean per bin)",
        y_label="Observed accuracy",
        series=series,
        empty_message="No decisions yet for this workflow: the reliability diagram needs "
        "items a human has judged.",
        x_format=pct_tick,
        y_format=pct_tick,
        diagonal="perfect calibration",
        strip=strip,
        height=440,
    )


def bands_chart(workflow: str, fig: dict[str, Any]) -> str:
    periods = fig["periods"]
    granularity = fig["granularity"]
    bands = fig["bands"]
    width = 0.5 / max(len(bands), 1)
    series = []
    for j, band in enumerate(bands):
        offset = (j - (len(bands) - 1) / 2) * width
        points: list[Point | None] = []
        for i, p in enumerate(band["points"]):
            if not p["judged"]:
                points.append(None)
                continue
            low, high = p["accuracy_ci95"]
            when = f"week of {p['period']}" if granularity == "week" else p["period"]
            points.append(
                Point(
                    i + offset,
                    p["accuracy"],
                    low,
                    high,
                    f"{when}: {p['ai_correct']} of {p['judged']} right "
                    f"({percent(p['accuracy'])}, {_ci(p['accuracy_ci95'])})",
                )
            )
        series.append(
            Series(
                f"{band['band']} ({band['judged']} judged)",
                points,
                colour=LEVEL_COLOURS.get(band["band"]),
            )
        )
    description = (
        f"AI accuracy per review band per {granularity} over the last {fig['days']} days, "
        f"with 95% Wilson intervals as error bars; {fig['judged']} judged decisions."
    )
    return xy_chart(
        chart_id="bands",
        title=f"Accuracy per review band: {workflow}",
        description=description,
        x_label="Week starting (Monday, UTC)" if granularity == "week" else "Day (UTC)",
        y_label="AI accuracy",
        series=series,
        empty_message=f"No decisions yet for this workflow in the last {fig['days']} days: "
        "accuracy per band appears once humans have judged AI answers.",
        x_domain=(-0.5, max(len(periods), 1) - 0.5),
        x_ticks=[(i, _short_date(p)) for i, p in enumerate(periods)],
        y_format=pct_tick,
    )


def review_times_chart(workflow: str, fig: dict[str, Any]) -> str:
    categories = [b["label"] for b in fig["bins"]]
    series = [
        Bars(
            f"{lv['level']} (median {seconds(lv['median_seconds'])})",
            lv["counts"],
            colour=LEVEL_COLOURS.get(lv["level"]),
            notes=[f"{n} decision{'s' if n != 1 else ''}" for n in lv["counts"]],
        )
        for lv in fig["levels"]
    ]
    medians = ", ".join(f"{lv['level']} {seconds(lv['median_seconds'])}" for lv in fig["levels"])
    return bar_chart(
        chart_id="review-times",
        title=f"Active review time per decision: {workflow}",
        description=f"Histogram of active seconds per human decision in the last "
        f"{fig['days']} days, by review level ({fig['decisions']} decisions). "
        f"Median per level: {medians or 'none'}.",
        x_label="Active time per decision",
        y_label="Decisions",
        categories=categories,
        series=series,
        empty_message=f"No decisions yet for this workflow in the last {fig['days']} days.",
    )


def routed_chart(workflow: str, fig: dict[str, Any]) -> str:
    return bar_chart(
        chart_id="routed",
        title=f"Items routed per day: {workflow}",
        description=f"Items routed per review level per day (UTC) in the last {fig['days']} "
        f"days: {fig['routed_total']} in all.",
        x_label="Day (UTC)",
        y_label="Items routed",
        categories=[_short_date(d) for d in fig["dates"]],
        series=[
            Bars(
                f"{r['level']} ({r['items']})",
                r["per_day"],
                colour=LEVEL_COLOURS.get(r["level"]),
                notes=[f"{n} item{'s' if n != 1 else ''}" for n in r["per_day"]],
            )
            for r in fig["routed"]
        ],
        stacked=True,
        empty_message=f"No items routed for this workflow in the last {fig['days']} days.",
    )


def waiting_chart(workflow: str, fig: dict[str, Any]) -> str:
    queues = fig["waiting"]
    return bar_chart(
        chart_id="waiting",
        title=f"Waiting now, by age: {workflow}",
        description=f"Tasks open or claimed now per review level, split by how long they "
        f"have waited: {fig['waiting_total']} in all.",
        x_label="Review level",
        y_label="Tasks waiting",
        categories=[q["level"] for q in queues],
        series=[
            Bars(age["label"], [q["ages"][i] for q in queues], colour=AGE_COLOURS[i])
            for i, age in enumerate(fig["age_bins"])
        ],
        stacked=True,
        empty_message="Nothing is waiting for review in this workflow.",
        height=300,
    )


def key_figures(
    reliability: dict[str, Any], bands: dict[str, Any], times: dict[str, Any], load: dict[str, Any]
) -> dict[str, Any]:
    judged = sum(b["judged"] for b in bands["bands"])
    right = sum(b["ai_correct"] for b in bands["bands"])
    accuracy = figures.proportion(right, judged)
    oldest = [q["oldest_age_seconds"] for q in load["waiting"] if q["oldest_age_seconds"]]
    return {
        "judged": judged,
        "accuracy": accuracy["rate"],
        "accuracy_ci95": accuracy["ci95"],
        "decisions": times["decisions"],
        "median_seconds": times["median_seconds"],
        "routed": load["routed_total"],
        "waiting": load["waiting_total"],
        "oldest_age_seconds": max(oldest) if oldest else None,
        "ece": reliability["calibrated"]["ece"],
        "map": reliability["map"],
    }


def build_insights_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/insights", response_class=HTMLResponse)
    async def insights_page(
        request: Request, lead: LeadDep, work: WorkDep, days: int = figures.DEFAULT_DAYS
    ) -> Response:
        days = days if days in WINDOWS else figures.DEFAULT_DAYS
        rows = await figures.overview(work.session, days)
        return templates.TemplateResponse(
            request,
            "insights.html",
            {"reviewer": lead, "rows": rows, "days": days, "windows": WINDOWS},
        )

    @router.get("/insights/{workflow}", response_class=HTMLResponse)
    async def workflow_insights(
        request: Request,
        workflow: str,
        lead: LeadDep,
        work: WorkDep,
        days: int = figures.DEFAULT_DAYS,
    ) -> Response:
        days = days if days in WINDOWS else figures.DEFAULT_DAYS
        session = work.session
        wf = (
            await session.execute(sa.select(Workflow).where(Workflow.name == workflow))
        ).scalar_one_or_none()
        if wf is None:
            return templates.TemplateResponse(
                request,
                "error.html",
                {
                    "reviewer": lead,
                    "title": "No such workflow",
                    "message": f"There is no workflow named {workflow!r}.",
                },
                status_code=404,
            )
        reliability = await figures.reliability(session, wf.id)
        bands = await figures.band_accuracy(session, wf.id, days)
        times = await figures.review_times(session, wf.id, days)
        load = await figures.queue_load(session, wf.id, days)
        charts = {
            "reliability": reliability_chart(wf.name, reliability),
            "bands": bands_chart(wf.name, bands),
            "review_times": review_times_chart(wf.name, times),
            "routed": routed_chart(wf.name, load),
            "waiting": waiting_chart(wf.name, load),
        }
        return templates.TemplateResponse(
            request,
            "insights_workflow.html",
            {
                "reviewer": lead,
                "workflow": wf,
                "days": days,
                "windows": WINDOWS,
                # Built by hitl_shared.svg, which escapes every piece of text it draws.
                "charts": {k: Markup(v) for k, v in charts.items()},  # noqa: S704
                "reliability": reliability,
                "bands": bands,
                "times": times,
                "load": load,
                "key": key_figures(reliability, bands, times, load),
            },
        )

    return router


__all__ = ["build_insights_router"]
