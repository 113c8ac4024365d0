"""An OpenAI-compatible chat completions server on loopback, scripted per test.

It speaks the real wire format over real HTTP, so the official `openai` client, its
retries and timeouts are exercised for real.
"""

from __future__ import annotations

import asyncio
import json
import math
import socket
import threading
import time
from collections import deque
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def completion(
    contents: list[str],
    label_logprob: float | None = None,
    refusal: str | None = None,
) -> dict[str, Any]:
    """A chat.completion body; with label_logprob, tokens split so the label has that logprob."""
    choices = []
    for i, content in enumerate(contents):
        logprobs = None
        if label_logprob is not None:
            data = json.loads(content)
            label = data["label"]
            head = content[: content.index(label)]
            tail = content[content.index(label) + len(label) :]
            half = max(1, len(label) // 2)
            tokens = [
                (head, 0.0),
                (label[:half], label_logprob / 2),
                (label[half:], label_logprob / 2),
                (tail, 0.0),
            ]
            logprobs = {
                "content": [
                    {"token": t, "logprob": lp, "bytes": list(t.encode()), "top_logprobs": []}
                    for t, lp in tokens
                    if t
                ],
                "refusal": None,
            }
        choices.append(
            {
                "index": i,
                "finish_reason": "stop",
                "logprobs": logprobs,
                "message": {
                    "role": "assistant",
                    "content": None if refusal else content,
                    "refusal": refusal,
                },
            }
        )
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "fake-model",
        "choices": choices,
        "usage": {"prompt_tokens": 100, "completion_tokens": 7 * len(contents), "total_tokens": 0},
    }


class FakeOpenAI:
    def __init__(self) -> None:
        self.script: deque[Any] = deque()
        self.requests: list[dict[str, Any]] = []
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> JSONResponse:
            body = await request.json()
            self.requests.append(body)
            step = self.script.popleft() if self.script else ("ok", {"label": "billing"})
            kind, value = step
            if kind == "status":
                return JSONResponse(
                    {"error": {"message": "slow down", "type": "rate_limit"}},
                    status_code=value,
                    headers={"retry-after-ms": "10"},
                )
            if kind == "sleep":
                await asyncio.sleep(value)
                return JSONResponse(completion([json.dumps({"label": "billing"})]))
            if kind == "raw":
                return JSONResponse(completion([value]))
            if kind == "refusal":
                return JSONResponse(completion(["{}"], refusal=value))
            if kind == "logprob":
                label, lp = value
                return JSONResponse(completion([json.dumps({"label": label})], label_logprob=lp))
            if kind == "samples":  # answer with these labels, ignoring or honouring n
                return JSONResponse(completion([json.dumps({"label": lab}) for lab in value]))
            return JSONResponse(completion([json.dumps(value)]))

        self.port = _port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


LOG_HALF = math.log(0.5)
