"""The queue interface. A message is only a wake-up call: losing or repeating one is harmless."""

from __future__ import annotations

from typing import Protocol


class Queue(Protocol):
    async def enqueue(self, job: str, arg: str) -> None: ...

    async def enqueue_many(self, jobs: list[tuple[str, str]]) -> None: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...
