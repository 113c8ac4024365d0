"""Escalation by keyboard and batch approval in real Chromium, against `hitl up` as a process."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import parse_qs

import httpx

from hitl_shared.workflows.config import DEMO_DIR
from tests.e2e.processes import Processes
from tests.review_ui.test_admin_browser import chromium, hitl
from tests.review_ui.test_browser import SHOTS, item, send, sign_in, wait_in_review
from tests.support import ADMIN_PASSWORD, API_KEY

__all__ = ["chromium", "hitl"]  # the fixtures, shared with the admin browser tests


def send_lead(base: str, message: str) -> str:
    r = httpx.post(
        f"{base}/v1/items",
        json={"workflow": "lead-qualification", "input": {"message": message}},
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


async def test_reviewer_escalates_with_the_keyboard_and_a_lead_sees_why(
    hitl: tuple[str, Processes], chromium
) -> None:  # type: ignore[no-untyped-def]
    base, procs = hitl
    SHOTS.mkdir(parents=True, exist_ok=True)
    procs.run("users", "users", "create", "bob", "--password", "bob-password-1")
    first = send(base, "Your product deleted our customer list. What now?", priority=90)
    second = send(base, "How do I change my password?", priority=10)
    await wait_in_review(base, [first, second])

    page = await chromium.new_page()
    await sign_in(page, base, "bob", "bob-password-1")
    await page.click("#start-all")
    await page.wait_for_url("**/tasks/**")
    assert await page.locator(".review").get_attribute("data-item") == first

    # `?` lists the key; `x` opens the escalation box with the reason focused.
    await page.keyboard.press("?")
    assert "Escalate to a lead" in await page.locator("#keys-help").inner_text()
    await page.keyboard.press("Escape")
    await page.keyboard.press("x")
    assert await page.locator("#escalate-box").get_attribute("open") is not None
    await page.keyboard.type("Data loss claim, needs a lead")
    await page.screenshot(path=str(SHOTS / "escalate.png"), full_page=True)
    url = page.url
    await page.keyboard.press("Control+Enter")
    await page.wait_for_url(lambda u: u != url)
    # On to the next item; the escalated one is out of the reviewer's reach.
    assert await page.locator(".review").get_attribute("data-item") == second
    assert item(base, first)["status"] == "in_review"

    lead = await (await chromium.new_context()).new_page()
    await sign_in(lead, base, "admin", ADMIN_PASSWORD)
    await lead.goto(f"{base}/escalations")
    row = lead.locator("#escalations tbody tr")
    assert await row.count() == 1
    text = await row.inner_text()
    assert "Data loss claim, needs a lead" in text and "bob" in text
    await lead.screenshot(path=str(SHOTS / "escalations.png"), full_page=True)
    await lead.click("#start-escalated")
    await lead.wait_for_url("**/tasks/**")
    assert "Data loss claim" in await lead.locator("#escalation-note").inner_text()
    await lead.keyboard.press("2")  # technical
    await lead.keyboard.press("e")
    await lead.wait_for_url(lambda u: "/tasks/" not in u or u.endswith("msg=empty"))
    decided = item(base, first)
    assert decided["status"] == "completed"
    assert decided["decision"]["decided_by"] == "admin"  # type: ignore[index]


async def test_batch_of_declines_approved_together_in_the_browser(
    hitl: tuple[str, Processes], chromium, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    base, procs = hitl
    SHOTS.mkdir(parents=True, exist_ok=True)
    # Every lead the AI is not sure of (here: all of them) waits for batch review.
    source = (DEMO_DIR / "lead-qualification.yaml").read_text()
    wf = tmp_path / "lead-qualification.yaml"
    wf.write_text(
        source + "\nrouting: {thresholds: {light: 1.0, full: 1.0},"
        " batch: {labels: [qualified, nurture, disqualified], below_confidence: 1.0}}\n"
    )
    assert "version 2" in procs.run("apply", "workflows", "apply", str(wf))
    messages = [
        "I am a student writing a thesis, can I interview you?",
        "We sell SEO services, reply for a free audit.",
        "Are you hiring developers? Here is my CV.",
    ]
    ids = [send_lead(base, m) for m in messages]
    await wait_in_review(base, ids)
    views = [item(base, i) for i in ids]
    assert {v["review"]["level"] for v in views} == {"batch"}, views  # type: ignore[index]

    page = await chromium.new_page()
    await sign_in(page, base, "admin", ADMIN_PASSWORD)
    await page.click("a.batch-link")
    await page.wait_for_url("**/batches/lead-qualification")
    await page.click("#take-batch")
    await page.wait_for_url("**/batches/lead-qualification")
    rows = page.locator("#batch-table tbody tr")
    assert await rows.count() == 3
    table = await page.locator("#batch-table").inner_text()
    for m in messages:
        assert m in table
    # Select one, send it to normal review; then select all the rest and approve them.
    keep_out = await rows.nth(2).get_attribute("data-item")
    await rows.nth(2).locator("input.pick").check()
    await page.click("#send-to-review")
    await page.wait_for_url("**msg=sent")
    on_page = time.monotonic()
    assert await page.locator("#batch-table tbody tr").count() == 2
    await page.keyboard.press("Shift+A")
    assert await page.locator("input.pick:checked").count() == 2
    await page.screenshot(path=str(SHOTS / "batch.png"), full_page=True)
    posted: list[str] = []
    page.on(
        "request",
        lambda r: posted.append(r.post_data or "") if r.url.endswith("/decide") else None,
    )
    await page.click("#approve-selected")
    await page.wait_for_url("**msg=approved")
    # The page sent its active time (measured like the review page's), never more than the
    # time it was open; the server shares it out over the two items.
    [form] = [parse_qs(p) for p in posted if "action=approve" in p]
    assert 0 < int(form["active_ms"][0]) <= (time.monotonic() - on_page) * 1000
    assert await page.locator("#batch-empty").count() == 1

    for i in ids:
        view = item(base, i)
        if i == keep_out:
            assert view["status"] == "in_review"
            continue
        assert view["status"] == "completed"
        assert view["decision"]["outcome"] == "approved"  # type: ignore[index]
        assert view["decision"]["decided_by"] == "admin"  # type: ignore[index]
    r = httpx.get(f"{base}/v1/items/{keep_out}", headers={"Authorization": f"Bearer {API_KEY}"})
    assert r.json()["status"] == "in_review"
