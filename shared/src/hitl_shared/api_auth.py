"""API-key authentication for integrations, cached briefly so auth costs no query per request."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends, Request

from hitl_shared.cache import RefreshingCache
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
    client = await _api_keys(runtime).get(key_hash, lambda: _load_client(runtime, key_hash))
    if client is None:
        raise _unauthorized("This API key is not valid or has been revoked.")
    return client


def _api_keys(runtime: Runtime) -> RefreshingCache[str, ApiClient | None]:
    return runtime.cache("api_keys", CACHE_SECONDS)


async def _load_client(runtime: Runtime, key_hash: str) -> ApiClient | None:
    """The key's client (None if unknown or revoked); records "last used" once a minute."""
    touched: dict[str, float] = runtime.state.setdefault("api_keys.touched", {})
    async with runtime.sessionmaker() as session:
        row = (
            await session.execute(sa.select(ApiKey).where(ApiKey.key_hash == key_hash))
        ).scalar_one_or_none()
        if row is None or row.revoked_at is not None:
            return None
        now = time.monotonic()
        if now - touched.get(key_hash, 0.0) > TOUCH_EVERY_SECONDS:
            row.last_used_at = utcnow()
            await session.commit()
            if len(touched) > 10_000:
                touched.clear()
            touched[key_hash] = now
        return ApiClient(row.id, row.name, row.workflows)


ClientDep = Annotated[ApiClient, Depends(require_api_key)]


def forget_api_key(runtime: Runtime, key_hash: str) -> None:
    """Drop a key from this process's cache, so a revocation applies here at once (other
    processes notice within CACHE_SECONDS)."""
    _api_keys(runtime).forget(key_hash)
