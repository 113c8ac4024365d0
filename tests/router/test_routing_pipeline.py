"""Routing through the real pipeline (embedded system, SQLite and PostgreSQL): audit samples,
auto approval, canaries, batches, SLAs and escalation, lock expiry, shadow mode."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from hitl_router import routing as router_routing
from hitl_router.policy import canary_due, sample_fraction
from hitl_shared.bootstrap import create_user
from hitl_shared.db.models import (
    AIResult,
    ApiKey,
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
from hitl_shared.lifecycle import Role
from hitl_shared.metrics import REGISTRY
from hitl_shared.workflows.config import DEMO_DIR, WorkflowConfig, load_workflow_file
from hitl_shared.workflows.store import apply_workflow
from tests.conftest import System
from tests.support import ADMIN_PASSWORD, ScriptedReviewer, WebhookReceiver


def runtime(system: System) -> Any:
    return system.embedded.runtime  # type: ignore[attr-defined]


def ui(system: System) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=system.client._transport, base_url="http://testserver", follow_redirects=False
    )


async def configure(system: System, workflow: str = "support-triage", **routing: Any) -> int:
    """A new version of a demo workflow with these routing settings changed."""
    config, source = load_workflow_file(DEMO_DIR / f"{workflow}.yaml")
    data = config.model_dump(mode="json")
    data["routing"].update(routing)
    async with runtime(system).work() as work:
        applied = await apply_workflow(
            work.session, WorkflowConfig.model_validate(data), source, actor="test"
        )
    return applied.version


async def seed(
    system: System,
    n: int = 1,
    *,
    workflow: str = "support-triage",
    confidence: float = 0.95,
    label: str = "billing",
    inp: dict[str, Any] | None = None,
    callback: str | None = None,
    ids: list[uuid.UUID] | None = None,
) -> list[uuid.UUID]:
    """Items the AI has processed (as the processor leaves them), waiting for the router."""
    ids = ids or [uuid.uuid4() for _ in range(n)]
    async with runtime(system).work() as work:
        s = work.session
        wf = (await s.execute(sa.select(Workflow).where(Workflow.name == workflow))).scalar_one()
        key_id = await s.scalar(sa.select(ApiKey.id).limit(1))
        now = utcnow()
        for i, item_id in enumerate(ids):
            s.add(
                Item(
                    id=item_id,
                    workflow_id=wf.id,
                    workflow_version=wf.current_version,
                    api_key_id=key_id,
                    input=inp or {"body": f"Ticket number {i}: please help with my account"},
                    callback_url=callback,
                    status="processed",
                    created_at=now,
                    updated_at=now - timedelta(seconds=1),
                )
            )
        await s.flush()
        for item_id in ids:
            s.add(
                AIResult(
                    item_id=item_id,
                    output={"label": label},
                    raw_confidence=confidence,
                    confidence=confidence,
                    provider="local",
                    model="test-model",
                    flags=[],
                )
            )
    return ids


async def rows(system: System, query: Any) -> list[Any]:
    async with runtime(system).sessionmaker() as s:
        return list((await s.execute(query)).all())


async def routing_of(system: System, ids: list[uuid.UUID]) -> dict[uuid.UUID, RoutingDecision]:
    found = await rows(system, sa.select(RoutingDecision).where(RoutingDecision.item_id.in_(ids)))
    return {r[0].item_id: r[0] for r in found}


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def add_user(system: System, name: str, role: Role = Role.REVIEWER) -> None:
    async with runtime(system).work() as work:
        await create_user(work.session, name, f"{name}-password-1", role)


async def reviewer(http: httpx.AsyncClient, name: str = "admin") -> ScriptedReviewer:
    rev = ScriptedReviewer(http)
    await rev.sign_in(name, ADMIN_PASSWORD if name == "admin" else f"{name}-password-1")
    return rev


@pytest.fixture(autouse=True)
async def without_demo_items(system: System) -> None:
    """The demo items bootstrap adds are cancelled, so queues and counts hold only ours."""
    await system.settle()
    async with runtime(system).work() as work:
        demo = sa.select(Item.id).where(Item.is_demo.is_(True))
        await work.session.execute(
            sa.update(ReviewTask).where(ReviewTask.item_id.in_(demo)).values(status="cancelled")
        )
        await work.session.execute(
            sa.update(Item).where(Item.is_demo.is_(True)).values(status="cancelled")
        )


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[timedelta]]:
    """The router's clock, moved forward by appending to the returned list."""
    shift = [timedelta(0)]
    monkeypatch.setattr(router_routing, "now", lambda: utcnow() + shift[-1])
    yield shift


