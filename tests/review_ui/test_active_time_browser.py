"""The active-time script of the review and batch pages, in real Chromium on a fake clock:
time counts only while the tab is visible and the reviewer was active in the last 30 s."""

from __future__ import annotations

from pathlib import Path

from tests.review_ui.test_browser import browser

__all__ = ["browser"]

STATIC = (
    Path(__file__).resolve().parents[2]
    / "services"
    / "review-ui"
    / "src"
    / "hitl_review_ui"
    / "static"
)

# A page that can be hidden and shown again, as when the reviewer switches tabs.
VISIBILITY = """
window.__visibility = "visible";
Object.defineProperty(document, "visibilityState", {
  configurable: true, get: function () { return window.__visibility; }
});
window.__setVisibility = function (v) {
  window.__visibility = v; document.dispatchEvent(new Event("visibilitychange"));
};
"""


async def test_active_time_counts_visible_recent_activity_only(browser) -> None:  # type: ignore[no-untyped-def]
    page = await browser.new_page()
    await page.clock.install()
    script = (STATIC / "active-time.js").read_text()
    await page.set_content(
        '<form id="f" onsubmit="event.preventDefault()">'
        '<input type="hidden" name="active_ms" id="active-ms" value="">'
        '<button id="go">Go</button></form>'
        f"<script>{VISIBILITY}</script><script>{script}</script>"
    )

    async def active_s() -> float:
        return float(await page.evaluate("window.hitlActiveTime.ms()")) / 1000

    await page.mouse.move(10, 10)
    await page.clock.run_for(10_000)
    assert 9.5 <= await active_s() <= 10.5

    # Another tab in front for two minutes: nothing counts, and nothing on coming back even
    # though the browser froze the hidden tab's timers (the clock jumps, no tick runs).
    await page.evaluate("window.__setVisibility('hidden')")
    await page.clock.run_for(5_000)
    now = await page.evaluate("Date.now()")
    await page.clock.set_system_time(now + 115_000)
    await page.evaluate("window.__setVisibility('visible')")
    await page.keyboard.press("Shift")
    assert 9.5 <= await active_s() <= 10.5

    # Reading without touching anything counts for 30 s, then the reviewer is idle.
    await page.clock.run_for(5_000)
    assert 14.5 <= await active_s() <= 15.5
    await page.clock.run_for(120_000)
    assert 39.5 <= await active_s() <= 40.5

    # Submitting fills the form's active_ms field.
    await page.click("#go")
    sent = int(await page.locator("#active-ms").input_value())
    assert 39_500 <= sent <= 40_500
