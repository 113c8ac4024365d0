"""Insights: the figures as JSON under /v1/feedback and as SVG pages for leads, from real
decisions made through the review UI."""

from __future__ import annotations

import re
import statistics
import uuid
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from datetime import timedelta

import sqlalchemy as sa

from hitl_shared.db.models import (
    FeedbackRecord,
    Item,
    ReviewDecision,
    ReviewTask,
    RoutingDecision,
    Workflow,
)
from hitl_shared.db.types import utcnow
from hitl_shared.svg import number
from tests.conftest import System
from tests.review_ui.test_admin import make_user, signed_in
from tests.review_ui.test_review_flow import reviewer_client, submit
from tests.support import ADMIN_PASSWORD

WF = "support-triage"
TEXTS = {
    "I was charged twice for my plan": "billing",
    "The app crashes when I open reports": "technical",
}


def svg(page: str, chart_id: str) -> ET.Element:
    """One chart of a page, parsed (so it must be well-formed XML)."""
    m = re.search(rf'<svg [^>]*id="{chart_id}".*?</svg>', page, re.S)
    assert m, f"no SVG chart {chart_id!r} on the page"
    return ET.fromstring(m.group(0))  # noqa: S314 (our own output)


NS = "{http://www.w3.org/2000/svg}"


def marks(chart: ET.Element, cls: str) -> list[ET.Element]:
    return [e for e in chart.iter() if e.get("class") == cls]


async def decide_everything(system: System) -> None:
    """The admin works the workflow's queue: corrects the AI where it is wrong, approves the
    rest (the demo items of the workflow are in the queue too)."""
    for text in TEXTS:
        await submit(system, text)
    await system.settle()
    async with reviewer_client(system) as http:
        rev = await signed_in(http, "admin", ADMIN_PASSWORD)
        task = await rev.start(WF)
        n = 0
        while task:
            page = await http.get(f"/tasks/{task}")
            label = next((lab for t, lab in TEXTS.items() if t in page.text), "billing")
            # Reviews of different lengths, so the histogram has more than one bar: active
            # time counts only while the task is held, so the claim is moved back in time.
            spent = 3 + 9 * n
            async with system.embedded.runtime.work() as work:  # type: ignore[attr-defined]
                await work.session.execute(
                    sa.update(ReviewTask)
                    .where(ReviewTask.id == uuid.UUID(task))
                    .values(claimed_at=utcnow() - timedelta(seconds=spent + 1))
                )
            r = await rev.decide(
                task, action="edit", label=label, queue_workflow=WF, active_ms=str(spent * 1000)
            )
            assert r.status_code == 303, r.text[:300]
            loc = r.headers["location"]
            task = loc.split("/tasks/")[1].split("?")[0] if "/tasks/" in loc else None
            n += 1
    await system.settle()


