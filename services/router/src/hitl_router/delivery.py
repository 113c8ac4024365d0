"""Webhook delivery from the outbox, signed per Standard Webhooks, retried with backoff."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import timedelta

import httpx
import sqlalchemy as sa

from hitl_shared.db.models import Delivery
from hitl_shared.db.types import utcnow
from hitl_shared.jobs import DELIVER_WEBHOOK
from hitl_shared.metrics import WEBHOOK_DELIVERIES
from hitl_shared.runtime import Runtime
from hitl_shared.webhooks import headers as signed_headers
from hitl_shared.work import Work

log = logging.getLogger(__name__)

# Seconds to wait after attempt n (1-based); the last value repeats.
BACKOFF = [5, 15, 60, 300, 900, 1800, 3600, 7200, 14400]


def backoff_after(attempt: int) -> float:
    return float(BACKOFF[min(attempt, len(BACKOFF)) - 1])


async def deliver_webhook(work: Work, runtime: Runtime, delivery_id: str) -> None:
    session = work.session
    delivery = (
        await session.execute(
            sa.select(Delivery)
            .where(Delivery.id == uuid.UUID(delivery_id))
            .with_for_update(skip_locked=True)
        )
    ).scalar_one_or_none()
    # Locked by another worker, done, or not yet due: nothing to do now.
    if delivery is None or delivery.status != "pending" or delivery.next_attempt_at > utcnow():
        return
    body = json.dumps(delivery.payload, separators=(",", ":")).encode()
    now = utcnow()
    hdrs = signed_headers(
        runtime.settings.webhook_secret, f"msg_{delivery.id.hex}", int(now.timestamp()), body
    )
    hdrs["user-agent"] = "hitl-webhooks/1.0"
    delivery.attempts += 1
    error: str | None = None
    status: int | None = None
    try:
        async with httpx.AsyncClient(timeout=runtime.settings.webhook_timeout_seconds) as client:
            response = await client.post(delivery.url, content=body, headers=hdrs)
        status = response.status_code
        if not 200 <= status < 300:
            error = f"the receiver answered HTTP {status}"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}" or type(exc).__name__
    delivery.last_status_code = status
    if error is None:
        delivery.status = "delivered"
        delivery.delivered_at = utcnow()
        delivery.last_error = None
        WEBHOOK_DELIVERIES.labels("delivered").inc()
        return
    delivery.last_error = error[:2000]
    if delivery.attempts >= runtime.settings.webhook_max_attempts:
        delivery.status = "failed"
        WEBHOOK_DELIVERIES.labels("failed").inc()
        log.warning(
            "webhook %s failed for good after %d attempts: %s",
            delivery.id,
            delivery.attempts,
            error,
        )
        return
    delivery.next_attempt_at = utcnow() + timedelta(seconds=backoff_after(delivery.attempts))
    WEBHOOK_DELIVERIES.labels("retry").inc()


async def sweep_due_deliveries(work: Work, runtime: Runtime) -> int:
    ids = (
        await work.session.scalars(
            sa.select(Delivery.id)
            .where(Delivery.status == "pending", Delivery.next_attempt_at <= utcnow())
            .order_by(Delivery.next_attempt_at)
            .limit(500)
        )
    ).all()
    for delivery_id in ids:
        work.enqueue(DELIVER_WEBHOOK, delivery_id)
    return len(ids)
