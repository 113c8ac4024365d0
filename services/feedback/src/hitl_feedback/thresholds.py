"""Threshold recommendations: the lowest light-review threshold whose band keeps the
operator's error target, with a backtest over history.

"Keeps the target" is judged on what the next period of light-band items will see, not on
the history's point estimate: the band's error rate is uncertain (few decided items in it)
and a period of a few hundred items scatters around that rate by chance. A band qualifies
when the one-sided 95% prediction bound of a period's error share (``period_error_bound``)
is at or under the target, so the target holds period after period, not just on average."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.stats import betabinom

from hitl_feedback.stats import wilson_interval

LEVELS = ("auto", "light", "full", "manual")
DEFAULT_PERIOD = 500  # light-band items the target must hold over, each run of them
# Loosen only by this much at least: a one-point step is within the noise and would make a
# new workflow version every few decisions. Tightening is never held back.
MIN_LOOSEN = 0.02


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
    # The error share a period of ``period`` light items stays under 19 times in 20.
    period_error_bound: float | None = None
    period: int = DEFAULT_PERIOD
    backtest: Backtest | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def level_for(conf: float, light: float, full: float) -> str:
    if conf >= light:
        return "light"
    if conf >= full:
        return "full"
    return "manual"


def period_error_bound(hits: int, size: int, period: int, level: float = 0.95) -> float:
    """The error share a period of ``period`` new light-band items stays at or under with
    probability ``level`` (19 times in 20), given ``hits`` right answers out of ``size``
    decided items in the band: the beta-binomial predictive distribution, which carries both
    the uncertainty of the band's error rate (from ``size``; Jeffreys prior) and the chance
    variation of a period around it (from ``period``). A bound on the rate alone would keep
    the long-run average under target and still let every third or fourth period exceed it."""
    if size <= 0:
        return 1.0
    period = max(int(period), 1)
    errors = max(size - hits, 0)
    k = betabinom.ppf(level, period, errors + 0.5, hits + 0.5)
    return float(min(1.0, k / period))


def recommend_light_threshold(
    conf: np.ndarray,
    correct: np.ndarray,
    target_error: float,
    min_band: int = 50,
    step: float = 0.01,
    period: int = DEFAULT_PERIOD,
) -> tuple[float | None, int, float | None, float | None]:
    """The lowest threshold t on a grid whose band [t, 1] keeps its period error bound at or
    under the target — tested from the top down and stopping at the first band that fails
    (fixed-sequence testing: scanning on for a later lucky band would pick noise and miss
    the target on new items). (t, band items, band accuracy, period error bound); t is None
    when no band qualifies yet."""
    best: tuple[float | None, int, float | None, float | None] = (None, 0, None, None)
    for t in np.round(np.arange(0.999, 0.0, -step), 4):
        band = conf >= t
        size = int(band.sum())
        if size < min_band:
            continue
        hits = int(correct[band].sum())
        bound = period_error_bound(hits, size, period)
        if bound > target_error:
            if period_error_bound(size, size, period) > target_error:
                continue  # too few items to prove anything yet: not a failure
            break
        best = (float(t), size, hits / size, bound)
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
    period: int = DEFAULT_PERIOD,
) -> Recommendation:
    """While the current light band keeps the target, loosen only as far as every wider band
    keeps it too (and by at least ``MIN_LOOSEN``). When it no longer does, tighten to the
    lowest threshold whose band does, found from the top down (light review is suspended if
    none does). With too few items in the band to judge it, look from the top down for a
    proven band (light review reopens), or, with plenty of decisions and none proven, wait
    for proof with light review suspended."""

    def judge(t: float) -> tuple[int, float, float, float]:
        size, acc, low, _ = _band(conf, correct, t)
        return size, acc, low, period_error_bound(round(acc * size), size, period)

    def result(
        t: float, n: int, a: float | None, lo: float | None, bound: float | None, reason: str
    ) -> Recommendation:
        full = current_full if t >= 1.0 else min(current_full, t)
        return Recommendation(t, full, target_error, n, a, lo, reason, bound, period)

    def evidence(t: float, n: int, a: float, bound: float) -> str:
        return (
            f"{n} decided items with confidence ≥ {t:.0%} were {a:.1%} right; a period of "
            f"{period} light-review items at that rate sees at most {bound:.1%} errors "
            f"(19 times in 20), within the {target_error:.0%} target."
        )

    size, acc, low, bound = judge(current_light)
    if size >= min_band and bound <= target_error:
        best = (current_light, size, acc, low, bound)
        for t in np.round(np.arange(current_light - step, 0.5 - 1e-9, -step), 4):
            n, a, lo, b = judge(float(t))
            if b > target_error:
                break  # fixed-sequence: the first failure ends the search
            best = (float(t), n, a, lo, b)
        light, n, a, lo, b = best
        if current_light - light < MIN_LOOSEN - 1e-9:
            reason = evidence(current_light, size, acc, bound)
            reason += f" Light review stays at {current_light:.0%}."
            return result(current_light, size, acc, low, bound, reason)
        return result(light, n, a, lo, b, evidence(light, n, a, b))

    t_new, n_new, a_new, b_new = recommend_light_threshold(
        conf, correct, target_error, min_band, step, period
    )
    if t_new is not None and a_new is not None and b_new is not None:
        _, _, lo_new, _ = _band(conf, correct, t_new)
        if size >= min_band and t_new > current_light:
            reason = (
                f"The light band (confidence ≥ {current_light:.0%}) was right on {acc:.1%} of "
                f"{size} decided items: a period of {period} light-review items could see "
                f"{bound:.1%} errors, over the {target_error:.0%} target. Tightened: "
                + evidence(t_new, n_new, a_new, b_new)
            )
            return result(t_new, n_new, a_new, lo_new, b_new, reason)
        if t_new < current_light:
            # The current band is too small to judge; a wider one is proven.
            move = "reopens from" if current_light >= 1.0 else "moves to"
            reason = evidence(t_new, n_new, a_new, b_new) + f" Light review {move} {t_new:.0%}."
            return result(t_new, n_new, a_new, lo_new, b_new, reason)
    if size >= min_band and period_error_bound(size, size, period) > target_error:
        reason = (
            f"The light band (confidence ≥ {current_light:.0%}) was right on {acc:.1%} of "
            f"{size} decided items: too few to show that a period of {period} light-review "
            f"items stays within the {target_error:.0%} target, and no band shows it yet. "
            "Light review waits for that proof."
        )
        return result(1.0, size, acc, low, bound, reason)
    if size >= min_band:
        reason = (
            f"No confidence band is reliable enough yet: the light band was right on only "
            f"{acc:.1%} of {size} decided items, and no stricter band of at least {min_band} "
            f"keeps a period of {period} light-review items within the {target_error:.0%} "
            "target. Light review is suspended until one does."
        )
        return result(1.0, size, acc, low, bound, reason)
    if len(conf) >= min_band and current_light < 1.0:
        # Plenty of decisions, yet no band is proven (a new model, say, that has been right
        # too rarely to trust any of its confidences): an unproven band does not meet the
        # target, so light review waits for proof instead of hoping.
        reason = (
            f"{len(conf)} decided items, but no confidence band of at least {min_band} of "
            f"them is proven to keep the {target_error:.0%} error target (only {size} at or "
            f"above the light threshold {current_light:.0%}). Light review waits for that "
            "proof."
        )
        return result(1.0, size, acc if size else None, None, None, reason)
    reason = (
        f"Too few decided items to judge: {size} at or above the light threshold "
        f"{current_light:.0%} (at least {min_band} are needed); light review stays at "
        f"{current_light:.0%}."
    )
    return result(current_light, size, acc if size else None, low if size else None, None, reason)
