"""What every provider returns, whatever model or endpoint is behind it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from hitl_shared.runtime import Runtime
from hitl_shared.work import Work
from hitl_shared.workflows.config import WorkflowConfig


@dataclass
class AIOutcome:
    output: dict[str, Any]
    raw_confidence: float
    confidence: float
    provider: str
    model: str
    prompt_version: str = ""
    latency_ms: float = 0.0
    flags: list[str] = field(default_factory=list)
    error: str | None = None
    # Tokens, calls and cost for providers that charge per token.
    usage: dict[str, Any] = field(default_factory=dict)


class Provider(Protocol):
    name: str

    async def run(
        self, work: Work, runtime: Runtime, workflow_id: Any, config: WorkflowConfig, text: str
    ) -> AIOutcome: ...
