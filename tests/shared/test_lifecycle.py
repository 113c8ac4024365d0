import pytest

from hitl_shared.lifecycle import (
    PUBLIC_STATUS,
    TRANSITIONS,
    IllegalTransition,
    ItemStatus,
    can_transition,
    transition,
)


class Thing:
    def __init__(self, status: str) -> None:
        self.status = status


@pytest.mark.parametrize(
    ("start", "target"),
    [
        ("received", ItemStatus.PROCESSED),
        ("processed", ItemStatus.IN_REVIEW),
        ("in_review", ItemStatus.COMPLETED),
        ("received", ItemStatus.CANCELLED),
        ("in_review", ItemStatus.CANCELLED),
    ],
)
def test_legal_transitions_move_the_item(start: str, target: ItemStatus) -> None:
    t = Thing(start)
    transition(t, target)
    assert t.status == target.value


@pytest.mark.parametrize(
    ("start", "target"),
    [
        ("received", ItemStatus.IN_REVIEW),
        ("received", ItemStatus.COMPLETED),
        ("completed", ItemStatus.IN_REVIEW),
        ("completed", ItemStatus.CANCELLED),
        ("cancelled", ItemStatus.PROCESSED),
        ("in_review", ItemStatus.PROCESSED),
    ],
)
def test_illegal_transitions_raise_and_leave_the_item_alone(start: str, target: ItemStatus) -> None:
    t = Thing(start)
    with pytest.raises(IllegalTransition, match=f"from '{start}'"):
        transition(t, target)
    assert t.status == start


def test_final_states_have_no_way_out_and_every_state_is_public() -> None:
    assert TRANSITIONS[ItemStatus.COMPLETED] == frozenset()
    assert TRANSITIONS[ItemStatus.CANCELLED] == frozenset()
    assert set(PUBLIC_STATUS) == set(ItemStatus)
    assert set(PUBLIC_STATUS.values()) == {"pending", "in_review", "completed", "cancelled"}
    assert not can_transition("completed", "completed")
