"""What the AI reads from an item, and checks on it as untrusted content."""

from __future__ import annotations

import re
from typing import Any

from hitl_shared.workflows.config import WorkflowConfig

# Phrases that address the model rather than describe the customer's problem.
_INJECTION = re.compile(
    r"(ignore|disregard|forget)\s+(all\s+|any\s+|the\s+|your\s+|previous\s+|prior\s+|above\s+)*"
    r"(instructions|rules|prompts?|guidelines)"
    r"|you\s+are\s+now\s+(a|an|in)\b"
    r"|(system|developer)\s+prompt"
    r"|\bact\s+as\s+(a|an|the)\b.*\b(admin|administrator|system)\b"
    r"|(approve|mark)\s+(this|it)\s+(as\s+)?(approved|valid|urgent|safe)\b"
    r"|</?(system|assistant|instructions?)>",
    re.IGNORECASE,
)


def item_text(config: WorkflowConfig, data: dict[str, Any]) -> str:
    parts = []
    for name in config.text_fields:
        value = data.get(name)
        if value is None:
            continue
        parts.append(value if isinstance(value, str) else str(value))
    return "\n".join(parts)


def safety_flags(text: str) -> list[str]:
    return ["possible_prompt_injection"] if _INJECTION.search(text) else []
