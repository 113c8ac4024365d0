"""`hitl replay` on the small dataset the project ships: the loop learns and reports it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data" / "support_tickets.csv"
HITL = str(Path(sys.executable).with_name("hitl"))


def test_replay_learns_from_the_simulated_reviewer(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    out = subprocess.run(
        [
            HITL,
            "replay",
            str(DATA),
            "--text-column",
            "text",
            "--label-column",
            "label",
            "--block",
            "80",
            "--report",
            str(report),
            "--data-dir",
            str(tmp_path / "data"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "summary:" in out.stdout
    result = json.loads(report.read_text())
    blocks = result["blocks"]
    assert [b["items"] for b in blocks] == [80, 80, 80, 80]
    for b in blocks:
        assert abs(sum(b["levels"].values()) - 1) < 1e-6
        assert 0 <= b["ece"] <= 1
    first, last = blocks[0], blocks[-1]
    # With no examples the AI knows nothing: everything is done by hand.
    assert first["levels"]["manual"] == 1.0
    # Corrections train the local model: the last block is mostly right and cheaper to review.
    assert last["ai_accuracy"] >= first["ai_accuracy"] + 0.4
    assert result["summary"]["minutes_ratio_last_to_first"] < 0.9
    assert last["levels"]["manual"] < 1.0


def test_replay_names_a_missing_column(tmp_path: Path) -> None:
    out = subprocess.run(
        [HITL, "replay", str(DATA), "--text-column", "body", "--label-column", "label"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode != 0
    assert "no column 'body'; the columns are text, label" in out.stderr
