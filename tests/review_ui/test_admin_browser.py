"""Admin, item history and team pages in real Chromium, against `hitl up` as a process."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from hitl_shared.workflows.config import DEMO_DIR
from tests.e2e.processes import Processes, hitl_up
from tests.review_ui.test_browser import ARGS, CHROMIUM, SHOTS, send, sign_in, wait_in_review
from tests.support import ADMIN_PASSWORD, API_KEY, ScriptedReviewer, unavailable


@pytest.fixture
async def hitl(tmp_path: Path) -> AsyncIterator[tuple[str, Processes]]:
    with hitl_up(tmp_path) as (base, procs):
        yield base, procs


@pytest.fixture
async def chromium() -> AsyncIterator[object]:
    if not Path(CHROMIUM).exists():
        unavailable("Chromium (/usr/bin/chromium; apt-get install chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        await b.close()


def workflows_status(base: str, key: str) -> int:
    return httpx.get(f"{base}/v1/workflows", headers={"Authorization": f"Bearer {key}"}).status_code


async def test_admin_creates_a_user_and_an_api_key_then_takes_them_away(
    hitl: tuple[str, Processes], chromium
) -> None:  # type: ignore[no-untyped-def]
    base, _ = hitl
    SHOTS.mkdir(parents=True, exist_ok=True)
    admin_ctx, carol_ctx = await chromium.new_context(), await chromium.new_context()
    admin, carol = await admin_ctx.new_page(), await carol_ctx.new_page()
    await sign_in(admin, base, "admin", ADMIN_PASSWORD)
    await admin.click("nav >> text=Admin")
    await admin.wait_for_url(f"{base}/admin/users")

    # Create a reviewer: the temporary password is shown once.
    await admin.fill("#create-user input[name=username]", "carol")
    await admin.select_option("#create-user select[name=role]", "reviewer")
    await admin.click("#create-user button[type=submit]")
    await admin.wait_for_selector("#temp-password")
    password = (await admin.locator("#temp-password").inner_text()).strip()
    assert len(password) >= 12
    await admin.screenshot(path=str(SHOTS / "admin-users-created.png"), full_page=True)
    await admin.goto(f"{base}/admin/users")
    assert password not in await admin.content()
    assert await admin.locator("tr[data-user=carol]").count() == 1

    await sign_in(carol, base, "carol", password)
    assert await carol.locator("nav >> text=Admin").count() == 0

    # Deactivation signs carol out at once and blocks her next sign-in.
    await admin.click("tr[data-user=carol] >> text=Deactivate")
    await admin.wait_for_url("**/admin/users?msg=deactivated*")
    assert "deactivated" in await admin.locator("tr[data-user=carol]").inner_text()
    await carol.goto(f"{base}/")
    assert carol.url.endswith("/login")
    await carol.fill("input[name=username]", "carol")
    await carol.fill("input[name=password]", password)
    await carol.keyboard.press("Enter")
    await carol.wait_for_selector(".error")
    assert "deactivated" in await carol.locator(".error").inner_text()

    # An API key limited to one workflow: shown once, works, and stops working when revoked.
    await admin.click("nav.tabs >> text=API keys")
    await admin.fill("#create-key input[name=name]", "crm")
    await admin.check("#create-key input[value=support-triage]")
    await admin.click("#create-key button[type=submit]")
    await admin.wait_for_selector("#new-key")
    key = (await admin.locator("#new-key").inner_text()).strip()
    assert key.startswith("hitl_")
    await admin.screenshot(path=str(SHOTS / "admin-api-key-created.png"), full_page=True)
    assert workflows_status(base, key) == 200
    await admin.goto(f"{base}/admin/api-keys")
    assert key not in await admin.content()
    row = admin.locator("tr[data-key=crm]")
    assert "support-triage" in await row.inner_text()
    await row.locator("text=Revoke").click()
    await admin.wait_for_url("**/admin/api-keys?msg=revoked*")
    assert "revoked" in await admin.locator("tr[data-key=crm]").inner_text()
    assert workflows_status(base, key) == 401
    assert workflows_status(base, API_KEY) == 200

    await admin.goto(f"{base}/admin/workflows/support-triage")
    assert await admin.locator("#versions tr[data-version='1']").count() == 1
    await admin.screenshot(path=str(SHOTS / "admin-workflow.png"), full_page=True)
    await admin.goto(f"{base}/admin/audit")
    audit = await admin.locator("#audit").inner_text()
    for action in ("user.created", "user.deactivated", "api_key.created", "api_key.revoked"):
        assert action in audit
    await admin.screenshot(path=str(SHOTS / "admin-audit.png"), full_page=True)
    await admin_ctx.close()
    await carol_ctx.close()


async def test_item_history_shows_the_edit_and_team_page_shows_the_rubber_stamper(
    hitl: tuple[str, Processes], chromium, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    base, procs = hitl
    SHOTS.mkdir(parents=True, exist_ok=True)
    # Every item at light level, so the AI answer can be approved (as a rubber-stamper does).
    source = (DEMO_DIR / "support-triage.yaml").read_text()
    wf = tmp_path / "support-triage.yaml"
    wf.write_text(source + "\nrouting: {thresholds: {light: 0.0, full: 0.0}}\n")
    assert "version 2" in procs.run("apply", "workflows", "apply", str(wf))
    procs.run("users", "users", "create", "stamp", "--password", "stamp-password-1")

    ids = [send(base, f"Order {n} has not arrived, tracking shows nothing.", 10) for n in range(5)]
    # Lowest priority: the stamper's five come first, this one is left for the admin.
    edited = send(base, "I was charged twice for the same month, please refund.", 1)
    await wait_in_review(base, [*ids, edited])

    # The rubber-stamper approves five items in no time at all.
    async with httpx.AsyncClient(base_url=base) as http:
        stamp = ScriptedReviewer(http)
        await stamp.sign_in("stamp", "stamp-password-1")
        for _ in range(5):
            task = await stamp.start("support-triage", "light")
            assert task
            r = await stamp.decide(task, action="approve", active_ms="0")
            assert r.status_code == 303, r.text
        # Deciding claimed the next item for the stamper: give it back for the admin.
        held = await stamp.start("support-triage", "light")
        if held:
            r = await http.post(f"/tasks/{held}/skip", data={"csrf_token": stamp.csrf})
            assert r.status_code == 303

    page = await chromium.new_page()
    await sign_in(page, base, "admin", ADMIN_PASSWORD)
    await page.click("#start-all")
    await page.wait_for_url("**/tasks/**")
    item_id = await page.locator(".review").get_attribute("data-item")
    assert item_id == edited
    ai_label = (await page.locator("#ai-label").inner_text()).strip()
    labels = ["billing", "technical", "account", "shipping"]
    choice = next(i for i, name in enumerate(labels) if name != ai_label)
    await page.keyboard.press(str(choice + 1))
    await page.keyboard.press("e")
    await page.wait_for_url(f"{base}/?msg=empty")

    await page.goto(f"{base}/items/{item_id}")
    diff = page.locator("#output-diff")
    assert await diff.get_attribute("data-changed") == "yes"
    assert (await diff.locator("del").inner_text()).strip() == ai_label
    assert (await diff.locator("ins").inner_text()).strip() == labels[choice]
    timeline = await page.locator("#timeline").inner_text()
    for what in ("item.received", "ai.answered", "item.routed", "item.edited", "admin"):
        assert what in timeline
    await page.screenshot(path=str(SHOTS / "item-history.png"), full_page=True)

    await page.click("nav >> text=Team")
    await page.wait_for_url(f"{base}/team")
    row = page.locator("tr[data-reviewer=stamp]")
    text = re.sub(r"\s+", " ", await row.inner_text())
    assert "near-zero approvals" in text
    assert "5 (100%)" in text
    assert "no canaries yet" in text
    await page.screenshot(path=str(SHOTS / "team.png"), full_page=True)
    await row.locator("td.instant a").click()
    await page.wait_for_url("**/history?**instant=true")
    assert await page.locator("table.decisions tbody tr").count() == 5
    await page.screenshot(path=str(SHOTS / "history.png"), full_page=True)
