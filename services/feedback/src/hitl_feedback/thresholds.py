"""Threshold recommendations: the lowest light-review threshold whose band meets the
operator's error target at the lower confidence bound, with a backtest over history."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from hitl_feedback.stats import wilson_interval

LEVELS = ("auto", "light", "full", "manual")


@dataclass
class Backtest:
    items: int
    moved: dict[str, int] = field(default_factory=dict)  # "full->light": n
    levels_before: dict[str, int] = field(default_factory=dict)
    levels_after: dict[str, int] = field(default_factory=dict)
    light_errors_before: int = 0
    light_errors_after: int = 0
    reviewer_hours_before: float = 0.0
    reviewer_hours_after: float = 0.0


@dataclass
class Recommendation:
    light: float
    full: float
    target_error: float
    band_items: int
    band_accuracy: float | None
    band_accuracy_low: float | None
    reason: str
    backtest: Backtest | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def level_for(conf: float, light: float, full: float) -> str:
    if conf >= light:
        return "light"
    if conf >= full:
        return "full"
    return "manual"


def recommend_light_threshold(
    conf: np.ndarray,
    correct: np.ndarray,
    target_error: float,
    min_band: int = 50,
    z: float = 1.96,
    step: float = 0.01,
) -> tuple[float | None, int, float | None, float | None]:
    """The lowest threshold t on a grid whose band [t, 1] keeps its accuracy, at the Wilson
    lower bound, at or above 1 - target_error — tested from the top down and stopping at the
    first band that fails (fixed-sequence testing: scanning on for a later lucky band would
    pick noise and miss the target on new items). None when no band qualifies yet."""
    best: tuple[float | None, int, float | None, float | None] = (None, 0, None, None)
    for t in np.round(np.arange(0.999, 0.0, -step), 4):
        band = conf >= t
        size = int(band.sum())
        if size < min_band:
            continue
        hits = int(correct[band].sum())
        low, _ = wilson_interval(hits, size, z)
        if low < 1 - target_error:
            perfect_low, _ = wilson_interval(size, size, z)
            if perfect_low < 1 - target_error:
                continue  # too few items to prove anything yet: not a failure
            break
        best = (float(t), size, hits / size, low)
    return best


def backtest(
    conf: np.ndarray,
    correct: np.ndarray,
    levels: list[str],
    movable: np.ndarray,
    seconds_per_level: dict[str, float],
    light: float,
    full: float,
) -> Backtest:
    """What the new thresholds would have done to the decided items (risk-rule items stay)."""
    bt = Backtest(items=len(conf))
    for i, before in enumerate(levels):
        after = level_for(float(conf[i]), light, full) if movable[i] else before
        bt.levels_before[before] = bt.levels_before.get(before, 0) + 1
        bt.levels_after[after] = bt.levels_after.get(after, 0) + 1
        if after != before:
            key = f"{before}->{after}"
            bt.moved[key] = bt.moved.get(key, 0) + 1
        wrong = not bool(correct[i])
        if before in ("light", "auto") and wrong:
            bt.light_errors_before += 1
        if after in ("light", "auto") and wrong:
            bt.light_errors_after += 1
        bt.reviewer_hours_before += seconds_per_level.get(before, 0.0) / 3600
        bt.reviewer_hours_after += seconds_per_level.get(after, 0.0) / 3600
    bt.reviewer_hours_before = round(bt.reviewer_hours_before, 3)
    bt.reviewer_hours_after = round(bt.reviewer_hours_after, 3)
    return bt


def _band(
    conf: np.ndarray, correct: np.ndarray, t: float, z: float = 1.96
) -> tuple[int, float, float, float]:
    band = conf >= t
    size = int(band.sum())
    hits = int(correct[band].sum())
    low, high = wilson_interval(hits, size, z)
    return size, (hits / size if size else 0.0), low, high


def recommend(
    conf: np.ndarray,
    correct: np.ndarray,
    current_light: float,
    current_full: float,
    target_error: float = 0.02,
    min_band: int = 50,
    step: float = 0.01,
) -> Recommendation:
    """Move the light threshold only on proof: loosen while every wider band still meets the
    target at its lower bound; tighten only when the current band is proven worse than the
    target (its upper bound is below it); otherwise keep what the operator has."""
    target = 1 - target_error
    size, acc, low, high = _band(conf, correct, current_light)
    if size >= min_band and high < target:
        # Proven too wrong: the lowest stricter threshold whose band meets the target.
        for t in np.round(np.arange(current_light + step, 1.0 + 1e-9, step), 4):
            n, a, lo, _ = _band(conf, correct, float(t))
            if n >= min_band and lo >= target:
                reason = (
                    f"The light band (confidence ≥ {current_light:.0%}) was right on only "
                    f"{acc:.1%} of {size} decided items; from {t:.0%} up, {n} items were "
                    f"{a:.1%} right (95% lower bound {lo:.1%})."
                )
                return Recommendation(
                    float(t), min(current_full, float(t)), target_error, n, a, lo, reason
                )
        reason = (
            f"No confidence band is reliable enough yet: the light band was right on only "
            f"{acc:.1%} of {size} decided items. Light review is suspended until it is."
        )
        return Recommendation(1.0, current_full, target_error, size, acc, low, reason)
    if size < min_band:
        # Too few items at or above the current threshold to judge it (light review
        # suspended at 100%, say): look for a proven band from the top down, so a model that
        # has become good enough gets light review back.
        t_new, n_new, a_new, lo_new = recommend_light_threshold(
            conf, correct, target_error, min_band, step=step
        )
        if t_new is not None and a_new is not None and lo_new is not None and t_new < current_light:
            reason = (
                f"{n_new} decided items with confidence ≥ {t_new:.0%} were {a_new:.1%} right "
                f"(95% lower bound {lo_new:.1%} ≥ target {target:.0%}); light review reopens "
                f"from {t_new:.0%}."
            )
            return Recommendation(
                t_new, min(current_full, t_new), target_error, n_new, a_new, lo_new, reason
            )
        if t_new is None and len(conf) >= min_band and current_light < 1.0:
            # Plenty of decisions, yet no band is proven (a new model, say, that has been
            # right too rarely to trust any of its confidences): an unproven band does not
            # meet the target, so light review waits for proof instead of hoping.
            reason = (
                f"{len(conf)} decided items, but no confidence band of at least {min_band} of "
                f"them is proven to reach {target:.0%} accuracy at the 95% lower bound (only "
                f"{size} at or above the light threshold {current_light:.0%}). Light review "
                "waits for that proof."
            )
            return Recommendation(
                1.0, current_full, target_error, size, acc if size else None, None, reason
            )
    if size < min_band or low < target:
        reason = (
            f"No confidence band of at least {min_band} decided items is proven to reach "
            f"{target:.0%} accuracy at the 95% lower bound beyond the current one; light review "
            f"stays at {current_light:.0%}."
        )
        return Recommendation(
            current_light, current_full, target_error, size, acc or None, low, reason
        )
    best = (current_light, size, acc, low)
    for t in np.round(np.arange(current_light - step, 0.5 - 1e-9, -step), 4):
        n, a, lo, _ = _band(conf, correct, float(t))
        if lo < target:
            break  # fixed-sequence: the first failure ends the search
        best = (float(t), n, a, lo)
    light, n, a, lo = best
    reason = (
        f"{n} decided items with confidence ≥ {light:.0%} were {a:.1%} right "
        f"(95% lower bound {lo:.1%} ≥ target {target:.0%})."
    )
    return Recommendation(light, min(current_full, light), target_error, n, a, lo, reason)
