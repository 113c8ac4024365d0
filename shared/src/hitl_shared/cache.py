"""A small per-process cache for hot lookups (API keys, workflows) that never stampedes.

- A fresh entry is returned as is.
- A stale entry is still returned at once while one background load refreshes it: a request
  never waits for a refresh.
- A missing entry is loaded once; concurrent requests for the same key await that one load.

Without this, every request in flight when an entry expired ran the same query at the same
moment (measured on the ingest API: 64 connections, a stall of 100-250 ms every few seconds
as dozens of identical lookups and API-key "last used" updates queued on one row)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class RefreshingCache(Generic[K, V]):
    def __init__(self, ttl_seconds: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._entries: dict[K, tuple[float, V]] = {}
        self._loading: dict[K, asyncio.Future[V]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._epoch = 0  # moves on every forget/clear

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        entry = self._entries.get(key)
        if entry is None:
            return await asyncio.shield(self._start(key, load, refresh=False))
        if time.monotonic() - entry[0] >= self.ttl:
            self._start(key, load, refresh=True)
        return entry[1]

    def forget(self, key: K) -> None:
        """Drop an entry; a load already running does not put it back."""
        self._entries.pop(key, None)
        self._epoch += 1

    def clear(self) -> None:
        self._entries.clear()
        self._epoch += 1

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _start(self, key: K, load: Callable[[], Awaitable[V]], refresh: bool) -> asyncio.Future[V]:
        """The load of this key in progress, or a new one: registered before anything awaits,
        so everyone who arrives meanwhile shares it. It runs in a task of its own, so a request
        that goes away does not cancel it for the others."""
        future = self._loading.get(key)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._loading[key] = future
            task = asyncio.create_task(self._run(key, load, future, refresh))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return future

    async def _run(
        self, key: K, load: Callable[[], Awaitable[V]], future: asyncio.Future[V], refresh: bool
    ) -> None:
        epoch = self._epoch
        try:
            value = await load()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            if refresh:
                # The stale entry keeps serving; the next request after the TTL tries again.
                log.warning(
                    "refreshing a cached entry failed; serving the last value", exc_info=True
                )
            future.set_exception(exc)
            future.exception()  # marked as seen: waiters (if any) get it raised
        else:
            if epoch == self._epoch:
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
                self._entries[key] = (time.monotonic(), value)
            future.set_result(value)
        finally:
            self._loading.pop(key, None)
