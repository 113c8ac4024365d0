"""The figures' pure parts: binning, intervals, periods, histograms and queue ages."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from hitl_shared.figures import (
    band_accuracy_figure,
    expected_calibration_error,
    periods,
    queue_load_figure,
    reliability_bins,
    reliability_figure,
    review_times_figure,
    time_bins,
    wilson_interval,
)


def test_wilson_interval() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(5, 10)
    assert (round(low, 4), round(high, 4)) == (0.2366, 0.7634)
    low, high = wilson_interval(10, 10)
    assert high == 1.0 and 0.69 < low < 0.73  # all right is not proof of perfection


def test_reliability_bins_and_ece() -> None:
    conf = [0.05, 0.95, 1.0, 0.91, 0.55]
    ok = [False, True, True, False, True]
    bins = reliability_bins(conf, ok)
    assert len(bins) == 10 and sum(b["items"] for b in bins) == 5
    top = bins[9]
    assert (top["items"], top["correct"]) == (3, 2)  # 1.0 belongs to the last bin
    assert top["confidence"] == pytest.approx((0.95 + 1.0 + 0.91) / 3, abs=1e-4)
    assert top["accuracy"] == pytest.approx(2 / 3, abs=1e-4)
    low, high = top["accuracy_ci95"]
    assert low < top["accuracy"] < high
    assert bins[3]["items"] == 0 and bins[3]["accuracy"] is None
    expected = (1 * 0.05 + 1 * 0.45 + 3 * abs((0.95 + 1.0 + 0.91) / 3 - 2 / 3)) / 5
    assert expected_calibration_error(bins) == pytest.approx(expected, abs=1e-4)
    assert expected_calibration_error(reliability_bins([], [])) is None


def test_reliability_figure_shows_raw_only_when_calibration_changed_something() -> None:
    same = reliability_figure([(0.9, 0.9, True), (0.4, 0.4, False)])
    assert same["calibration_applied"] is False and same["raw"] is None
    moved = reliability_figure([(0.9, 0.8, True), (0.4, 0.3, False)])
    assert moved["calibration_applied"] is True
    assert moved["raw"]["bins"][9]["items"] == 1 and moved["calibrated"]["bins"][8]["items"] == 1


def test_band_accuracy_per_day_while_history_is_short() -> None:
    today = date(2024, 3, 14)
    counts = [
        ("2024-03-12", "light", True, 9),
        ("2024-03-12", "light", False, 1),
        ("2024-03-14", "light", True, 4),
        ("2024-03-14", "full", False, 2),
    ]
    fig = band_accuracy_figure(counts, today, 90)
    assert fig["granularity"] == "day"
    assert fig["periods"] == ["2024-03-12", "2024-03-13", "2024-03-14"]
    light, full = fig["bands"]
    assert (light["band"], light["judged"], light["ai_correct"]) == ("light", 14, 13)
    assert [p["judged"] for p in light["points"]] == [10, 0, 4]
    assert light["points"][1]["accuracy"] is None and light["points"][1]["accuracy_ci95"] is None
    assert light["points"][0]["accuracy"] == 0.9
    assert (full["band"], full["judged"], full["accuracy"]) == ("full", 2, 0.0)
    assert fig["judged"] == 16


def test_band_accuracy_per_week_once_history_is_long() -> None:
    today = date(2024, 3, 14)  # a Thursday
    counts = [
        (date(2024, 1, 31), "auto", True, 3),  # a Wednesday: its week starts Monday 29 Jan
        (datetime(2024, 3, 11, 9, tzinfo=UTC), "auto", False, 1),
        ("2024-03-13", "auto", True, 1),
        ("2024-03-13", "manual", True, 2),
    ]
    fig = band_accuracy_figure(counts, today, 90)
    assert fig["granularity"] == "week"
    assert fig["periods"][0] == "2024-01-29" and fig["periods"][-1] == "2024-03-11"
    assert len(fig["periods"]) == 7
    assert [b["band"] for b in fig["bands"]] == ["auto", "manual"]  # review-level order
    auto = fig["bands"][0]
    assert auto["points"][0]["judged"] == 3 and auto["points"][-1]["judged"] == 2
    assert auto["points"][-1]["ai_correct"] == 1


def test_no_decisions_means_no_periods() -> None:
    fig = band_accuracy_figure([], date(2024, 3, 14), 30)
    assert fig == {"days": 30, "granularity": "day", "periods": [], "bands": [], "judged": 0}


def test_periods_start_on_mondays_for_weeks() -> None:
    assert periods(date(2024, 3, 6), date(2024, 3, 18), "week") == [
        date(2024, 3, 4),
        date(2024, 3, 11),
        date(2024, 3, 18),
    ]


def test_review_times_histogram_and_medians() -> None:
    labels = [b["label"] for b in time_bins()]
    assert labels[0] == "< 5 s" and labels[4] == "30\u201360 s" and labels[-1] == "≥ 10 min"
    assert labels[5] == "1\u20132 min"
    rows = [("light", 1.0), ("light", 3.0), ("light", 7.0), ("manual", 90.0), ("manual", 900.0)]
    fig = review_times_figure(rows, 30)
    assert fig["decisions"] == 5 and fig["median_seconds"] == 7.0
    light, manual = fig["levels"]
    assert light["counts"][:2] == [2, 1] and sum(light["counts"]) == 3
    assert light["median_seconds"] == 3.0 and light["p90_seconds"] == 7.0
    assert manual["counts"][5] == 1 and manual["counts"][-1] == 1
    assert manual["median_seconds"] == 495.0
    assert review_times_figure([], 7)["levels"] == []


def test_queue_load_fills_days_and_sums_ages() -> None:
    now = datetime(2024, 3, 14, 12, tzinfo=UTC)
    routed = [("2024-03-12", "light", 3), ("2024-03-14", "full", 2), ("2024-03-14", "light", 1)]
    waiting = [
        ("light", "open", 0, 2, now - timedelta(minutes=30), 0),
        ("light", "claimed", 3, 1, now - timedelta(hours=50), 1),
        ("manual", "open", 4, 4, now - timedelta(days=5), 4),
    ]
    fig = queue_load_figure(routed, waiting, now, 30)
    assert fig["dates"] == ["2024-03-12", "2024-03-13", "2024-03-14"]
    assert fig["routed_total"] == 6
    assert fig["routed"] == [
        {"level": "light", "items": 4, "per_day": [3, 0, 1]},
        {"level": "full", "items": 2, "per_day": [0, 0, 2]},
    ]
    light, manual = fig["waiting"]
    assert (light["waiting"], light["claimed"], light["overdue"]) == (3, 1, 1)
    assert light["ages"] == [2, 0, 0, 1, 0]
    assert light["oldest_age_seconds"] == 50 * 3600
    assert manual["ages"] == [0, 0, 0, 0, 4] and fig["waiting_total"] == 7
    assert [b["label"] for b in fig["age_bins"]] == [
        "< 1 h",
        "1\u20134 h",
        "4\u201324 h",
        "1\u20133 days",
        "≥ 3 days",
    ]
