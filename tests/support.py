"""Helpers shared by the tests: real service checks, polling, and a scripted reviewer."""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"
PG_ADMIN_URL = os.environ.get("HITL_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("HITL_TEST_REDIS", "redis://127.0.0.1:6379/0")
API_KEY = "hitl_test_key_0123456789abcdefghijklmnopqrstuvwxyz"
ADMIN_PASSWORD = "admin-password-for-tests"


def unavailable(what: str) -> None:
    """In CI a missing real service is a failure, never a silent skip."""
    msg = f"{what} is not reachable"
    if IN_CI:
        pytest.fail(msg + " (CI=true: tests that need it must not be skipped)")
    pytest.skip(msg)


async def wait_for(
    check: Callable[[], Awaitable[Any]],
    timeout: float = 20.0,
    interval: float = 0.1,
    what: str = "",
) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or check}; last={last!r}")


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class ScriptedReviewer:
    """Drives the review UI over plain HTTP forms, the way a browser without JS would."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.csrf = ""

    async def sign_in(self, username: str, password: str) -> None:
        r = await self.client.post("/login", data={"username": username, "password": password})
        assert r.status_code == 303, r.text
        page = await self.client.get("/")
        assert page.status_code == 200
        m = CSRF.search(page.text)
        assert m, "no CSRF token on the inbox page"
        self.csrf = m.group(1)

    async def start(self, workflow: str = "", level: str = "") -> str | None:
        r = await self.client.post(
            "/queue/start", data={"csrf_token": self.csrf, "workflow": workflow, "level": level}
        )
        assert r.status_code == 303, r.text
        loc = r.headers["location"]
        return loc.split("/tasks/")[1].split("?")[0] if "/tasks/" in loc else None

    async def decide(self, task_id: str, **form: str) -> httpx.Response:
        data = {"csrf_token": self.csrf, "active_ms": "4200", **form}
        return await self.client.post(f"/tasks/{task_id}/decide", data=data)


class WebhookReceiver:
    """A real HTTP server on loopback that records what it receives; can fail the first N calls."""

    def __init__(self, fail_first: int = 0) -> None:
        import http.server
        import threading

        self.received: list[tuple[dict[str, str], bytes]] = []
        self.fail_first = fail_first
        self.calls = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                outer.calls += 1
                if outer.calls <= outer.fail_first:
                    self.send_response(503)
                    self.end_headers()
                    return
                outer.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/hitl"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
