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
