"""Routing policy: calibrated confidence plus flags → review level, with the reason recorded."""

from __future__ import annotations

from dataclasses import dataclass

from hitl_shared.lifecycle import ReviewLevel
from hitl_shared.workflows.config import Routing


@dataclass(frozen=True)
class RoutingChoice:
    level: ReviewLevel
    rule: str
    reason: str


def choose_level(routing: Routing, confidence: float, flags: list[str]) -> RoutingChoice:
    t = routing.thresholds
    if "ai_failed" in flags:
        return RoutingChoice(
            ReviewLevel.MANUAL, "ai_failed", "The AI failed on this item; a human does the task."
        )
    if confidence >= t.light:
        level, rule = ReviewLevel.LIGHT, "threshold.light"
        reason = (
            f"Confidence {confidence:.0%} is at or above the light-review threshold {t.light:.0%}."
        )
    elif confidence >= t.full:
        level, rule = ReviewLevel.FULL, "threshold.full"
        reason = (
            f"Confidence {confidence:.0%} is between the full-review threshold {t.full:.0%} "
            f"and the light-review threshold {t.light:.0%}."
        )
    else:
        level, rule = ReviewLevel.MANUAL, "threshold.manual"
        reason = (
            f"Confidence {confidence:.0%} is below the full-review threshold {t.full:.0%}: "
            "do the task yourself; the AI output is only a hint."
        )
    if level == ReviewLevel.LIGHT and "possible_prompt_injection" in flags:
        # Untrusted text that talks to the model never gets a quick glance.
        return RoutingChoice(
            ReviewLevel.FULL,
            "flag.possible_prompt_injection",
            "The item's text looks like instructions to the AI, so it gets a full review "
            f"(confidence {confidence:.0%} alone would have allowed light review).",
        )
    return RoutingChoice(level, rule, reason)
