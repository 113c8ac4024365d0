"""Append-only audit trail."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hitl_shared.db.models import AuditEvent


async def record(
    session: AsyncSession,
    actor: str,
    action: str,
    item_id: uuid.UUID | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    session.add(AuditEvent(actor=actor, action=action, item_id=item_id, details=details or {}))
