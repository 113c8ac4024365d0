"""The cache behind API keys and workflows: one load per key, however many requests arrive."""

from __future__ import annotations

import asyncio

import pytest

from hitl_shared.cache import RefreshingCache


class Loader:
    def __init__(self, delay: float = 0.02) -> None:
        self.calls = 0
        self.delay = delay
        self.fail = False
        self.gate: asyncio.Event | None = None

    async def __call__(self) -> int:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("database unreachable")
        return self.calls


async def test_a_burst_of_requests_for_a_missing_entry_loads_it_once() -> None:
    cache: RefreshingCache[str, int] = RefreshingCache(ttl_seconds=60)
    load = Loader()
    values = await asyncio.gather(*(cache.get("k", load) for _ in range(50)))
    assert values == [1] * 50
    assert load.calls == 1


async def test_a_stale_entry_is_served_at_once_while_one_refresh_runs() -> None:
    cache: RefreshingCache[str, int] = RefreshingCache(ttl_seconds=0.05)
    load = Loader()
    assert await cache.get("k", load) == 1
    await asyncio.sleep(0.06)
    load.gate = asyncio.Event()  # the refresh hangs until released
    values = await asyncio.wait_for(
        asyncio.gather(*(cache.get("k", load) for _ in range(50))), timeout=1
    )
    assert values == [1] * 50  # nobody waited for the refresh
    assert load.calls == 2  # ... and the burst started exactly one
    load.gate.set()
    await asyncio.sleep(0.05)
    assert await cache.get("k", load) == 2
    await cache.close()


async def test_a_failed_load_reaches_its_waiters_and_the_next_request_retries() -> None:
    cache: RefreshingCache[str, int] = RefreshingCache(ttl_seconds=60)
    load = Loader()
    load.fail = True
    results = await asyncio.gather(
        *(cache.get("k", load) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results) and load.calls == 1
    load.fail = False
    assert await cache.get("k", load) == 2


async def test_a_failed_refresh_keeps_the_last_value(caplog: pytest.LogCaptureFixture) -> None:
    cache: RefreshingCache[str, int] = RefreshingCache(ttl_seconds=0.01)
    load = Loader(delay=0)
    assert await cache.get("k", load) == 1
    await asyncio.sleep(0.02)
    load.fail = True
    assert await cache.get("k", load) == 1
    await asyncio.sleep(0.01)
    assert await cache.get("k", load) == 1
    assert "serving the last value" in caplog.text


async def test_an_entry_forgotten_during_its_load_is_not_put_back() -> None:
    """A revoked API key must not come back from a lookup that started before the revocation."""
    cache: RefreshingCache[str, int] = RefreshingCache(ttl_seconds=60)
    load = Loader()
    first = asyncio.create_task(cache.get("k", load))
    await asyncio.sleep(0.005)
    cache.forget("k")
    assert await first == 1  # the request already waiting gets its answer
    assert await cache.get("k", load) == 2  # but the next one looks again


async def test_a_request_that_goes_away_does_not_cancel_the_load_for_the_others() -> None:
    cache: RefreshingCache[str, int] = RefreshingCache(ttl_seconds=60)
    load = Loader(delay=0.05)
    leaving = asyncio.create_task(cache.get("k", load))
    staying = asyncio.create_task(cache.get("k", load))
    await asyncio.sleep(0.01)
    leaving.cancel()
    assert await staying == 1 and load.calls == 1
