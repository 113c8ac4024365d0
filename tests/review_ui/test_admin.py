"""Admin, team and history pages over plain HTTP forms: roles, CSRF, the rules admins cannot
break, and what the pages show."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import sqlalchemy as sa

from hitl_review_ui.diffs import diff_outputs, word_diff
from hitl_shared.db.models import ApiKey, AuditEvent, ReviewTask, User
from hitl_shared.db.types import utcnow
from tests.conftest import System
from tests.review_ui.test_review_flow import reviewer_client, set_thresholds, submit
from tests.support import ADMIN_PASSWORD, ScriptedReviewer

ADMIN_GETS = ["/admin/users", "/admin/api-keys", "/admin/workflows", "/admin/audit"]


PASSWORD = "pw-for-tests-1"


async def make_user(system: System, name: str, role: str, password: str = PASSWORD) -> str:
    from hitl_shared.bootstrap import create_user
    from hitl_shared.lifecycle import Role

    async with system.embedded.runtime.work() as work:  # type: ignore[attr-defined]
        user = await create_user(work.session, name, password, Role(role))
        return str(user.id)


async def signed_in(http: httpx.AsyncClient, name: str, password: str) -> ScriptedReviewer:
    rev = ScriptedReviewer(http)
    await rev.sign_in(name, password)
    return rev


async def user_row(system: System, name: str) -> User:
    async with system.embedded.runtime.sessionmaker() as s:  # type: ignore[attr-defined]
        user = (await s.execute(sa.select(User).where(User.username == name))).scalar_one()
        return user


async def test_roles_gate_the_lead_and_admin_pages(system: System) -> None:
    await make_user(system, "rita", "reviewer")
    await make_user(system, "leo", "lead")
    async with reviewer_client(system) as h1, reviewer_client(system) as h2:
        rita = await signed_in(h1, "rita", "pw-for-tests-1")
        await signed_in(h2, "leo", "pw-for-tests-1")
        inbox = await h1.get("/")
        assert 'href="/team"' not in inbox.text and 'href="/admin/users"' not in inbox.text
        for url in [*ADMIN_GETS, "/admin/workflows/support-triage", "/team"]:
            r = await h1.get(url)
            assert r.status_code == 403, url
            assert "Not allowed" in r.text
        # A reviewer's POST to an admin action is refused even with a valid CSRF token.
        leo_id = (await user_row(system, "leo")).id
        r = await h1.post(f"/admin/users/{leo_id}/deactivate", data={"csrf_token": rita.csrf})
        assert r.status_code == 403
        assert (await user_row(system, "leo")).is_active

        inbox = await h2.get("/")
        assert 'href="/team"' in inbox.text and 'href="/admin/users"' not in inbox.text
        assert (await h2.get("/team")).status_code == 200
        for url in ADMIN_GETS:
            assert (await h2.get(url)).status_code == 403, url
    async with reviewer_client(system) as anon:
        for url in [*ADMIN_GETS, "/team", "/history", f"/items/{uuid.uuid4()}"]:
            r = await anon.get(url)
            assert r.status_code == 303 and r.headers["location"].startswith("/login"), url


async def test_admin_forms_without_csrf_are_refused(system: System) -> None:
    rita_id = await make_user(system, "rita", "reviewer")
    async with reviewer_client(system) as http:
        await signed_in(http, "admin", ADMIN_PASSWORD)
        posts: list[tuple[str, dict[str, str]]] = [
            ("/admin/users", {"username": "mallory", "role": "admin"}),
            (f"/admin/users/{rita_id}/role", {"role": "admin"}),
            (f"/admin/users/{rita_id}/deactivate", {}),
            (f"/admin/users/{rita_id}/password", {}),
            ("/admin/api-keys", {"name": "evil"}),
        ]
        for url, data in posts:
            r = await http.post(url, data=data)
            assert r.status_code == 403, url
            assert "could not be verified" in r.text
            r = await http.post(url, data={**data, "csrf_token": "forged"})
            assert r.status_code == 403, url
    rita = await user_row(system, "rita")
    assert rita.role == "reviewer" and rita.is_active
    async with system.embedded.runtime.sessionmaker() as s:  # type: ignore[attr-defined]
        assert await s.scalar(sa.select(User.id).where(User.username == "mallory")) is None
        assert await s.scalar(sa.select(ApiKey.id).where(ApiKey.name == "evil")) is None


async def test_user_admin_rules_and_audit(system: System) -> None:
    async with reviewer_client(system) as http:
        admin = await signed_in(http, "admin", ADMIN_PASSWORD)
        admin_id = (await user_row(system, "admin")).id

        r = await http.post(
            "/admin/users", data={"csrf_token": admin.csrf, "username": "dana", "role": "lead"}
        )
        assert r.status_code == 200
        assert r.headers["cache-control"] == "no-store"
        password = re.search(r'id="temp-password">([^<]+)<', r.text)
        assert password
        # The password is shown once: the list page does not have it.
        assert password.group(1) not in (await http.get("/admin/users")).text
        r = await http.post(
            "/admin/users", data={"csrf_token": admin.csrf, "username": "dana", "role": "lead"}
        )
        assert r.status_code == 422 and "already exists" in r.text
        r = await http.post(
            "/admin/users", data={"csrf_token": admin.csrf, "username": "<x>", "role": "lead"}
        )
        assert r.status_code == 422 and "&lt;x&gt;" not in r.text
        async with reviewer_client(system) as other:
            await signed_in(other, "dana", password.group(1))

        # Cannot deactivate yourself, cannot demote the last admin.
        r = await http.post(f"/admin/users/{admin_id}/deactivate", data={"csrf_token": admin.csrf})
        assert r.status_code == 409 and "cannot deactivate yourself" in r.text
        r = await http.post(
            f"/admin/users/{admin_id}/role", data={"csrf_token": admin.csrf, "role": "lead"}
        )
        assert r.status_code == 409 and "last active admin" in r.text
        assert (await user_row(system, "admin")).role == "admin"

        # With a second admin, the first may step down; that admin cannot then be removed.
        dana_id = (await user_row(system, "dana")).id
        r = await http.post(
            f"/admin/users/{dana_id}/role", data={"csrf_token": admin.csrf, "role": "admin"}
        )
        assert r.status_code == 303
        r = await http.post(f"/admin/users/{dana_id}/deactivate", data={"csrf_token": admin.csrf})
        assert r.status_code == 303
        r = await http.post(
            f"/admin/users/{admin_id}/role", data={"csrf_token": admin.csrf, "role": "lead"}
        )
        assert r.status_code == 409, "dana is deactivated, so admin is the last active admin"
        r = await http.post(f"/admin/users/{dana_id}/reactivate", data={"csrf_token": admin.csrf})
        assert r.status_code == 303
        assert (await user_row(system, "dana")).is_active

    async with system.embedded.runtime.sessionmaker() as s:  # type: ignore[attr-defined]
        actions = [
            (e.actor, e.action, e.details.get("username"))
            for e in (await s.scalars(sa.select(AuditEvent).order_by(AuditEvent.id))).all()
            if e.action.startswith("user.") and e.action != "user.signed_in"
        ]
    assert ("admin", "user.created", "dana") in actions
    assert ("admin", "user.role_changed", "dana") in actions
    assert ("admin", "user.deactivated", "dana") in actions
    assert ("admin", "user.reactivated", "dana") in actions


async def test_deactivation_ends_sessions_and_returns_held_tasks(system: System) -> None:
    await set_thresholds(system, light=0.0, full=0.0)
    await submit(system, "Where is my parcel? It was due on Monday.")
    await system.settle()
    rita_id = await make_user(system, "rita", "reviewer")
    async with reviewer_client(system) as h1, reviewer_client(system) as h2:
        rita = await signed_in(h1, "rita", "pw-for-tests-1")
        task = await rita.start("support-triage")
        assert task
        inbox = await h1.get("/")
        assert "Continue support-triage" in inbox.text
        admin = await signed_in(h2, "admin", ADMIN_PASSWORD)
        r = await h2.post(f"/admin/users/{rita_id}/deactivate", data={"csrf_token": admin.csrf})
        assert r.status_code == 303
        # Her open session no longer works, and she cannot sign in again.
        r = await h1.get("/")
        assert r.status_code == 303 and r.headers["location"] == "/login"
        r = await h1.post("/login", data={"username": "rita", "password": "pw-for-tests-1"})
        assert r.status_code == 401 and "deactivated" in r.text
        # Her task went straight back to the queue.
        assert await admin.start("support-triage") == task


async def test_api_keys_are_shown_once_limited_and_revocable(system: System) -> None:
    async with reviewer_client(system) as http:
        admin = await signed_in(http, "admin", ADMIN_PASSWORD)
        r = await http.post(
            "/admin/api-keys",
            data={"csrf_token": admin.csrf, "name": "crm", "workflows": "no-such-workflow"},
        )
        assert r.status_code == 422 and "Unknown workflow" in r.text
        r = await http.post(
            "/admin/api-keys",
            data={"csrf_token": admin.csrf, "name": "crm", "workflows": "support-triage"},
        )
        assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
        m = re.search(r'id="new-key">(hitl_[^<]+)<', r.text)
        assert m
        key = m.group(1)
        assert key not in (await http.get("/admin/api-keys")).text
        headers = {"Authorization": f"Bearer {key}"}
        assert (await system.client.get("/v1/workflows", headers=headers)).status_code == 200
        r = await system.client.post(
            "/v1/items",
            json={"workflow": "lead-qualification", "input": {"body": "hi"}},
            headers=headers,
        )
        assert r.status_code in (403, 404), r.text  # limited to support-triage
        async with system.embedded.runtime.sessionmaker() as s:  # type: ignore[attr-defined]
            row = (await s.execute(sa.select(ApiKey).where(ApiKey.name == "crm"))).scalar_one()
        page = await http.get("/admin/api-keys")
        assert "last used" not in page.text or "never" in page.text
        r = await http.post(f"/admin/api-keys/{row.id}/revoke", data={"csrf_token": admin.csrf})
        assert r.status_code == 303
        assert (await system.client.get("/v1/workflows", headers=headers)).status_code == 401
        page = await http.get(r.headers["location"])
        assert "is revoked" in page.text


async def test_workflow_versions_are_shown_with_who_applied_them(system: System) -> None:
    await set_thresholds(system, light=0.9, full=0.5)
    async with reviewer_client(system) as http:
        await signed_in(http, "admin", ADMIN_PASSWORD)
        page = await http.get("/admin/workflows")
        assert "support-triage" in page.text
        page = await http.get("/admin/workflows/support-triage")
        assert page.status_code == 200
        assert 'data-version="2"' in page.text and 'data-version="1"' in page.text
        assert "test" in page.text  # version 2 was applied by "test"
        assert "Changes from version 1" in page.text
        assert "light: 0.9" in page.text
        assert (await http.get("/admin/workflows/nope")).status_code == 404


async def test_item_history_permissions_and_diff(system: System) -> None:
    await set_thresholds(system, light=0.0, full=0.0)
    item_id = await submit(system, "The <b>app</b> crashes when I open invoices")
    other_id = await submit(system, "Another ticket nobody decided yet")
    await system.settle()
    await make_user(system, "rita", "reviewer")
    async with reviewer_client(system) as h1, reviewer_client(system) as h2:
        rita = await signed_in(h1, "rita", "pw-for-tests-1")
        task = await rita.start("support-triage")
        assert task
        page = await h1.get(f"/tasks/{task}")
        shown = re.search(r'data-item="([^"]+)"', page.text)
        assert shown
        decided = shown.group(1)
        undecided = other_id if decided == item_id else item_id
        # The reviewer holding the task may open its history from the review page.
        assert f'href="/items/{decided}"' in page.text
        assert (await h1.get(f"/items/{decided}")).status_code == 200
        ai_label = re.search(r'id="ai-label">([^<]+)<', page.text)
        assert ai_label
        new_label = "technical" if ai_label.group(1) != "technical" else "billing"
        r = await rita.decide(task, action="edit", label=new_label)
        assert r.status_code == 303
        page = await h1.get(f"/items/{decided}")
        assert page.status_code == 200
        assert 'data-kind="label"' in page.text and 'data-changed="yes"' in page.text
        assert f'<del class="ai">{ai_label.group(1)}</del>' in page.text
        assert f'<ins class="final">{new_label}</ins>' in page.text
        assert "item.edited" in page.text and "rita" in page.text
        if decided == item_id:
            assert "&lt;b&gt;app&lt;/b&gt;" in page.text and "<b>app</b>" not in page.text
        # Another reviewer's or an undecided item is not hers to see.
        assert (await h1.get(f"/items/{undecided}")).status_code == 403
        assert (await h1.get(f"/items/{uuid.uuid4()}")).status_code == 403
        mine = await h1.get("/history")
        assert f"/items/{decided}" in mine.text

        await signed_in(h2, "admin", ADMIN_PASSWORD)
        assert (await h2.get(f"/items/{undecided}")).status_code == 200
        assert (await h2.get(f"/items/{uuid.uuid4()}")).status_code == 404
        everyone = await h2.get("/history?who=rita&days=30")
        assert f"/items/{decided}" in everyone.text


async def claimed_minutes_ago(system: System, task_id: str, minutes: int) -> None:
    """Active time is capped by how long the task was held: make it held for a while."""
    async with system.embedded.runtime.sessionmaker() as s:  # type: ignore[attr-defined]
        await s.execute(
            sa.update(ReviewTask)
            .where(ReviewTask.id == uuid.UUID(task_id))
            .values(claimed_at=utcnow() - timedelta(minutes=minutes))
        )
        await s.commit()


async def test_team_page_shows_a_rubber_stamper(system: System) -> None:
    await set_thresholds(system, light=0.0, full=0.0)
    for n in range(10):
        await submit(system, f"Please check order {n}; " + "it has not arrived yet. " * 10)
    await system.settle()
    await make_user(system, "stamp", "reviewer")
    await make_user(system, "carla", "reviewer")
    async with reviewer_client(system) as h1, reviewer_client(system) as h2:
        stamp = await signed_in(h1, "stamp", "pw-for-tests-1")
        carla = await signed_in(h2, "carla", "pw-for-tests-1")
        for n in range(10):
            rev, ms = (stamp, "0") if n % 2 == 0 else (carla, "60000")
            task = await rev.start("support-triage")
            assert task
            if rev is carla:
                await claimed_minutes_ago(system, task, 2)
            r = await rev.decide(task, action="approve", active_ms=ms)
            assert r.status_code == 303
        await system.settle()
        await signed_in(h1, "admin", ADMIN_PASSWORD)
        page = await h1.get("/team?days=30")
        assert page.status_code == 200
        row = re.search(r'<tr data-reviewer="stamp"[^>]*>(.*?)</tr>', page.text, re.S)
        assert row
        assert "flagged" in page.text.split('data-reviewer="stamp"')[1].split(">")[0]
        cells = re.sub(r"\s+", " ", row.group(1))
        assert "(100%)" in cells  # every approval near zero
        assert "near-zero approvals" in cells
        assert "no canaries yet" in cells
        carla_row = re.search(r'<tr data-reviewer="carla"[^>]*>(.*?)</tr>', page.text, re.S)
        assert carla_row and "near-zero approvals" not in carla_row.group(1)
        instant = await h1.get("/history?who=stamp&days=30&instant=true")
        assert instant.text.count("near zero") == 5
        assert (await h1.get("/team?days=7")).status_code == 200


def test_word_diff_and_output_diffs() -> None:
    segs = word_diff("Dear customer, your refund is late.", "Dear Ana, your refund is on its way.")
    assert [(s.op, s.text) for s in segs] == [
        ("same", "Dear "),
        ("del", "customer,"),
        ("ins", "Ana,"),
        ("same", " your refund is "),
        ("del", "late."),
        ("ins", "on its way."),
    ]
    d = diff_outputs({"label": "billing", "scores": [0.1]}, {"label": "technical"}, decided=True)
    assert (d.kind, d.changed, d.before_label, d.after_label) == (
        "label",
        True,
        "billing",
        "technical",
    )
    d = diff_outputs(
        {"amount": 120, "vendor": "ACME", "note": "paid in full by card"},
        {"amount": 210, "vendor": "ACME", "note": "paid in part by card", "iban": "DE00"},
        decided=True,
    )
    kinds = {f.name: f.kind for f in d.fields}
    assert kinds == {"amount": "changed", "vendor": "same", "note": "changed", "iban": "added"}
    note = next(f for f in d.fields if f.name == "note")
    assert note.words and ("ins", "part") in [(s.op, s.text) for s in note.words]
    assert diff_outputs({"label": "x"}, None, decided=True).kind == "rejected"
    assert diff_outputs({"label": "x"}, None, decided=False).kind == "pending"


def test_keyboard_help_lists_every_key_the_page_handles() -> None:
    ui = Path(__file__).resolve().parents[2] / "services/review-ui/src/hitl_review_ui"
    script = (ui / "static/review.js").read_text()
    help_html = (ui / "templates/review.html").read_text().split('id="keys-help"')[1]
    keys = set(re.findall(r'case "(.)":', script))
    assert keys >= {"a", "e", "r", "s", "j", "k", "?", "/"}
    listed = set(re.findall(r"<kbd>([^<]+)</kbd>", help_html))
    assert keys <= listed, keys - listed
    assert {"1", "9", "Esc", "Enter"} <= listed


async def test_team_window_choices(system: System) -> None:
    async with reviewer_client(system) as http:
        await signed_in(http, "admin", ADMIN_PASSWORD)
        for days, shown in (("7", "7"), ("30", "30"), ("999", "7")):
            page = await http.get(f"/team?days={days}")
            assert page.status_code == 200
            assert f"last {shown} days" in page.text


async def test_users_change_their_own_temporary_password(system: System) -> None:
    await make_user(system, "rita", "reviewer")
    async with reviewer_client(system) as http:
        rita = await signed_in(http, "rita", PASSWORD)
        form = {"current": PASSWORD, "new": "a-new-password-2", "confirm": "a-new-password-2"}
        r = await http.post("/account/password", data=form)
        assert r.status_code == 403  # no CSRF token
        r = await http.post(
            "/account/password", data={**form, "current": "wrong", "csrf_token": rita.csrf}
        )
        assert r.status_code == 422 and "not right" in r.text
        r = await http.post(
            "/account/password", data={**form, "confirm": "other-password", "csrf_token": rita.csrf}
        )
        assert r.status_code == 422 and "differ" in r.text
        r = await http.post("/account/password", data={**form, "csrf_token": rita.csrf})
        assert r.status_code == 200 and "is changed" in r.text
    async with reviewer_client(system) as http:
        r = await http.post("/login", data={"username": "rita", "password": PASSWORD})
        assert r.status_code == 401
        await signed_in(http, "rita", "a-new-password-2")