async def test_audit_sample_share_is_the_configured_rate_and_reproducible(system: System) -> None:
    version = await configure(system, audit={"light": 0.2, "auto": 0.05})
    ids = await seed(system, 400, confidence=0.95)
    await system.settle()
    decisions = await routing_of(system, ids)
    audited = {i for i, d in decisions.items() if d.audited_level == "light"}
    # Deterministic per item: exactly the items whose hash draw is under the rate ...
    assert audited == {i for i in ids if sample_fraction(i, "audit") < 0.2}
    # ... and statistically the configured share (400 x 20% = 80 ± 8; ±4.4 sd).
    assert 45 <= len(audited) <= 115
    for i, d in decisions.items():
        assert d.policy_version == version
        assert d.confidence == 0.95
        if i in audited:
            assert (d.level, d.rule) == ("full", "audit_sample")
        else:
            assert (d.level, d.rule, d.audited_level) == ("light", "threshold.light", None)
    tasks = await rows(system, sa.select(ReviewTask.level).where(ReviewTask.item_id.in_(audited)))
    assert {t[0] for t in tasks} == {"full"}


async def test_auto_approval_without_a_human_except_the_audit_sample(system: System) -> None:
    receiver = WebhookReceiver()
    try:
        await configure(
            system,
            auto_approve={"enabled": True, "min_confidence": 0.95},
            audit={"auto": 0.25, "light": 0.0},
        )
        ids = await seed(system, 24, confidence=0.99, callback=receiver.url)
        vip = await seed(
            system, confidence=0.99, inp={"body": "hi", "customer_tier": "vip"}, callback=None
        )
        await system.settle()
        decisions = await routing_of(system, [*ids, *vip])
        auto = [i for i in ids if decisions[i].level == "auto"]
        audited = [i for i in ids if decisions[i].audited_level == "auto"]
        assert sorted(auto + audited) == sorted(ids)
        assert audited == [i for i in ids if sample_fraction(i, "audit") < 0.25]
        assert decisions[vip[0]].level == "full" and decisions[vip[0]].rule == "rule.vip-customer"

        for i in auto:
            view = (await system.client.get(f"/v1/items/{i}", headers=system.api_headers)).json()
            assert view["status"] == "completed"
            assert view["review"]["level"] == "auto"
            assert view["decision"]["outcome"] == "approved"
            assert view["decision"]["decided_by"] == "system"
            assert view["decision"]["output"] == {"label": "billing"}
        for i in audited:
            view = (await system.client.get(f"/v1/items/{i}", headers=system.api_headers)).json()
            assert view["status"] == "in_review" and view["review"]["level"] == "full"
        delivered = {__import__("json").loads(body)["data"]["id"] for _, body in receiver.received}
        assert delivered == {str(i) for i in auto}
        # Recorded as the system's, no evidence of accuracy and no training example.
        fb = await rows(system, sa.select(FeedbackRecord).where(FeedbackRecord.item_id.in_(auto)))
        assert len(fb) == len(auto)
        assert {(f[0].level, f[0].ai_correct, f[0].final_label) for f in fb} == {
            ("auto", None, None)
        }
        by = await rows(
            system, sa.select(ReviewDecision.reviewer_id).where(ReviewDecision.item_id.in_(auto))
        )
        assert {b[0] for b in by} == {None}

        # A human reviews the full queue (the audit sample and the VIP item, in whichever
        # order it serves them): feedback reports the auto band's real accuracy.
        assert audited, "no audit sample drawn: the test needs at least one"
        async with ui(system) as http:
            rev = await reviewer(http)
            for _ in range(len(audited) + 1):
                task = await rev.start("support-triage", "full")
                assert task
                assert (await rev.decide(task, action="approve")).status_code == 303
            assert await rev.start("support-triage", "full") is None
        await system.settle()
        stats = (
            await system.client.get("/v1/feedback/workflows", headers=system.api_headers)
        ).json()
        triage = next(w for w in stats["workflows"] if w["workflow"] == "support-triage")
        assert triage["audit_samples"]["auto"]["judged"] == len(audited)
        assert triage["audit_samples"]["auto"]["ai_accuracy"] == 1.0
        assert triage["levels"]["auto"]["judged"] == 0  # no human judged the auto items
    finally:
        receiver.close()


