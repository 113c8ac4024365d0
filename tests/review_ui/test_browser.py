"""The review UI in real Chromium (Playwright), against `hitl up` running as a process."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest

from tests.e2e.processes import hitl_up
from tests.support import ADMIN_PASSWORD, API_KEY, unavailable

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[str]:
    with hitl_up(tmp_path) as (base, procs):
        procs.run("users", "users", "create", "bob", "--password", "bob-password-1")
        yield base


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    if not Path(CHROMIUM).exists():
        unavailable("Chromium (/usr/bin/chromium; apt-get install chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        await b.close()


def send(base: str, body: str, priority: int, workflow: str = "support-triage") -> str:
    r = httpx.post(
        f"{base}/v1/items",
        json={
            "workflow": workflow,
            "input": {"subject": "Ticket", "body": body},
            "priority": priority,
        },
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def item(base: str, item_id: str) -> dict[str, object]:
    r = httpx.get(f"{base}/v1/items/{item_id}", headers={"Authorization": f"Bearer {API_KEY}"})
    return dict(r.json())


async def wait_in_review(base: str, ids: list[str]) -> None:
    import asyncio

    for _ in range(200):
        if all(item(base, i)["status"] == "in_review" for i in ids):
            return
        await asyncio.sleep(0.1)
    raise AssertionError("items did not reach review")


async def sign_in(page, base: str, user: str, password: str) -> None:  # type: ignore[no-untyped-def]
    await page.goto(f"{base}/")
    assert page.url.endswith("/login")
    await page.fill("input[name=username]", user)
    await page.fill("input[name=password]", password)
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"{base}/")


async def test_keyboard_only_review_and_inert_html(server: str, browser) -> None:  # type: ignore[no-untyped-def]
    SHOTS.mkdir(parents=True, exist_ok=True)
    hostile = (
        "<script>alert('pwned')</script><img src=x onerror=alert(1)> <b>bold?</b> refund please"
    )
    first = send(server, hostile, priority=100)
    second = send(server, "The mobile app shows a blank screen after login.", priority=50)
    third = send(server, "My parcel never arrived, tracking says delivered.", priority=10)
    await wait_in_review(server, [first, second, third])

    page = await browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: dialogs.append(d.message))
    await sign_in(page, server, "admin", ADMIN_PASSWORD)
    await page.screenshot(path=str(SHOTS / "inbox.png"), full_page=True)
    assert await page.locator("table.queues").count() == 1

    await page.click("#start-all")
    await page.wait_for_url("**/tasks/**")
    # Untrusted content is shown as text, never run or rendered as HTML.
    text = await page.locator("#item-text").inner_text()
    assert "<script>alert('pwned')</script>" in text
    assert await page.locator("#item-text img").count() == 0
    assert await page.locator("#item-text b").count() == 0
    await page.screenshot(path=str(SHOTS / "review.png"), full_page=True)

    # `?` shows the keys; Escape closes the help again.
    await page.keyboard.press("?")
    assert await page.locator("#keys-help").is_visible()
    await page.screenshot(path=str(SHOTS / "keys-help.png"))
    await page.keyboard.press("Escape")

    # Keyboard only: choose label 1 (billing) and save; the next item appears at once.
    url = page.url
    await page.keyboard.press("1")
    await page.keyboard.press("e")
    await page.wait_for_url(lambda u: u != url and "/tasks/" in u)
    assert "blank screen" in await page.locator("#item-text").inner_text()

    # r opens the reject box with the reason focused; choose one and submit with the keyboard.
    url = page.url
    await page.keyboard.press("r")
    await page.select_option("#reason-code", "insufficient_information")
    await page.focus("#reject")
    await page.keyboard.press("Enter")
    await page.wait_for_url(lambda u: u != url)

    # j moves to the next label; e saves it.
    assert "parcel" in await page.locator("#item-text").inner_text()
    await page.keyboard.press("4")
    await page.keyboard.press("e")
    await page.wait_for_url(f"{server}/?msg=empty")
    assert "Nothing left" in await page.locator(".flash").inner_text()
    assert dialogs == []

    assert item(server, first)["decision"]["output"] == {"label": "billing"}  # type: ignore[index]
    assert item(server, second)["decision"]["outcome"] == "rejected"  # type: ignore[index]
    assert item(server, third)["decision"]["output"] == {"label": "shipping"}  # type: ignore[index]


async def test_two_reviewers_get_different_items_and_forged_posts_fail(
    server: str, browser
) -> None:  # type: ignore[no-untyped-def]
    ids = [send(server, f"Invoice question number {n}", priority=n) for n in range(2)]
    await wait_in_review(server, ids)
    admin_ctx = await browser.new_context()
    bob_ctx = await browser.new_context()
    admin, bob = await admin_ctx.new_page(), await bob_ctx.new_page()
    await sign_in(admin, server, "admin", ADMIN_PASSWORD)
    await sign_in(bob, server, "bob", "bob-password-1")
    await admin.click("#start-all")
    await admin.wait_for_url("**/tasks/**")
    await bob.click("#start-all")
    await bob.wait_for_url("**/tasks/**")
    assert admin.url.split("/tasks/")[1] != bob.url.split("/tasks/")[1]
    a_text = await admin.locator("#item-text").inner_text()
    b_text = await bob.locator("#item-text").inner_text()
    assert a_text != b_text

    # A form post without the CSRF token (as a forged cross-site form would be) is refused.
    status = await bob.evaluate(
        """async () => {
            const r = await fetch('/queue/start', {method: 'POST',
              headers: {'content-type': 'application/x-www-form-urlencoded'}, body: 'workflow='});
            return r.status;
        }"""
    )
    assert status == 403
    await admin_ctx.close()
    await bob_ctx.close()


async def test_edit_an_extraction_field_with_the_keyboard(server: str, browser) -> None:  # type: ignore[no-untyped-def]
    SHOTS.mkdir(parents=True, exist_ok=True)
    r = httpx.post(
        f"{server}/v1/items",
        json={
            "workflow": "invoice-extraction",
            "input": {
                "text": "Acme Supplies Ltd\nInvoice INV-20530\nDate: 2026-11-03\n"
                "Subtotal: 880.00\nTax: 176.00\nTotal due: 1,065.00"
            },
        },
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    assert r.status_code == 202, r.text
    item_id = str(r.json()["id"])
    await wait_in_review(server, [item_id])

    page = await browser.new_page()
    await sign_in(page, server, "admin", ADMIN_PASSWORD)
    await page.click("#start-all")
    await page.wait_for_url("**/tasks/**")
    # The totals do not add up: the rule is named and the fields it involves are marked.
    assert "totals-add-up" in await page.locator("#failed-rules").inner_text()
    assert await page.locator(".field-row.doubtful[data-field=total]").count() == 1
    await page.screenshot(path=str(SHOTS / "review-extract.png"), full_page=True)

    # e goes to the first field to check; Tab moves on; Enter saves the reviewer's answer.
    await page.keyboard.press("e")
    focused = await page.evaluate("document.activeElement.name")
    assert focused.startswith("field.")
    level = await page.locator(".review").get_attribute("data-level")
    typed = {"total": "1056.00"}
    if level == "manual":  # the AI's values are only hints (placeholders): type them all
        typed |= {
            "invoice_number": "INV-20530",
            "vendor": "Acme Supplies Ltd",
            "invoice_date": "2026-11-03",
        }
    for name, value in typed.items():
        await page.focus(f"input[name='field.{name}']")
        await page.keyboard.press("Control+a")
        await page.keyboard.type(value)
    url = page.url
    await page.keyboard.press("Enter")
    await page.wait_for_url(lambda u: u != url)
    decision = item(server, item_id)["decision"]
    assert isinstance(decision, dict)
    assert decision["outcome"] == "edited"
    assert decision["output"]["fields"]["total"] == 1056.0
    assert decision["output"]["fields"]["invoice_number"] == "INV-20530"


async def test_tick_tags_of_a_multi_label_item_with_the_keyboard(server: str, browser) -> None:  # type: ignore[no-untyped-def]
    SHOTS.mkdir(parents=True, exist_ok=True)
    item_id = send(
        server, "The sync is broken again, fix it or we move to a competitor", 0, "ticket-tags"
    )
    await wait_in_review(server, [item_id])
    page = await browser.new_page()
    await sign_in(page, server, "admin", ADMIN_PASSWORD)
    await page.click("#start-all")
    await page.wait_for_url("**/tasks/**")
    boxes = page.locator("input[type=checkbox][name=label]")
    assert await boxes.count() == 5
    await page.screenshot(path=str(SHOTS / "review-tags.png"), full_page=True)
    # 1-5 tick and untick the labels in order; the wanted set is bug-report + churn-risk.
    want = ["bug-report", "churn-risk"]
    for i in range(5):
        box = boxes.nth(i)
        if await box.is_checked() != (await box.get_attribute("value") in want):
            await page.keyboard.press(str(i + 1))
    assert [await boxes.nth(i).is_checked() for i in range(5)] == [False, True, False, True, False]
    # The number keys leave the focus on a box: e still saves, as the help says. The form
    # carries the active time measured by the shared active-time script.
    await page.wait_for_timeout(1000)
    url = page.url
    async with page.expect_request(lambda r: r.method == "POST") as posted:
        await page.keyboard.press("e")
    form = parse_qs((await posted.value).post_data or "")
    assert form["label"] == want
    assert int(form["active_ms"][0]) >= 900
    await page.wait_for_url(lambda u: u != url)
    decision = item(server, item_id)["decision"]
    assert isinstance(decision, dict)
    assert decision["output"] == {"labels": want}
