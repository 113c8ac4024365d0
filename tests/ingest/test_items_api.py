"""The public ingest API on both databases: the contract integrations depend on."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from tests.conftest import System

TICKET = {"subject": "Refund", "body": "I was charged twice this month, please refund one payment."}


async def test_item_is_accepted_and_travels_to_review(system: System) -> None:
    r = await system.client.post(
        "/v1/items",
        json={"workflow": "support-triage", "input": TICKET, "external_id": "T-1", "priority": 5},
        headers=system.api_headers,
    )
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "pending"
    assert body["workflow"] == "support-triage"
    assert body["external_id"] == "T-1"
    assert r.headers["location"] == f"/v1/items/{body['id']}"
    await system.settle()
    got = await system.client.get(f"/v1/items/{body['id']}", headers=system.api_headers)
    assert got.status_code == 200
    item = got.json()
    assert item["status"] == "in_review"
    assert item["ai"]["provider"] == "local"
    assert item["ai"]["output"]["label"] in {"billing", "technical", "account", "shipping"}
    assert 0.0 <= item["ai"]["confidence"] <= 1.0
    assert item["review"]["level"] in {"light", "full", "manual"}
    assert item["review"]["reason"]
    assert item["decision"]["outcome"] is None


async def test_missing_and_wrong_api_keys_get_401(system: System) -> None:
    payload = {"workflow": "support-triage", "input": TICKET}
    r = await system.client.post("/v1/items", json=payload)
    assert r.status_code == 401
    assert "Authorization: Bearer" in r.json()["message"]
    r = await system.client.post(
        "/v1/items", json=payload, headers={"Authorization": "Bearer nope"}
    )
    assert r.status_code == 401
    assert r.json()["error"] == "unauthorized"
    r = await system.client.post("/v1/items", json=payload, headers={"Authorization": "Basic abc"})
    assert r.status_code == 401


async def test_unknown_workflow_and_item_get_404(system: System) -> None:
    r = await system.client.post(
        "/v1/items", json={"workflow": "nope", "input": TICKET}, headers=system.api_headers
    )
    assert r.status_code == 404
    assert "GET /v1/workflows" in r.json()["message"]
    for item_id in (str(uuid.uuid4()), "not-a-uuid"):
        r = await system.client.get(f"/v1/items/{item_id}", headers=system.api_headers)
        assert r.status_code == 404
        assert r.json()["error"] == "item_not_found"


async def test_invalid_bodies_get_422_with_the_field_path(system: System) -> None:
    h = system.api_headers
    r = await system.client.post("/v1/items", json={"input": TICKET}, headers=h)
    assert r.status_code == 422
    assert r.json()["fields"][0]["path"] == "workflow"
    r = await system.client.post(
        "/v1/items", json={"workflow": "support-triage", "input": {"subject": "x"}}, headers=h
    )
    assert r.status_code == 422
    assert r.json()["error"] == "invalid_input"
    assert "'body' is a required property" in r.json()["message"]
    r = await system.client.post(
        "/v1/items",
        json={"workflow": "support-triage", "input": {"body": 42}},
        headers=h,
    )
    assert r.status_code == 422
    assert r.json()["fields"][0]["path"] == "input.body"
    r = await system.client.post(
        "/v1/items",
        json={"workflow": "support-triage", "input": TICKET, "priority": 1000},
        headers=h,
    )
    assert r.status_code == 422
    assert r.json()["fields"][0]["path"] == "priority"
    r = await system.client.post(
        "/v1/items",
        json={"workflow": "support-triage", "input": TICKET, "callback_url": "ftp://x"},
        headers=h,
    )
    assert r.status_code == 422
    assert r.json()["fields"][0]["path"] == "callback_url"
    r = await system.client.post(
        "/v1/items", content=b"{not json", headers={**h, "content-type": "application/json"}
    )
    assert r.status_code == 422
    assert "not valid JSON" in r.json()["message"]


async def test_body_over_the_limit_gets_413(system: System) -> None:
    big = {"workflow": "support-triage", "input": {"body": "x" * (1024 * 1024 + 10)}}
    r = await system.client.post("/v1/items", json=big, headers=system.api_headers)
    assert r.status_code == 413
    assert "HITL_MAX_BODY_BYTES" in r.json()["message"]


async def test_idempotency_key_replays_and_refuses_a_different_body(system: System) -> None:
    h = {**system.api_headers, "Idempotency-Key": "order-77"}
    payload = {"workflow": "support-triage", "input": TICKET}
    first = await system.client.post("/v1/items", json=payload, headers=h)
    again = await system.client.post("/v1/items", json=payload, headers=h)
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    other = await system.client.post(
        "/v1/items", json={**payload, "input": {"body": "something else"}}, headers=h
    )
    assert other.status_code == 409
    assert other.json()["error"] == "idempotency_key_reused"


async def test_workflows_are_discoverable(system: System) -> None:
    r = await system.client.get("/v1/workflows", headers=system.api_headers)
    assert r.status_code == 200
    by_name = {w["name"]: w for w in r.json()}
    assert {"support-triage", "lead-qualification"} <= set(by_name)
    triage = by_name["support-triage"]
    assert triage["task_type"] == "classify"
    assert "body" in triage["input_schema"]["required"]
    assert {lab["name"] for lab in triage["labels"]} == {
        "billing",
        "technical",
        "account",
        "shipping",
    }
    assert triage["multi_label"] is False
    assert by_name["ticket-tags"]["multi_label"] is True


async def test_cancel_an_item(system: System) -> None:
    r = await system.client.post(
        "/v1/items",
        json={"workflow": "support-triage", "input": TICKET},
        headers=system.api_headers,
    )
    item_id = r.json()["id"]
    await system.settle()
    c = await system.client.post(f"/v1/items/{item_id}/cancel", headers=system.api_headers)
    assert c.status_code == 200
    assert c.json()["status"] == "cancelled"


async def test_health_readiness_and_metrics(system: System) -> None:
    assert (await system.client.get("/healthz")).json() == {"status": "ok"}
    ready = await system.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "database": "ok", "queue": "ok"}
    metrics = await system.client.get("/metrics")
    assert "hitl_items_ingested_total" in metrics.text


async def test_the_intake_route_answers_as_a_framework_route_would(system: System) -> None:
    """POST /v1/items is served ahead of the framework: same headers, limits, counters and
    documentation as any other route."""
    from hitl_shared.metrics import INGEST_REJECTED

    def rejected(status: str) -> float:
        return INGEST_REJECTED.labels(status)._value.get()

    payload = {"workflow": "support-triage", "input": TICKET}
    r = await system.client.post("/v1/items", json=payload, headers=system.api_headers)
    assert r.status_code == 202 and r.headers["content-type"] == "application/json"
    assert int(r.headers["content-length"]) == len(r.content)
    before = rejected("401")
    r = await system.client.post("/v1/items", json=payload)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert r.headers["content-type"] == "application/json"
    assert rejected("401") == before + 1

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit counts bytes
        yield b'{"workflow": "support-triage", "input": {"body": "'
        for _ in range(17):
            yield b"x" * 65536
        yield b'"}}'

    r = await system.client.post("/v1/items", content=chunks(), headers=system.api_headers)
    assert r.status_code == 413 and "HITL_MAX_BODY_BYTES" in r.json()["message"]
    # Other methods on the path still get the framework's answer.
    assert (await system.client.get("/v1/items", headers=system.api_headers)).status_code == 405
    doc = (await system.client.get("/openapi.json")).json()
    assert "post" in doc["paths"]["/v1/items"]