async def test_figures_match_the_decisions_and_pages_plot_them(system: System) -> None:
    await decide_everything(system)
    async with system.embedded.runtime.sessionmaker() as s:  # type: ignore[attr-defined]
        wf_id = (await s.execute(sa.select(Workflow.id).where(Workflow.name == WF))).scalar_one()
        records = (
            await s.execute(
                sa.select(
                    FeedbackRecord.level,
                    RoutingDecision.audited_level,
                    RoutingDecision.shadow_level,
                    FeedbackRecord.ai_correct,
                    FeedbackRecord.active_seconds,
                    ReviewDecision.reviewer_id,
                )
                .join(ReviewDecision, ReviewDecision.id == FeedbackRecord.decision_id)
                .outerjoin(RoutingDecision, RoutingDecision.item_id == FeedbackRecord.item_id)
                .where(FeedbackRecord.workflow_id == wf_id)
            )
        ).all()
        routed = Counter(
            (
                await s.execute(
                    sa.select(RoutingDecision.level)
                    .join(Item, Item.id == RoutingDecision.item_id)
                    .where(Item.workflow_id == wf_id)
                )
            )
            .scalars()
            .all()
        )
        waiting = Counter(
            (
                await s.execute(
                    sa.select(ReviewTask.level).where(
                        ReviewTask.workflow_id == wf_id,
                        ReviewTask.status.in_(["open", "claimed"]),
                    )
                )
            )
            .scalars()
            .all()
        )
    assert len(records) == len(TEXTS) + 5  # ours and the workflow's five demo items
    judged = [r for r in records if r.ai_correct is not None]
    by_band: dict[str, list[bool]] = defaultdict(list)
    for r in judged:
        by_band[r.audited_level or r.shadow_level or r.level].append(bool(r.ai_correct))
    human_times: dict[str, list[float]] = defaultdict(list)
    for r in records:
        if r.reviewer_id is not None:
            human_times[r.level].append(r.active_seconds)
    h = system.api_headers
    base = f"/v1/feedback/workflows/{WF}"

    rel = (await system.client.get(f"{base}/reliability", headers=h)).json()
    assert rel["workflow"] == WF and rel["judged"] == len(judged)
    assert sum(b["items"] for b in rel["calibrated"]["bins"]) == len(judged)
    assert sum(b["correct"] for b in rel["calibrated"]["bins"]) == sum(
        bool(r.ai_correct) for r in judged
    )
    assert rel["map"]["method"] == "identity"
    assert rel["calibration_applied"] is False and rel["raw"] is None

    bands = (await system.client.get(f"{base}/bands", headers=h)).json()
    assert bands["granularity"] == "day"  # a history of minutes is shown per day
    assert bands["periods"] == [utcnow().date().isoformat()]
    assert {b["band"]: b["judged"] for b in bands["bands"]} == {
        k: len(v) for k, v in by_band.items()
    }
    for b in bands["bands"]:
        assert b["ai_correct"] == sum(by_band[b["band"]])
        low, high = b["accuracy_ci95"]
        assert low <= b["accuracy"] <= high
        assert [p["judged"] for p in b["points"]] == [b["judged"]]

    times = (await system.client.get(f"{base}/review-times?days=30", headers=h)).json()
    assert times["days"] == 30
    assert times["decisions"] == sum(len(v) for v in human_times.values()) == len(records)
    for lv in times["levels"]:
        values = human_times[lv["level"]]
        assert lv["decisions"] == sum(lv["counts"]) == len(values)
        assert lv["median_seconds"] == round(statistics.median(values), 2)
    assert len({i for lv in times["levels"] for i, n in enumerate(lv["counts"]) if n}) > 1

    load = (await system.client.get(f"{base}/queue-load", headers=h)).json()
    assert load["routed_total"] == sum(routed.values())
    assert {r["level"]: r["items"] for r in load["routed"]} == dict(routed)
    assert load["dates"] == [utcnow().date().isoformat()]
    assert {q["level"]: q["waiting"] for q in load["waiting"]} == dict(waiting)

    assert (await system.client.get(f"{base}/bands")).status_code == 401
    missing = await system.client.get("/v1/feedback/workflows/nope/queue-load", headers=h)
    assert missing.status_code == 404
    assert (await system.client.get(f"{base}/bands?days=0", headers=h)).status_code == 422

    async with reviewer_client(system) as http:
        await signed_in(http, "admin", ADMIN_PASSWORD)
        inbox = await http.get("/")
        assert 'href="/insights"' in inbox.text
        overview = await http.get("/insights")
        assert overview.status_code == 200
        row = re.search(rf'<tr data-workflow="{WF}">(.*?)</tr>', overview.text, re.S)
        assert row, overview.text
        assert f'<td class="num decisions">{len(records)}</td>' in row.group(1)
        assert f"{len(judged)} judged" in row.group(1)

        page = await http.get(f"/insights/{WF}")
        assert page.status_code == 200
        text = page.text
        reliability = svg(text, "reliability")
        assert reliability.get("role") == "img"
        assert reliability.get("aria-labelledby") == "reliability-title reliability-desc"
        assert reliability.find(f"{NS}title").text == f"Reliability: {WF}"  # type: ignore[union-attr]
        assert marks(reliability, "diagonal")
        plotted = [b for b in rel["calibrated"]["bins"] if b["items"]]
        assert len(marks(reliability, "point")) == len(plotted)
        strip = [int(e.get("data-count", "0")) for e in reliability.iter(f"{NS}rect")]
        assert sum(strip) == len(judged)
        for axis_label in ("AI confidence (mean per bin)", "Observed accuracy"):
            assert axis_label in ET.tostring(reliability, encoding="unicode")

        band_chart = svg(text, "bands")
        points = marks(band_chart, "point")
        assert len(points) == len(bands["bands"])  # one day, one point per band
        assert len(marks(band_chart, "error-bar")) == len(points)
        assert sorted(p.get("data-y") for p in points) == sorted(
            number(b["accuracy"]) for b in bands["bands"]
        )

        time_chart = svg(text, "review-times")
        bars = marks(time_chart, "bar")
        assert sum(int(b.get("data-value", "0")) for b in bars) == times["decisions"]
        routed_chart = svg(text, "routed")
        assert sum(int(b.get("data-value", "0")) for b in marks(routed_chart, "bar")) == sum(
            routed.values()
        )
        if waiting:
            waiting_chart = svg(text, "waiting")
            total = sum(int(b.get("data-value", "0")) for b in marks(waiting_chart, "bar"))
            assert total == sum(waiting.values())
        else:
            assert "Nothing is waiting for review in this workflow." in text
        assert (await http.get("/insights/nope")).status_code == 404


async def test_a_workflow_without_decisions_says_so_instead_of_drawing_empty_charts(
    system: System,
) -> None:
    await system.settle()  # the demo items reach their queues, nobody decides them
    h = system.api_headers
    base = "/v1/feedback/workflows/lead-qualification"
    rel = (await system.client.get(f"{base}/reliability", headers=h)).json()
    assert rel["judged"] == 0 and rel["calibrated"]["ece"] is None
    bands = (await system.client.get(f"{base}/bands", headers=h)).json()
    assert bands["bands"] == [] and bands["periods"] == [] and bands["judged"] == 0
    times = (await system.client.get(f"{base}/review-times", headers=h)).json()
    assert times["decisions"] == 0 and times["levels"] == []
    load = (await system.client.get(f"{base}/queue-load", headers=h)).json()
    assert load["routed_total"] == load["waiting_total"] > 0  # the demo items wait

    async with reviewer_client(system) as http:
        await signed_in(http, "admin", ADMIN_PASSWORD)
        page = (await http.get("/insights/lead-qualification?days=30")).text
        assert page.count("No decisions yet for this workflow") == 3
        for chart_id in ("reliability", "bands", "review-times"):
            assert f'id="{chart_id}"' not in page
        assert svg(page, "routed") is not None and svg(page, "waiting") is not None
        overview = (await http.get("/insights")).text
        row = re.search(r'<tr data-workflow="lead-qualification">(.*?)</tr>', overview, re.S)
        assert row and "no judged decisions" in row.group(1)

    # Leads only: a reviewer is refused, a visitor is sent to sign in.
    await make_user(system, "rita", "reviewer")
    async with reviewer_client(system) as http:
        await signed_in(http, "rita", "pw-for-tests-1")
        assert 'href="/insights"' not in (await http.get("/")).text
        for url in ("/insights", "/insights/lead-qualification"):
            r = await http.get(url)
            assert r.status_code == 403 and "Not allowed" in r.text
    async with reviewer_client(system) as anon:
        r = await anon.get("/insights/lead-qualification")
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
