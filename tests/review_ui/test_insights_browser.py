"""The insights pages in real Chromium, against `hitl up` as a process: a lead opens the
figures of a workflow after real decisions, and the charts draw them."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.processes import hitl_up
from tests.review_ui.test_browser import ARGS, CHROMIUM, SHOTS, send, sign_in, wait_in_review
from tests.support import API_KEY, ScriptedReviewer, unavailable

WF = "support-triage"
LEAD, LEAD_PASSWORD = "lena", "lena-password-1"
TICKETS = {
    "I was charged twice for my plan this month": "billing",
    "The export button gives an error 500": "technical",
    "My parcel never arrived and tracking shows nothing": "shipping",
    "I cannot log in, the reset email never comes": "account",
}


@pytest.fixture
async def hitl(tmp_path: Path) -> AsyncIterator[str]:
    with hitl_up(tmp_path) as (base, procs):
        procs.run("users", "users", "create", LEAD, "--role", "lead", "--password", LEAD_PASSWORD)
        yield base


@pytest.fixture
async def chromium() -> AsyncIterator[object]:
    if not Path(CHROMIUM).exists():
        unavailable("Chromium (/usr/bin/chromium; apt-get install chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        await b.close()


async def recorded(base: str, decisions: int) -> None:
    """Wait until the feedback service has recorded every decision."""
    async with httpx.AsyncClient(base_url=base) as http:
        for _ in range(100):
            r = await http.get(
                f"/v1/feedback/workflows/{WF}/review-times",
                headers={"Authorization": f"Bearer {API_KEY}"},
            )
            if r.json()["decisions"] == decisions:
                return
            await asyncio.sleep(0.1)
    raise AssertionError("decisions were not recorded")


async def test_a_lead_sees_the_workflow_figures_as_charts(hitl: str, chromium) -> None:  # type: ignore[no-untyped-def]
    base = hitl
    SHOTS.mkdir(parents=True, exist_ok=True)
    ids = [send(base, text, 10) for text in TICKETS]
    await wait_in_review(base, ids)
    async with httpx.AsyncClient(base_url=base) as http:
        rev = ScriptedReviewer(http)
        await rev.sign_in(LEAD, LEAD_PASSWORD)
        task = await rev.start(WF)
        while task:
            page = await http.get(f"/tasks/{task}")
            label = next(lab for text, lab in TICKETS.items() if text in page.text)
            r = await rev.decide(task, action="edit", label=label, queue_workflow=WF)
            assert r.status_code == 303, r.text[:300]
            loc = r.headers["location"]
            task = loc.split("/tasks/")[1].split("?")[0] if "/tasks/" in loc else None
    await recorded(base, len(TICKETS))

    page = await chromium.new_page(viewport={"width": 1280, "height": 900})
    await sign_in(page, base, LEAD, LEAD_PASSWORD)
    await page.click("nav >> text=Insights")
    await page.wait_for_url(f"{base}/insights")
    row = page.locator(f"tr[data-workflow={WF}]")
    assert (await row.locator("td.decisions").inner_text()).strip() == str(len(TICKETS))
    await row.locator(f"text={WF}").click()
    await page.wait_for_url(f"{base}/insights/{WF}?days=90")

    reliability = page.locator("svg#reliability")
    assert await reliability.is_visible()
    box = await reliability.bounding_box()
    assert box and box["width"] > 300 and box["height"] > 200
    assert await page.locator("svg#reliability g.point").count() >= 1
    assert await page.locator("svg#bands g.point").count() >= 1
    bars = page.locator("svg#review-times rect.bar")
    values = [
        int(await bars.nth(i).get_attribute("data-value") or 0) for i in range(await bars.count())
    ]
    assert sum(values) == len(TICKETS)
    assert await page.locator("svg#routed rect.bar").count() >= 1
    # Nothing waits any more: the page says so in words.
    assert await page.locator("#load-section .chart-empty").inner_text() == (
        "Nothing is waiting for review in this workflow."
    )
    key = re.sub(r"\s+", " ", await page.locator("#key-figures").inner_text())
    assert f"Human decisions (90 days) {len(TICKETS)}" in key
    await page.screenshot(path=str(SHOTS / "insights-workflow.png"), full_page=True)
    await page.close()