def _canary_ids(n: int, rate: float) -> list[uuid.UUID]:
    from hitl_shared.workflows.config import Routing

    r = Routing.model_validate({"canaries": {"rate": rate}})
    out = []
    i = 0
    while len(out) < n:
        i += 1
        candidate = uuid.UUID(int=(7 << 64) + i)
        if canary_due(r, candidate):
            out.append(candidate)
    return out


async def test_canaries_are_placed_caught_or_missed_and_never_delivered(system: System) -> None:
    receiver = WebhookReceiver()
    try:
        # One decided item the AI got wrong: the material for "replayed" canaries.
        first = await seed(system, confidence=0.95, label="billing", inp={"body": "Parcel lost"})
        await system.settle()
        async with ui(system) as http:
            rev = await reviewer(http)
            task = await rev.start("support-triage")
            assert task
            r = await rev.decide(task, action="edit", label="shipping")
            assert r.status_code == 303
            # The next claim (made by the redirect) is released so the queue starts clean.
        await system.settle()
        await configure(system, canaries={"rate": 0.5}, audit={"light": 0.0})
        triggers = await seed(
            system, ids=_canary_ids(2, 0.5), confidence=0.95, callback=receiver.url
        )
        before_caught = metric(
            "hitl_canary_results_total", workflow="support-triage", caught="true"
        )
        before_missed = metric(
            "hitl_canary_results_total", workflow="support-triage", caught="false"
        )
        await system.settle()
        canaries = [c[0] for c in await rows(system, sa.select(Canary))]
        assert len(canaries) == 2
        for c in canaries:
            assert c.source_item_id == first[0]
            assert (c.wrong_label, c.expected_label, c.kind) == ("billing", "shipping", "replayed")
            assert c.placed_for_item_id in triggers
            # Placed in the light queue like any confident item; invisible to integrations.
            t = (await rows(system, sa.select(ReviewTask).where(ReviewTask.item_id == c.item_id)))[
                0
            ][0]
            assert t.level == "light" and t.status == "open"
            r404 = await system.client.get(f"/v1/items/{c.item_id}", headers=system.api_headers)
            assert r404.status_code == 404

        canary_items = {c.item_id for c in canaries}
        async with ui(system) as http:
            rev = await reviewer(http)
            outcomes = []
            for _ in range(4):
                task_id = await rev.start("support-triage", "light")
                assert task_id
                page = await http.get(f"/tasks/{task_id}")
                item_id = uuid.UUID(page.text.split('data-item="')[1].split('"')[0])
                if item_id not in canary_items:
                    assert (await rev.decide(task_id, action="approve")).status_code == 303
                    continue
                # Nothing on the page gives a canary away.
                assert "canary" not in page.text.lower()
                assert "Parcel lost" in page.text and 'id="ai-label">billing<' in page.text
                if not outcomes:
                    r = await rev.decide(task_id, action="approve")  # missed
                    outcomes.append("missed")
                else:
                    r = await rev.decide(task_id, action="edit", label="shipping")  # caught
                    outcomes.append("caught")
                assert r.status_code == 303
        await system.settle()
        results = {c[0].item_id: c[0] for c in await rows(system, sa.select(Canary))}
        assert sorted(str(r.caught) for r in results.values()) == ["False", "True"]
        assert all(r.decision_id is not None for r in results.values())
        assert (
            metric("hitl_canary_results_total", workflow="support-triage", caught="true")
            == before_caught + 1
        )
        assert (
            metric("hitl_canary_results_total", workflow="support-triage", caught="false")
            == before_missed + 1
        )
        # Never a feedback record (so never training data nor accuracy), never a webhook.
        fb = await rows(
            system, sa.select(FeedbackRecord).where(FeedbackRecord.item_id.in_(canary_items))
        )
        assert fb == []
        out = await rows(system, sa.select(Delivery).where(Delivery.item_id.in_(canary_items)))
        assert out == []
        delivered = {__import__("json").loads(b)["data"]["id"] for _, b in receiver.received}
        assert delivered == {str(i) for i in triggers}
        assert not delivered & {str(i) for i in canary_items}
        stats = (
            await system.client.get("/v1/feedback/workflows", headers=system.api_headers)
        ).json()
        triage = next(w for w in stats["workflows"] if w["workflow"] == "support-triage")
        assert triage["decisions"] == 3  # the first item and the two triggers, no canary
    finally:
        receiver.close()


