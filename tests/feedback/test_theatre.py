"""Theatre detectors flag a simulated rubber-stamper and not careful reviewers."""

from __future__ import annotations

import random

from hitl_feedback.theatre import Decision, flag, reviewer_figures


def careful(seed: int, n: int = 60) -> list[Decision]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        chars = rng.randint(80, 900)
        seconds = 4 + chars / rng.uniform(12, 25) + rng.uniform(0, 10)
        out.append(Decision(rng.choice(["approved"] * 8 + ["edited", "rejected"]), seconds, chars))
    return out


def rubber_stamper(seed: int, n: int = 60) -> list[Decision]:
    rng = random.Random(seed)
    return [Decision("approved", rng.uniform(0.3, 1.5), rng.randint(80, 900)) for _ in range(n)]


def test_rubber_stamper_is_flagged_and_careful_reviewers_are_not() -> None:
    team = flag(
        [
            reviewer_figures("ana", careful(1)),
            reviewer_figures("ben", careful(2)),
            reviewer_figures("cho", careful(3)),
            reviewer_figures("dev", rubber_stamper(4)),
        ]
    )
    by = {r.reviewer: r for r in team}
    assert set(by["dev"].flags) >= {
        "instant_approvals",
        "approves_faster_than_reading",
        "approval_rate_far_above_team",
        "much_faster_than_team",
    }
    assert by["dev"].longest_instant_streak == 60
    for name in ("ana", "ben", "cho"):
        assert by[name].flags == [], by[name]


def test_a_few_fast_approvals_of_short_items_are_fine() -> None:
    decisions = careful(5) + [Decision("approved", 1.5, 20) for _ in range(3)]
    r = flag([reviewer_figures("eve", decisions)])[0]
    assert r.flags == []
    assert r.instant_approvals == 3


def test_too_few_decisions_are_not_judged() -> None:
    r = flag([reviewer_figures("new", rubber_stamper(6, n=5))])[0]
    assert r.flags == []
