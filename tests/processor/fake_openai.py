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
    token_logprobs: list[Any] | None = None,
) -> dict[str, Any]:
    """A chat.completion body; with label_logprob, tokens split so the label has that logprob;
    with token_logprobs, exactly those tokens (see `tokenised`)."""
    choices = []
    for i, content in enumerate(contents):
        logprobs = None
        if token_logprobs is not None:
            logprobs = {"content": token_logprobs, "refusal": None}
        elif label_logprob is not None:
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


Alternatives = list[tuple[str, float]]
ValueTokens = dict[str, list[tuple[str, float] | tuple[str, float, Alternatives]]]


def tokenised(data: dict[str, Any], value_tokens: ValueTokens) -> tuple[str, list[Any]]:
    """The reply (data as JSON, non-ASCII unescaped) cut into tokens: each value named in
    ``value_tokens`` is spelled by the tokens given for it (text, logprob[, alternatives]);
    a string value's quotes belong to the surrounding tokens, as real tokenizers tend to
    merge them there. Everything else is spelled by tokens with log-probability 0."""
    content = json.dumps(data, ensure_ascii=False)
    tokens: list[tuple[str, float, Alternatives]] = []
    pos = 0
    for key in data:
        if key not in value_tokens:
            continue
        value = data[key]
        text = json.dumps(value, ensure_ascii=False)
        text = text[1:-1] if isinstance(value, str) else text
        marker = json.dumps(key) + ": " + ('"' if isinstance(value, str) else "")
        start = content.index(marker, pos) + len(marker)
        parts = value_tokens[key]
        assert "".join(part[0] for part in parts) == text, (parts, text)
        tokens.append((content[pos:start], 0.0, []))
        for token, logprob, *top in parts:
            tokens.append((token, logprob, list(top[0]) if top else []))
        pos = start + len(text)
    tokens.append((content[pos:], 0.0, []))
    logprobs = [
        {
            "token": t,
            "logprob": lp,
            "bytes": list(t.encode()),
            "top_logprobs": [
                {"token": a, "logprob": alp, "bytes": list(a.encode())} for a, alp in top
            ],
        }
        for t, lp, top in tokens
        if t
    ]
    return content, logprobs


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
            if kind == "replies":  # one choice per reply (an object, or raw text as it is)
                return JSONResponse(
                    completion([v if isinstance(v, str) else json.dumps(v) for v in value])
                )
            if kind == "tokens":  # (reply object, {key: value tokens}): see `tokenised`
                content, tokens = tokenised(*value)
                return JSONResponse(completion([content], token_logprobs=tokens))
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