async def test_batch_approval_of_low_confidence_declines(system: System) -> None:
    receiver = WebhookReceiver()
    try:
        ids = await seed(
            system,
            5,
            workflow="lead-qualification",
            confidence=0.4,
            label="disqualified",
            inp={"message": "I am a student, can I interview you?", "company": "Uni"},
            callback=receiver.url,
        )
        big = await seed(
            system,
            workflow="lead-qualification",
            confidence=0.4,
            label="disqualified",
            inp={"message": "Not interested", "employees": 2000},
        )
        await system.settle()
        decisions = await routing_of(system, [*ids, *big])
        assert {decisions[i].level for i in ids} == {"batch"}
        assert decisions[big[0]].level == "manual"  # a risk rule touched it: no batch
        async with ui(system) as http:
            rev = await reviewer(http)
            # "Any queue" never hands out a batch item on its own.
            single = await rev.start("lead-qualification")
            page = await http.get(f"/tasks/{single}")
            assert "Not interested" in page.text
            await http.post(f"/tasks/{single}/skip", data={"csrf_token": rev.csrf})

            inbox = await http.get("/")
            assert 'href="/batches/lead-qualification"' in inbox.text
            r = await http.post("/batches/lead-qualification/take", data={"csrf_token": rev.csrf})
            assert r.status_code == 303
            page = await http.get("/batches/lead-qualification")
            assert page.status_code == 200
            task_ids = [t.split('"')[0] for t in page.text.split('name="task_id" value="')[1:]]
            assert len(task_ids) == 5
            assert page.text.count("I am a student") == 5 and "disqualified" in page.text

            r = await http.post(
                "/batches/lead-qualification/decide",
                data={
                    "csrf_token": rev.csrf,
                    "action": "approve",
                    "task_id": task_ids[:3],
                    "active_ms": "9000",
                },
            )
            assert r.status_code == 303 and r.headers["location"].endswith("msg=approved")
            r = await http.post(
                "/batches/lead-qualification/decide",
                data={"csrf_token": rev.csrf, "action": "review", "task_id": task_ids[3:4]},
            )
            assert r.status_code == 303
            r = await http.post(
                "/batches/lead-qualification/decide",
                data={"csrf_token": rev.csrf, "action": "release"},
            )
            assert r.status_code == 303
        await system.settle()
        approved = await rows(
            system,
            sa.select(ReviewDecision).where(ReviewDecision.task_id.in_(map(uuid.UUID, task_ids))),
        )
        assert len(approved) == 3
        for (d,) in approved:
            assert d.outcome == "approved" and d.output == {"label": "disqualified"}
            assert d.reviewer_id is not None and 0 < d.active_seconds <= 3.0
        tasks = {
            str(t.id): t
            for (t,) in await rows(system, sa.select(ReviewTask).where(ReviewTask.item_id.in_(ids)))
        }
        assert [tasks[t].status for t in task_ids[:3]] == ["done"] * 3
        moved = tasks[task_ids[3]]
        assert (moved.level, moved.status, moved.claimed_by) == ("manual", "open", None)
        rest = tasks[task_ids[4]]
        assert (rest.level, rest.status, rest.claimed_by) == ("batch", "open", None)
        assert len(receiver.received) == 3
        fb = await rows(
            system,
            sa.select(FeedbackRecord.level, FeedbackRecord.outcome).where(
                FeedbackRecord.item_id.in_(ids)
            ),
        )
        assert sorted(fb) == [("batch", "approved")] * 3
    finally:
        receiver.close()


