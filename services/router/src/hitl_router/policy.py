"""Routing policy: calibrated confidence plus risk → review level, with the reason recorded.

A pure function of the workflow's routing settings, the AI result and the item: no I/O,
no clock, no randomness (the audit sample is drawn from a hash of the item id), so the
same item under the same policy version always gets the same decision.

Order of precedence:

1. The AI failed → manual.
2. Confidence against the thresholds → light / full / manual.
3. Text that looks like instructions to the AI never gets light review → full.
4. Risk rules: the strictest matching rule wins, and a rule only ever tightens (it never
   turns a manual item into a full one).
5. Only items no rule or flag touched: a batchable low-confidence decline → batch; a
   confidence at or above ``auto_approve.min_confidence`` (when enabled) → auto.
6. Audit sample: a share of auto and light items gets a full review anyway.
7. Shadow mode: everything at least full; the level the policy chose is kept as shadow.
"""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any

from hitl_shared.lifecycle import ReviewLevel
from hitl_shared.workflows.config import Routing

# Strictness: how much human attention a level asks for. Escalated is the strictest.
STRICTNESS: dict[str, int] = {
    ReviewLevel.AUTO.value: 0,
    ReviewLevel.BATCH.value: 1,
    ReviewLevel.LIGHT.value: 2,
    ReviewLevel.FULL.value: 3,
    ReviewLevel.MANUAL.value: 4,
    ReviewLevel.ESCALATED.value: 5,
}


def stricter(a: ReviewLevel, b: ReviewLevel) -> ReviewLevel:
    return a if STRICTNESS[a.value] >= STRICTNESS[b.value] else b


@dataclass(frozen=True)
class RoutingChoice:
    level: ReviewLevel
    rule: str
    reason: str
    shadow_level: ReviewLevel | None = None
    audited_level: ReviewLevel | None = None
    rules_matched: tuple[str, ...] = field(default_factory=tuple)

    @property
    def audit_sample(self) -> bool:
        return self.audited_level is not None


