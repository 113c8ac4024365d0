"""Review over plain HTML forms (no JavaScript), through to feedback and the signed webhook."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import sqlalchemy as sa
from standardwebhooks import Webhook

from hitl_shared.db.models import Delivery, FeedbackRecord, ReviewDecision, ReviewTask
from hitl_shared.db.types import utcnow
from tests.conftest import System
from tests.support import ADMIN_PASSWORD, ScriptedReviewer, WebhookReceiver


def reviewer_client(system: System) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=system.client._transport, base_url="http://testserver", follow_redirects=False
    )


async def submit(system: System, body: str, callback: str | None = None, **extra: object) -> str:
    payload: dict[str, object] = {"workflow": "support-triage", "input": {"body": body}, **extra}
    if callback:
        payload["callback_url"] = callback
    r = await system.client.post("/v1/items", json=payload, headers=system.api_headers)
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


async def test_edit_decision_completes_item_records_feedback_and_delivers_webhook(
    system: System,
) -> None:
    receiver = WebhookReceiver(fail_first=1)
    try:
        item_id = await submit(
            system, "The app crashes when I open the invoices page", receiver.url, priority=100
        )
        await system.settle()
        async with reviewer_client(system) as http:
            rev = ScriptedReviewer(http)
            await rev.sign_in("admin", ADMIN_PASSWORD)
            task_id = await rev.start("support-triage")
            assert task_id
            page = await http.get(f"/tasks/{task_id}?workflow=support-triage")
            assert page.status_code == 200
            assert "The app crashes when I open the invoices page" in page.text
            r = await rev.decide(
                task_id, action="edit", label="technical", queue_workflow="support-triage"
            )
            assert r.status_code == 303
        await system.settle()
        item = (await system.client.get(f"/v1/items/{item_id}", headers=system.api_headers)).json()
        assert item["status"] == "completed"
        assert item["decision"]["output"] == {"label": "technical"}
        assert item["decision"]["decided_by"] == "admin"
        assert item["decision"]["outcome"] in {"approved", "edited"}

        runtime = system.embedded.runtime  # type: ignore[attr-defined]
        async with runtime.sessionmaker() as s:
            fb = (await s.execute(sa.select(FeedbackRecord))).scalars().all()
            assert [f.final_label for f in fb if f.item_id.hex == item_id.replace("-", "")] == [
                "technical"
            ]
            decision = (await s.execute(sa.select(ReviewDecision))).scalars().first()
            assert decision is not None and 0 < decision.active_seconds <= 4.2
            assert decision.read_chars == len("The app crashes when I open the invoices page")
            delivery = (await s.execute(sa.select(Delivery))).scalar_one()
            # The receiver refused the first attempt: a retry is scheduled with backoff.
            assert delivery.status == "pending" and delivery.attempts == 1
            assert delivery.last_status_code == 503
            await s.execute(
                sa.update(Delivery).values(next_attempt_at=utcnow() - timedelta(seconds=1))
            )
            await s.commit()
        await system.settle()
        assert len(receiver.received) == 1
        headers, body = receiver.received[0]
        event = Webhook(runtime.settings.webhook_secret).verify(body, headers)
        assert event["type"] == "item.completed"
        assert event["data"]["id"] == item_id
        assert event["data"]["decision"]["output"] == {"label": "technical"}
        assert json.loads(body)["data"]["status"] == "completed"
    finally:
        receiver.close()


async def set_thresholds(system: System, light: float, full: float) -> None:
    from hitl_shared.workflows.config import DEMO_DIR, Thresholds, load_workflow_file
    from hitl_shared.workflows.store import apply_workflow

    config, source = load_workflow_file(DEMO_DIR / "support-triage.yaml")
    config.routing.thresholds = Thresholds(light=light, full=full)
    # No random audit samples or canaries: these tests need every item at the chosen level.
    config.routing.audit.light = config.routing.audit.auto = 0.0
    config.routing.canaries.rate = 0.0
    async with system.embedded.runtime.work() as work:  # type: ignore[attr-defined]
        applied = await apply_workflow(work.session, config, source, actor="test")
    assert applied.version == 2


async def test_manual_level_refuses_a_blind_approval(system: System) -> None:
    await set_thresholds(system, light=1.0, full=1.0)
    await submit(system, "Hello, I have a question about my bill.")
    await system.settle()
    async with reviewer_client(system) as http:
        rev = ScriptedReviewer(http)
        await rev.sign_in("admin", ADMIN_PASSWORD)
        task = await rev.start("support-triage", "manual")
        assert task
        page = await http.get(f"/tasks/{task}")
        assert "AI hint" in page.text and 'id="approve"' not in page.text
        r = await rev.decide(task, action="approve")
        assert r.status_code == 422
        assert "only a hint" in r.text


async def test_reject_needs_a_reason_and_approve_lands_on_the_next_item(system: System) -> None:
    await set_thresholds(system, light=0.0, full=0.0)
    a = await submit(system, "Where is my parcel? It was due on Monday.", priority=90)
    b = await submit(system, "Please send me an invoice for last month.", priority=80)
    await system.settle()
    async with reviewer_client(system) as http:
        rev = ScriptedReviewer(http)
        await rev.sign_in("admin", ADMIN_PASSWORD)
        first = await rev.start("support-triage")
        assert first
        r = await rev.decide(first, action="reject", queue_workflow="support-triage")
        assert r.status_code == 422
        assert "Choose a reason" in r.text
        r = await rev.decide(
            first, action="reject", reason_code="spam", queue_workflow="support-triage"
        )
        assert r.status_code == 303
        second = r.headers["location"].split("/tasks/")[1].split("?")[0]
        assert second != first
        page = await http.get(f"/tasks/{second}")
        assert "light review" in page.text and 'id="approve"' in page.text
        r = await rev.decide(second, action="approve", queue_workflow="support-triage")
        assert r.status_code == 303
    await system.settle()
    outcomes = {}
    for item_id in (a, b):
        item = (await system.client.get(f"/v1/items/{item_id}", headers=system.api_headers)).json()
        outcomes[item_id] = item["decision"]["outcome"]
    assert outcomes[a] == "rejected"
    assert outcomes[b] == "approved"


async def test_two_reviewers_never_hold_the_same_task_and_locks_expire(system: System) -> None:
    from hitl_shared.bootstrap import create_user
    from hitl_shared.lifecycle import Role

    runtime = system.embedded.runtime  # type: ignore[attr-defined]
    async with runtime.work() as work:
        await create_user(work.session, "bob", "bob-password-1", Role.REVIEWER)
    for n in range(3):
        await submit(system, f"My order number {n} has not arrived")
    await system.settle()
    async with reviewer_client(system) as h1, reviewer_client(system) as h2:
        admin, bob = ScriptedReviewer(h1), ScriptedReviewer(h2)
        await admin.sign_in("admin", ADMIN_PASSWORD)
        await bob.sign_in("bob", "bob-password-1")
        t1 = await admin.start("support-triage")
        t2 = await bob.start("support-triage")
        assert t1 and t2 and t1 != t2
        # Bob cannot act on the task admin holds.
        r = await bob.decide(t1, action="approve")
        assert r.status_code == 303 and "msg=gone" in r.headers["location"]
        # Admin abandons the task: once the lock expires the sweeper returns it to the queue.
        async with runtime.sessionmaker() as s:
            await s.execute(
                sa.update(ReviewTask)
                .where(ReviewTask.id == __import__("uuid").UUID(t1))
                .values(lock_expires_at=utcnow() - timedelta(seconds=1))
            )
            await s.commit()
        await system.settle()
        async with runtime.sessionmaker() as s:
            task = await s.get(ReviewTask, __import__("uuid").UUID(t1))
            assert task is not None and task.status == "open" and task.claimed_by is None
        # The late decision from admin is refused rather than silently applied.
        r = await admin.decide(t1, action="approve")
        assert r.status_code == 303 and "msg=gone" in r.headers["location"]


async def test_a_decision_on_a_task_taken_back_meanwhile_changes_nothing(system: System) -> None:
    """The write itself checks the lock: a task swept back to the queue between loading the
    page data and deciding gets no decision, and its item stays in review."""
    import uuid

    import pytest

    from hitl_review_ui.decisions import DecisionError, decide, load_context
    from hitl_shared.db.models import AuditEvent, Item, User

    runtime = system.embedded.runtime  # type: ignore[attr-defined]
    item_id = uuid.UUID(await submit(system, "Where is my parcel? It is a week late."))
    await system.settle()
    async with reviewer_client(system) as http:
        rev = ScriptedReviewer(http)
        await rev.sign_in("admin", ADMIN_PASSWORD)
        task_id = uuid.UUID(await rev.start("support-triage"))
    async with runtime.work() as work:
        admin_id = await work.session.scalar(sa.select(User.id).where(User.username == "admin"))
        assert admin_id is not None
        ctx = await load_context(work.session, task_id)
        assert ctx is not None and ctx.task.claimed_by == admin_id
        async with runtime.sessionmaker() as other:  # meanwhile: lock expired, task swept back
            await other.execute(
                sa.update(ReviewTask)
                .where(ReviewTask.id == task_id)
                .values(status="open", claimed_by=None, claimed_at=None, lock_expires_at=None)
            )
            await other.commit()
        with pytest.raises(DecisionError, match="no longer assigned to you"):
            await decide(work, ctx, admin_id, "admin", "edit", {"label": "shipping"}, None, "", 1)
        await work.rollback()
    async with runtime.sessionmaker() as s:
        assert await s.scalar(sa.select(sa.func.count()).select_from(ReviewDecision)) == 0
        item = await s.get(Item, item_id)
        assert item is not None and item.status == "in_review" and item.completed_at is None
        task = await s.get(ReviewTask, task_id)
        assert task is not None and task.status == "open"
        outcomes = ("item.approved", "item.edited", "item.rejected")
        decided = sa.select(sa.func.count()).where(AuditEvent.action.in_(outcomes))
        assert await s.scalar(decided) == 0


async def test_forms_without_csrf_token_are_refused_and_pages_need_sign_in(system: System) -> None:
    async with reviewer_client(system) as http:
        r = await http.get("/")
        assert r.status_code == 303 and r.headers["location"] == "/login"
        rev = ScriptedReviewer(http)
        await rev.sign_in("admin", ADMIN_PASSWORD)
        r = await http.post("/queue/start", data={"workflow": ""})
        assert r.status_code == 403
        assert "could not be verified" in r.text
        r = await http.post("/login", data={"username": "admin", "password": "wrong"})
        assert r.status_code == 401
        assert "do not match" in r.text


async def test_repeated_failed_sign_ins_lock_the_account(system: System) -> None:
    async with reviewer_client(system) as http:
        for _ in range(5):
            r = await http.post("/login", data={"username": "admin", "password": "bad"})
        assert "locked" in r.text
        r = await http.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD})
        assert r.status_code == 401
        assert "locked" in r.text
