"""API-key authentication for integrations, cached briefly so auth costs no query per request."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends, Request

from hitl_shared.db.models import ApiKey
from hitl_shared.db.types import utcnow
from hitl_shared.http import ApiError, RuntimeDep
from hitl_shared.runtime import Runtime
from hitl_shared.security import hash_api_key

CACHE_SECONDS = 10.0
TOUCH_EVERY_SECONDS = 60.0


@dataclass
class ApiClient:
    key_id: uuid.UUID
    name: str
    workflows: list[str] | None

    def may_use(self, workflow: str) -> bool:
        return self.workflows is None or workflow in self.workflows


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


async def require_api_key(request: Request, runtime: RuntimeDep) -> ApiClient:
    return await authenticate(runtime, request.headers.get("authorization", ""))


async def authenticate(runtime: Runtime, header: str) -> ApiClient:
    """The API client an `Authorization: Bearer <key>` header names (cached for a few
    seconds), or 401 with what to fix."""
    scheme, _, token = header.partition(" ")
    if not header:
        raise _unauthorized("Send your API key as `Authorization: Bearer <key>`.")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("The Authorization header must be `Bearer <key>`.")
    key_hash = hash_api_key(token.strip())
    cache: dict[str, tuple[float, ApiClient | None, float]] = runtime.state.setdefault(
        "api_keys", {}
    )
    now = time.monotonic()
    hit = cache.get(key_hash)
    if hit is None or now - hit[0] > CACHE_SECONDS:
        async with runtime.sessionmaker() as session:
            row = (
                await session.execute(sa.select(ApiKey).where(ApiKey.key_hash == key_hash))
            ).scalar_one_or_none()
            client = None
            touched = hit[2] if hit else 0.0
            if row is not None and row.revoked_at is None:
                client = ApiClient(row.id, row.name, row.workflows)
                if now - touched > TOUCH_EVERY_SECONDS:
                    row.last_used_at = utcnow()
                    await session.commit()
                    touched = now
        if len(cache) > 10_000:
            cache.clear()
        cache[key_hash] = (now, client, touched)
        hit = cache[key_hash]
    if hit[1] is None:
        raise _unauthorized("This API key is not valid or has been revoked.")
    return hit[1]


ClientDep = Annotated[ApiClient, Depends(require_api_key)]


def forget_api_key(runtime: Runtime, key_hash: str) -> None:
    """Drop a key from this process's cache, so a revocation applies here at once (other
    processes notice within CACHE_SECONDS)."""
    cache = runtime.state.get("api_keys")
    if isinstance(cache, dict):
        cache.pop(key_hash, None)
