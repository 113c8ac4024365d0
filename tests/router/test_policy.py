import pytest

from hitl_router.policy import choose_level
from hitl_shared.workflows.config import Routing, Thresholds

DEFAULT = Routing()


@pytest.mark.parametrize(
    ("confidence", "flags", "level", "rule"),
    [
        (0.99, [], "light", "threshold.light"),
        (0.85, [], "light", "threshold.light"),
        (0.8499, [], "full", "threshold.full"),
        (0.60, [], "full", "threshold.full"),
        (0.5999, [], "manual", "threshold.manual"),
        (0.0, [], "manual", "threshold.manual"),
        (0.99, ["possible_prompt_injection"], "full", "flag.possible_prompt_injection"),
        (0.70, ["possible_prompt_injection"], "full", "threshold.full"),
        (0.99, ["ai_failed"], "manual", "ai_failed"),
    ],
)
def test_seed_thresholds(confidence: float, flags: list[str], level: str, rule: str) -> None:
    choice = choose_level(DEFAULT, confidence, flags)
    assert (choice.level.value, choice.rule) == (level, rule)
    assert choice.reason


def test_workflow_thresholds_are_used_and_reason_names_them() -> None:
    routing = Routing(thresholds=Thresholds(light=0.95, full=0.5))
    choice = choose_level(routing, 0.9, [])
    assert choice.level.value == "full"
    assert "95%" in choice.reason and "50%" in choice.reason


def test_thresholds_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="full must not be above"):
        Thresholds(light=0.5, full=0.7)


@pytest.mark.parametrize(
    ("output", "confidence", "flags", "level", "rule"),
    [
        # A score workflow's unsure low scores are declines: batched.
        ({"score": 1}, 0.4, [], "batch", "batch"),
        ({"score": 1}, 0.7, [], "full", "threshold.full"),  # sure enough: normal review
        ({"score": 3}, 0.4, [], "manual", "threshold.manual"),  # not a decline
        # An extraction that breaks its own rules never gets a glance only.
        (
            {
                "fields": {"total": 5},
                "field_confidence": {"total": 0.9},
                "failed_rules": [{"name": "totals-add-up", "fields": ["total"]}],
            },
            0.9,
            [],
            "full",
            "validation.totals-add-up",
        ),
    ],
)
def test_score_declines_and_failed_extraction_rules(
    output: dict[str, object], confidence: float, flags: list[str], level: str, rule: str
) -> None:
    from hitl_shared.workflows.config import BatchSettings

    routing = Routing(batch=BatchSettings(max_score=1, below_confidence=0.6))
    choice = choose_level(routing, confidence, flags, {}, output)
    assert (choice.level.value, choice.rule) == (level, rule)
    if level == "batch":
        assert "score 1 (at or below 1)" in choice.reason


def test_extraction_reason_names_the_least_sure_fields() -> None:
    output = {"fields": {}, "field_confidence": {"total": 0.41, "vendor": 0.55, "date": 0.9}}
    choice = choose_level(DEFAULT, 0.41, [], {}, output)
    assert "Least sure: total (41%), vendor (55%), date (90%)" in choice.reason