async def test_overdue_tasks_escalate_to_leads_and_are_counted(
    system: System, clock: list[timedelta]
) -> None:
    await add_user(system, "rita")
    await configure(system, audit={"light": 0.0})
    ids = await seed(system, 2, confidence=0.95)  # light: due in 2 h (support-triage SLA)
    await system.settle()
    mine = sa.select(ReviewTask).where(ReviewTask.item_id.in_(ids))
    tasks = {t.item_id: t for (t,) in await rows(system, mine)}
    for i in ids:
        due = tasks[i].due_at
        assert due is not None
        assert timedelta(hours=1, minutes=59) < due - tasks[i].created_at <= timedelta(hours=2)
    breaches = metric("hitl_sla_breaches_total", workflow="support-triage", level="light")
    escalations = metric("hitl_escalations_total", workflow="support-triage", source="sla")

    clock.append(timedelta(hours=1))
    await system.settle()
    assert {t.level for (t,) in await rows(system, mine)} == {"light"}

    clock.append(timedelta(hours=3))
    await system.settle()
    await system.settle()  # a second sweep counts nothing twice
    tasks = {t.item_id: t for (t,) in await rows(system, mine)}
    for i in ids:
        t = tasks[i]
        assert (t.level, t.status, t.escalated_from, t.escalated_by) == (
            "escalated",
            "open",
            "light",
            "sla",
        )
        assert "light SLA" in (t.escalation_reason or "")
        assert t.due_at is not None and t.escalated_at is not None
        assert t.due_at - t.escalated_at == timedelta(hours=2)  # the escalated level's own SLA
    assert metric("hitl_sla_breaches_total", workflow="support-triage", level="light") == (
        breaches + 2
    )
    assert metric("hitl_escalations_total", workflow="support-triage", source="sla") == (
        escalations + 2
    )

    # Only leads and admins can claim escalated work.
    async with ui(system) as http:
        rita = await reviewer(http, "rita")
        assert await rita.start("support-triage", "escalated") is None
        assert await rita.start() is None
        inbox = await http.get("/")
        assert "for leads" in inbox.text
        assert (await http.get("/escalations")).status_code == 403
    async with ui(system) as http:
        admin = await reviewer(http)
        page = await http.get("/escalations")
        assert page.status_code == 200 and "Not reviewed within the light SLA" in page.text
        task = await admin.start("support-triage", "escalated")
        assert task
        review = await http.get(f"/tasks/{task}")
        assert 'id="escalation-note"' in review.text and "SLA" in review.text
        assert (await admin.decide(task, action="approve")).status_code == 303

    # The escalated queue has its own deadline: a breach there is counted once, no further move.
    before = metric("hitl_sla_breaches_total", workflow="support-triage", level="escalated")
    clock.append(timedelta(hours=9))
    await system.settle()
    await system.settle()
    assert (
        metric("hitl_sla_breaches_total", workflow="support-triage", level="escalated")
        == before + 1
    )
    left = [t for (t,) in await rows(system, mine) if t.status == "open"]
    assert len(left) == 1 and left[0].level == "escalated" and left[0].sla_breached_at