def sample_fraction(item_id: uuid.UUID | str | None, salt: str) -> float:
    """A number in [0, 1) fixed by the item id: deterministic, uniform, independent per salt."""
    if item_id is None:
        return 1.0
    digest = hashlib.sha256(f"{salt}:{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _label(output: dict[str, Any] | None) -> str | None:
    value = (output or {}).get("label")
    return value if isinstance(value, str) else None


def _decline(batch: Any, output: dict[str, Any]) -> str | None:
    """How a batchable decline reads ("'disqualified'", "score 1"), or None if it is not one."""
    label = _label(output)
    if label is not None and label in batch.labels:
        return repr(label)
    score = output.get("score")
    if (
        batch.max_score is not None
        and isinstance(score, int | float)
        and not isinstance(score, bool)
        and score <= batch.max_score
    ):
        return f"score {score:g} (at or below {batch.max_score:g})"
    return None


def _weakest_fields(output: dict[str, Any], limit: int = 3) -> str:
    """For extractions: the fields with the lowest confidence, which set the item's."""
    conf = output.get("field_confidence")
    if not isinstance(conf, dict) or not conf:
        return ""
    numeric = [(k, float(v)) for k, v in conf.items() if isinstance(v, int | float)]
    numeric.sort(key=lambda kv: kv[1])
    return ", ".join(f"{k} ({v:.0%})" for k, v in numeric[:limit])


def _threshold_choice(routing: Routing, confidence: float) -> RoutingChoice:
    t = routing.thresholds
    if confidence >= t.light:
        return RoutingChoice(
            ReviewLevel.LIGHT,
            "threshold.light",
            f"Confidence {confidence:.0%} is at or above the light-review threshold {t.light:.0%}.",
        )
    if confidence >= t.full:
        return RoutingChoice(
            ReviewLevel.FULL,
            "threshold.full",
            f"Confidence {confidence:.0%} is between the full-review threshold {t.full:.0%} "
            f"and the light-review threshold {t.light:.0%}.",
        )
    return RoutingChoice(
        ReviewLevel.MANUAL,
        "threshold.manual",
        f"Confidence {confidence:.0%} is below the full-review threshold {t.full:.0%}: "
        "do the task yourself; the AI output is only a hint.",
    )


def light_reason(routing: Routing, confidence: float) -> str:
    return _threshold_choice(routing, max(confidence, routing.thresholds.light)).reason


def choose_level(
    routing: Routing,
    confidence: float,
    flags: list[str],
    item_input: dict[str, Any] | None = None,
    output: dict[str, Any] | None = None,
    item_id: uuid.UUID | str | None = None,
) -> RoutingChoice:
    choice = _policy_choice(routing, confidence, flags, item_input or {}, output or {}, item_id)
    if not routing.shadow:
        return choice
    policy_level = choice.audited_level or choice.level
    level = stricter(ReviewLevel.FULL, policy_level)
    return RoutingChoice(
        level,
        "shadow",
        f"Shadow mode: every item gets at least a full review. The policy would have chosen "
        f"{policy_level.value} ({choice.reason})",
        shadow_level=policy_level,
        rules_matched=choice.rules_matched,
    )


def _policy_choice(
    routing: Routing,
    confidence: float,
    flags: list[str],
    item_input: dict[str, Any],
    output: dict[str, Any],
    item_id: uuid.UUID | str | None,
) -> RoutingChoice:
    if "ai_failed" in flags:
        return RoutingChoice(
            ReviewLevel.MANUAL, "ai_failed", "The AI failed on this item; a human does the task."
        )
    choice = _threshold_choice(routing, confidence)
    touched = False
    if choice.level == ReviewLevel.LIGHT and "possible_prompt_injection" in flags:
        # Untrusted text that talks to the model never gets a quick glance.
        touched = True
        choice = RoutingChoice(
            ReviewLevel.FULL,
            "flag.possible_prompt_injection",
            "The item's text looks like instructions to the AI, so it gets a full review "
            f"(confidence {confidence:.0%} alone would have allowed light review).",
        )
    elif "possible_prompt_injection" in flags:
        touched = True
    weakest = _weakest_fields(output)
    if weakest:
        choice = dataclasses.replace(choice, reason=f"{choice.reason} Least sure: {weakest}.")
    failed = [str(r.get("name")) for r in output.get("failed_rules") or [] if isinstance(r, dict)]
    if failed:
        # An extraction that breaks the workflow's own rules is checked field by field.
        touched = True
        if choice.level == ReviewLevel.LIGHT:
            choice = RoutingChoice(
                ReviewLevel.FULL,
                f"validation.{failed[0]}",
                f"The extracted fields break the rule {', '.join(failed)}, so they get a full "
                f"review (confidence {confidence:.0%} alone would have allowed light review).",
            )

    data = {"input": item_input, "output": output, "confidence": confidence}
    matched = [rule for rule in routing.rules if rule.matches(data)]
    names = tuple(rule.name for rule in matched)
    if matched:
        # The strictest rule wins; among equals, the first one written.
        top = max(matched, key=lambda r: STRICTNESS[r.level])
        top_level = ReviewLevel(top.level)
        if STRICTNESS[top_level.value] > STRICTNESS[choice.level.value]:
            return RoutingChoice(
                top_level,
                f"rule.{top.name}",
                f"{top.reason} (risk rule {top.name}: "
                f"confidence {confidence:.0%} alone would have given {choice.level.value}).",
                rules_matched=names,
            )
        return RoutingChoice(
            choice.level,
            choice.rule,
            f"{choice.reason} Risk rule {', '.join(names)} asked for {top.level}; "
            "the confidence already requires as much.",
            rules_matched=names,
        )
    if touched:
        return choice

    batch = routing.batch
    decline = _decline(batch, output) if batch is not None else None
    if (
        batch is not None
        and decline is not None
        and confidence < batch.below_confidence
        and choice.level != ReviewLevel.LIGHT
    ):
        return RoutingChoice(
            ReviewLevel.BATCH,
            "batch",
            f"A low-confidence {decline} ({confidence:.0%}, below {batch.below_confidence:.0%}): "
            "approved with similar items in a batch by a human.",
        )
    auto = routing.auto_approve
    if auto.enabled and confidence >= auto.min_confidence:
        choice = RoutingChoice(
            ReviewLevel.AUTO,
            "auto_approve",
            f"Confidence {confidence:.0%} is at or above the auto-approval threshold "
            f"{auto.min_confidence:.0%} and no risk rule applies: approved without a human.",
        )

    rate = {ReviewLevel.AUTO: routing.audit.auto, ReviewLevel.LIGHT: routing.audit.light}.get(
        choice.level, 0.0
    )
    if rate > 0 and sample_fraction(item_id, "audit") < rate:
        return RoutingChoice(
            ReviewLevel.FULL,
            "audit_sample",
            f"Random audit sample ({rate:.0%} of {choice.level.value} items) gets a full review, "
            f"to measure the {choice.level.value} band's real error rate. {choice.reason}",
            audited_level=choice.level,
        )
    return choice


def canary_due(routing: Routing, item_id: uuid.UUID | str) -> bool:
    rate = routing.canaries.rate
    return rate > 0 and sample_fraction(item_id, "canary") < rate
