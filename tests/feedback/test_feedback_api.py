"""The /v1/feedback API with real decisions made through the review UI."""

from __future__ import annotations

import httpx

from tests.conftest import System
from tests.support import ADMIN_PASSWORD, ScriptedReviewer


async def test_feedback_figures_after_reviews(system: System) -> None:
    texts = {
        "I was charged twice for my plan": "billing",
        "The app crashes when I open reports": "technical",
        "My parcel never arrived": "shipping",
        "I cannot log in to my account": "account",
    }
    for text in texts:
        r = await system.client.post(
            "/v1/items",
            json={"workflow": "support-triage", "input": {"body": text}},
            headers=system.api_headers,
        )
        assert r.status_code == 202
    await system.settle()
    async with httpx.AsyncClient(
        transport=system.client._transport, base_url="http://testserver"
    ) as http:
        rev = ScriptedReviewer(http)
        await rev.sign_in("admin", ADMIN_PASSWORD)
        task = await rev.start("support-triage")
        while task:
            page = await http.get(f"/tasks/{task}")
            # The demo items of the workflow are in the queue too.
            label = next((lab for t, lab in texts.items() if t in page.text), "billing")
            r = await rev.decide(task, action="edit", label=label, queue_workflow="support-triage")
            assert r.status_code == 303, r.text[r.text.find('class="error"') :][:300]
            loc = r.headers["location"]
            task = loc.split("/tasks/")[1].split("?")[0] if "/tasks/" in loc else None
    await system.settle()
    h = system.api_headers
    summary = (await system.client.get("/v1/feedback/workflows", headers=h)).json()
    triage = next(w for w in summary["workflows"] if w["workflow"] == "support-triage")
    decided = triage["decisions"]
    assert decided == 4 + 5  # ours and the five demo items
    for level in triage["levels"].values():
        low, high = level["ai_accuracy_95ci"]
        assert 0 <= low <= high <= 1

    cal = (
        await system.client.get("/v1/feedback/workflows/support-triage/calibration", headers=h)
    ).json()
    assert cal["map"]["method"] == "identity"  # nine decisions prove nothing yet
    assert sum(b["items"] for b in cal["reliability_raw"]) == decided

    rec = (
        await system.client.get("/v1/feedback/workflows/support-triage/recommendation", headers=h)
    ).json()
    assert rec["current"] == {"light": 0.85, "full": 0.6}
    assert rec["recommendation"]["light"] >= 0.85
    assert "Too few decided items to judge" in rec["recommendation"]["reason"]

    errors = (
        await system.client.get("/v1/feedback/workflows/support-triage/errors", headers=h)
    ).json()
    assert errors["decisions"] == decided
    lines = (
        await system.client.get(
            "/v1/feedback/workflows/support-triage/corrections.jsonl", headers=h
        )
    ).text
    assert all(line.startswith("{") for line in lines.splitlines())

    reviewers = (await system.client.get("/v1/feedback/reviewers", headers=h)).json()
    assert reviewers["reviewers"][0]["reviewer"] == "admin"
    assert reviewers["reviewers"][0]["decisions"] == decided

    missing = await system.client.get("/v1/feedback/workflows/nope/errors", headers=h)
    assert missing.status_code == 404
    assert (await system.client.get("/v1/feedback/workflows")).status_code == 401