async def test_reviewer_escalates_with_a_reason_and_a_lead_decides(system: System) -> None:
    await add_user(system, "rita")
    await add_user(system, "lena", Role.LEAD)
    [item] = await seed(system, confidence=0.7)
    await system.settle()
    mine = sa.select(ReviewTask).where(ReviewTask.item_id == item)
    async with ui(system) as http:
        rita = await reviewer(http, "rita")
        task = await rita.start("support-triage")
        assert task
        page = await http.get(f"/tasks/{task}")
        assert 'id="escalate-box"' in page.text and "<kbd>x</kbd>" in page.text
        r = await http.post(f"/tasks/{task}/escalate", data={"csrf_token": rita.csrf})
        assert r.status_code == 422 and "Say why" in r.text
        r = await http.post(
            f"/tasks/{task}/escalate",
            data={"csrf_token": rita.csrf, "escalation_reason": "Customer threatens to cancel"},
        )
        assert r.status_code == 303 and "msg=escalated" in r.headers["location"]
        assert await rita.start() is None
    [(t,)] = await rows(system, mine)
    assert (t.level, t.status, t.escalated_from, t.escalated_by) == (
        "escalated",
        "open",
        "full",
        "rita",
    )
    assert t.escalation_reason == "Customer threatens to cancel"
    async with ui(system) as http:
        lena = await reviewer(http, "lena")
        claimed = await lena.start()
        assert claimed == task
        page = await http.get(f"/tasks/{task}")
        assert "Customer threatens to cancel" in page.text
        assert 'id="escalate-box"' not in page.text
        assert (await lena.decide(task, action="edit", label="account")).status_code == 303
    await system.settle()
    view = (await system.client.get(f"/v1/items/{item}", headers=system.api_headers)).json()
    assert view["status"] == "completed" and view["decision"]["decided_by"] == "lena"
    [(fb,)] = await rows(system, sa.select(FeedbackRecord).where(FeedbackRecord.item_id == item))
    assert (fb.level, fb.outcome, fb.final_label) == ("full", "edited", "account")


async def test_abandoned_lock_expires_and_the_item_returns_to_its_queue(
    system: System, clock: list[timedelta]
) -> None:
    await add_user(system, "rita")
    await add_user(system, "sam")
    ids = await seed(system, confidence=0.7)
    await system.settle()
    async with ui(system) as a, ui(system) as b:
        rita = await reviewer(a, "rita")
        sam = await reviewer(b, "sam")
        task = await rita.start("support-triage")
        assert task and await sam.start("support-triage") is None
        clock.append(timedelta(seconds=runtime(system).settings.review_lock_seconds - 30))
        await system.settle()
        assert await sam.start("support-triage") is None  # still locked
        clock.append(timedelta(seconds=runtime(system).settings.review_lock_seconds + 1))
        await system.settle()
        [(t,)] = await rows(system, sa.select(ReviewTask).where(ReviewTask.item_id.in_(ids)))
        assert (t.status, t.claimed_by) == ("open", None)
        assert await sam.start("support-triage") == task
        # Rita's late decision is refused; the item stays with Sam.
        r = await rita.decide(task, action="approve")
        assert r.status_code == 303 and r.headers["location"] == "/?msg=gone"
        assert (await sam.decide(task, action="approve")).status_code == 303


async def test_shadow_mode_sends_everything_to_full_review_and_records_the_policy(
    system: System,
) -> None:
    version = await configure(
        system, shadow=True, auto_approve={"enabled": True, "min_confidence": 0.97}
    )
    high = await seed(system, 3, confidence=0.99)
    mid = await seed(system, 2, confidence=0.9)
    low = await seed(system, 2, confidence=0.3)
    await system.settle()
    decisions = await routing_of(system, [*high, *mid, *low])
    for i in high:
        d = decisions[i]
        assert (d.level, d.rule, d.policy_version) == ("full", "shadow", version)
        # What the policy would have done: auto, or full for its audit sample.
        assert d.shadow_level in ("auto", "full")
    assert {decisions[i].shadow_level for i in mid} <= {"light", "full"}
    assert {(decisions[i].level, decisions[i].shadow_level) for i in low} == {("manual", "manual")}
    views = [
        (await system.client.get(f"/v1/items/{i}", headers=system.api_headers)).json() for i in high
    ]
    assert {v["status"] for v in views} == {"in_review"}
    assert all(d.shadow_level for d in decisions.values())


async def test_batch_route_is_idempotent_and_skips_routed_items(system: System) -> None:
    ids = await seed(system, 30, confidence=0.9)
    rt = runtime(system)
    async with rt.work() as work:
        assert await router_routing.route_items(work, ids[:10]) == 10
    async with rt.work() as work:
        assert await router_routing.route_items(work, ids) == 20
    async with rt.work() as work:
        assert await router_routing.route_items(work, ids) == 0
    await system.settle()
    mine = sa.select(ReviewTask).where(ReviewTask.item_id.in_(ids))
    assert len(await rows(system, mine)) == 30
    assert len(await routing_of(system, ids)) == 30
