"""One item through the whole loop, as an integration and a reviewer would do it."""

from __future__ import annotations

import httpx
from standardwebhooks import Webhook

from tests.support import ADMIN_PASSWORD, API_KEY, ScriptedReviewer, WebhookReceiver, wait_for


async def whole_loop(ingest: str, review_ui: str, feedback: str, webhook_secret: str) -> None:
    receiver = WebhookReceiver()
    headers = {"Authorization": f"Bearer {API_KEY}"}
    try:
        async with httpx.AsyncClient(base_url=ingest, timeout=10) as api:
            r = await api.post(
                "/v1/items",
                json={
                    "workflow": "lead-qualification",
                    "input": {
                        "company": "Harbour Freight Ltd",
                        "employees": 60,
                        "message": "We need this for our 12 person support team this quarter, "
                        "budget approved. Can we book a demo?",
                    },
                    "callback_url": receiver.url,
                    "external_id": "lead-991",
                    "priority": 100,
                },
                headers={**headers, "Idempotency-Key": "lead-991"},
            )
            assert r.status_code == 202, r.text
            item_id = r.json()["id"]

            async def in_review() -> bool:
                got = await api.get(f"/v1/items/{item_id}", headers=headers)
                return got.json()["status"] == "in_review"

            await wait_for(in_review, timeout=60, what="the item to reach a review queue")
            item = (await api.get(f"/v1/items/{item_id}", headers=headers)).json()
            assert item["ai"]["provider"] == "local"
            assert item["review"]["level"] in {"light", "full", "manual"}

            async with httpx.AsyncClient(base_url=review_ui, timeout=10) as ui:
                rev = ScriptedReviewer(ui)
                await rev.sign_in("admin", ADMIN_PASSWORD)
                task = await rev.start("lead-qualification")
                assert task
                page = await ui.get(f"/tasks/{task}")
                assert "Harbour Freight Ltd" in page.text, "highest-priority item first"
                r = await rev.decide(task, action="edit", label="qualified")
                assert r.status_code == 303

            async def completed() -> dict[str, object] | None:
                got = (await api.get(f"/v1/items/{item_id}", headers=headers)).json()
                return got if got["status"] == "completed" else None

            done = await wait_for(completed, timeout=30, what="the decision")
            assert done["decision"]["output"] == {"label": "qualified"}  # type: ignore[index]

        async def delivered() -> bool:
            return bool(receiver.received)

        await wait_for(delivered, timeout=30, what="the webhook")
        hdrs, body = receiver.received[0]
        event = Webhook(webhook_secret).verify(body, hdrs)
        assert event["data"]["id"] == item_id
        assert event["data"]["external_id"] == "lead-991"

        async with httpx.AsyncClient(base_url=feedback, timeout=10) as fb:

            async def recorded() -> bool:
                r = await fb.get("/v1/feedback/workflows", headers=headers)
                return any(
                    w["workflow"] == "lead-qualification" and w["decisions"] >= 1
                    for w in r.json()["workflows"]
                )

            await wait_for(recorded, timeout=30, what="feedback to record the decision")
    finally:
        receiver.close()
