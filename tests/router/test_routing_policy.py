"""The routing policy as a table: confidence x risk rules x settings → level, rule and reason."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from hitl_router.policy import STRICTNESS, canary_due, choose_level, sample_fraction
from hitl_shared.workflows.config import (
    Routing,
    WorkflowFileError,
    load_workflow_file,
)

RULES: list[dict[str, Any]] = [
    {
        "name": "vip",
        "when": 'input.customer_tier == "vip"',
        "level": "full",
        "reason": "VIP customers get a full review.",
    },
    {
        "name": "big-invoice",
        "field": "input.amount",
        "op": "gt",
        "value": 10000,
        "level": "manual",
        "reason": "Large amounts are checked by hand.",
    },
    {
        "name": "legal",
        "when": 'output.label == "legal" or input.body contains "lawyer"',
        "level": "escalated",
        "reason": "Legal matters go to a lead.",
    },
]


def routing(**settings: Any) -> Routing:
    return Routing.model_validate({"rules": RULES, **settings})


ID = uuid.UUID("00000000-0000-0000-0000-000000000001")
# Ids whose audit draw falls in / out of a 10% sample (found once, fixed here).
IN_SAMPLE = next(
    uuid.UUID(int=i) for i in range(1000) if sample_fraction(uuid.UUID(int=i), "audit") < 0.1
)
OUT_OF_SAMPLE = next(
    uuid.UUID(int=i) for i in range(1000) if sample_fraction(uuid.UUID(int=i), "audit") > 0.5
)
AUTO = {"auto_approve": {"enabled": True, "min_confidence": 0.95}, "audit": {"auto": 0.1}}
BATCH = {"batch": {"labels": ["disqualified"], "below_confidence": 0.6}}


@pytest.mark.parametrize(
    ("confidence", "inp", "label", "settings", "item_id", "level", "rule", "reason_has"),
    [
        # Confidence alone: the seed's thresholds.
        (0.95, {}, "billing", {}, OUT_OF_SAMPLE, "light", "threshold.light", "85%"),
        (0.70, {}, "billing", {}, OUT_OF_SAMPLE, "full", "threshold.full", "between"),
        (0.30, {}, "billing", {}, OUT_OF_SAMPLE, "manual", "threshold.manual", "hint"),
        # A rule overrides high confidence; its reason is recorded with what it overrode.
        (0.99, {"customer_tier": "vip"}, "billing", {}, ID, "full", "rule.vip", "VIP"),
        (0.99, {"amount": 20000}, "billing", {}, ID, "manual", "rule.big-invoice", "Large"),
        (0.99, {}, "legal", {}, ID, "escalated", "rule.legal", "lead"),
        # Several rules match: the strictest wins.
        (
            0.99,
            {"customer_tier": "vip", "amount": 20000, "body": "my lawyer"},
            "billing",
            {},
            ID,
            "escalated",
            "rule.legal",
            "would have given light",
        ),
        (
            0.99,
            {"customer_tier": "vip", "amount": 20000},
            "x",
            {},
            ID,
            "manual",
            "rule.big-invoice",
            "",
        ),
        # A rule never loosens: low confidence stays manual, the rule is noted.
        (0.30, {"customer_tier": "vip"}, "billing", {}, ID, "manual", "threshold.manual", "vip"),
        # Values of another kind never match (no error).
        (0.99, {"amount": "20000"}, "billing", {}, OUT_OF_SAMPLE, "light", "threshold.light", ""),
        # Auto approval: only where enabled, only above its threshold, only untouched items.
        (0.97, {}, "billing", AUTO, OUT_OF_SAMPLE, "auto", "auto_approve", "without a human"),
        (0.94, {}, "billing", AUTO, OUT_OF_SAMPLE, "light", "threshold.light", ""),
        (0.99, {"customer_tier": "vip"}, "billing", AUTO, OUT_OF_SAMPLE, "full", "rule.vip", ""),
        # ... and the audit sample of auto items goes to full review.
        (0.97, {}, "billing", AUTO, IN_SAMPLE, "full", "audit_sample", "auto band"),
        # Light items are sampled at their own rate.
        (0.90, {}, "billing", {"audit": {"light": 0.1}}, IN_SAMPLE, "full", "audit_sample", ""),
        (
            0.90,
            {},
            "billing",
            {"audit": {"light": 0.1}},
            OUT_OF_SAMPLE,
            "light",
            "threshold.light",
            "",
        ),
        # Batchable low-confidence declines.
        (0.40, {}, "disqualified", BATCH, ID, "batch", "batch", "batch"),
        (0.70, {}, "disqualified", BATCH, ID, "full", "threshold.full", ""),
        (0.40, {}, "qualified", BATCH, ID, "manual", "threshold.manual", ""),
        (
            0.40,
            {"customer_tier": "vip"},
            "disqualified",
            BATCH,
            ID,
            "manual",
            "threshold.manual",
            "",
        ),
        # Shadow mode: at least full, with the level the policy would have chosen.
        (
            0.95,
            {},
            "billing",
            {"shadow": True},
            OUT_OF_SAMPLE,
            "full",
            "shadow",
            "would have chosen light",
        ),
        (0.30, {}, "billing", {"shadow": True}, ID, "manual", "shadow", "would have chosen manual"),
        (0.97, {}, "billing", {**AUTO, "shadow": True}, OUT_OF_SAMPLE, "full", "shadow", "auto"),
        (0.97, {}, "billing", {**AUTO, "shadow": True}, IN_SAMPLE, "full", "shadow", "auto"),
        (0.99, {}, "legal", {"shadow": True}, ID, "escalated", "shadow", "escalated"),
    ],
)
def test_policy_table(
    confidence: float,
    inp: dict[str, Any],
    label: str,
    settings: dict[str, Any],
    item_id: uuid.UUID,
    level: str,
    rule: str,
    reason_has: str,
) -> None:
    choice = choose_level(routing(**settings), confidence, [], inp, {"label": label}, item_id)
    assert (choice.level.value, choice.rule) == (level, rule), choice.reason
    assert reason_has in choice.reason


def test_shadow_records_the_would_be_level_and_audit_records_the_band() -> None:
    shadow = choose_level(routing(shadow=True), 0.95, [], {}, {"label": "a"}, OUT_OF_SAMPLE)
    assert shadow.shadow_level is not None and shadow.shadow_level.value == "light"
    audited = choose_level(routing(**AUTO), 0.97, [], {}, {"label": "a"}, IN_SAMPLE)
    assert audited.audited_level is not None and audited.audited_level.value == "auto"
    assert audited.audit_sample
    plain = choose_level(routing(), 0.95, [], {}, {"label": "a"}, OUT_OF_SAMPLE)
    assert plain.shadow_level is None and plain.audited_level is None


def test_all_matching_rules_are_recorded() -> None:
    choice = choose_level(
        routing(), 0.99, [], {"customer_tier": "vip", "amount": 20000}, {"label": "a"}, ID
    )
    assert choice.rules_matched == ("vip", "big-invoice")


def test_flags_keep_their_meaning_and_block_auto() -> None:
    r = routing(**AUTO)
    failed = choose_level(r, 0.99, ["ai_failed"], {}, {}, ID)
    assert (failed.level.value, failed.rule) == ("manual", "ai_failed")
    injected = choose_level(r, 0.99, ["possible_prompt_injection"], {}, {"label": "a"}, ID)
    assert (injected.level.value, injected.rule) == ("full", "flag.possible_prompt_injection")


def test_audit_sample_is_deterministic_and_near_its_rate() -> None:
    r = routing(**AUTO)
    ids = [uuid.UUID(int=i) for i in range(20000)]
    picks = [choose_level(r, 0.97, [], {}, {"label": "a"}, i).level.value for i in ids]
    again = [choose_level(r, 0.97, [], {}, {"label": "a"}, i).level.value for i in ids]
    assert picks == again
    share = picks.count("full") / len(ids)
    assert 0.09 < share < 0.11  # 10% ± 4.7 standard deviations
    # Canary and audit draws are independent (different salts).
    both = sum(
        1
        for i in ids
        if sample_fraction(i, "audit") < 0.1 and canary_due(routing(canaries={"rate": 0.1}), i)
    )
    assert 0.006 < both / len(ids) < 0.014


def test_strictness_orders_every_level() -> None:
    assert sorted(STRICTNESS, key=STRICTNESS.__getitem__) == [
        "auto",
        "batch",
        "light",
        "full",
        "manual",
        "escalated",
    ]


@pytest.mark.parametrize(
    ("routing_yaml", "message"),
    [
        (
            "rules: [{name: x, when: 'input.amount >', level: full, reason: r}]",
            "routing.rules[0]: invalid condition: expected a field",
        ),
        (
            "rules: [{name: x, when: '__import__(\"os\")', level: full, reason: r}]",
            "routing.rules[0]: invalid condition: unknown name '__import__'",
        ),
        (
            "rules: [{name: x, when: 'input.a > 1', field: input.a, level: full, reason: r}]",
            "give either `when`",
        ),
        (
            "rules: [{name: x, when: 'input.a > 1', level: light, reason: r}]",
            "routing.rules[0].level",
        ),
        (
            "rules: [{name: x, field: input.a, op: between, value: 1, level: full, reason: r}]",
            "unknown operator 'between'",
        ),
        ("batch: {labels: [nope]}", "routing.batch.labels: 'nope' not among"),
        ("sla: {light: soon}", "routing.sla.light: 'soon' is not a duration"),
        ("audit: {auto: 1.5}", "routing.audit.auto"),
        ("auto_approve: {enabled: yes, min_confidence: 0}", "routing.auto_approve.min_confidence"),
        (
            "rules: [{name: a, when: 'input.x exists', level: full, reason: r},"
            " {name: a, when: 'input.y exists', level: full, reason: r}]",
            "names must be distinct: a",
        ),
    ],
)
def test_invalid_routing_is_reported_with_file_and_key_path(
    tmp_path: Path, routing_yaml: str, message: str
) -> None:
    f = tmp_path / "wf.yaml"
    f.write_text(
        "name: wf-test\ntext_fields: [body]\nlabels: [{name: a}, {name: b}]\n"
        f"routing:\n  {routing_yaml}\n"
    )
    with pytest.raises(WorkflowFileError) as e:
        load_workflow_file(f)
    assert str(f) in str(e.value)
    assert message in str(e.value)


def test_durations_and_demo_workflows_load() -> None:
    r = Routing.model_validate({"sla": {"light": "90m", "full": "1d 2h", "manual": 3600}})
    assert r.sla.light.total_seconds() == 5400
    assert r.sla.full.total_seconds() == 26 * 3600
    assert r.sla.manual.total_seconds() == 3600
    # What a version stores reads back the same.
    assert Routing.model_validate(r.model_dump(mode="json")) == r
