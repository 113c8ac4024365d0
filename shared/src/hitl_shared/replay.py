"""`hitl replay`: push a labelled dataset through the real pipeline (embedded mode) with a
simulated reviewer who answers with the true label, and report how review load changes.

Everything goes through the product's own doors: items through the ingest API, decisions
through the review UI's forms, and the feedback loop recalibrates and applies its own
threshold recommendations as decisions accumulate.
"""

from __future__ import annotations

import csv
import json
import re
import secrets
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import sqlalchemy as sa

from hitl_shared.assembly import Embedded
from hitl_shared.db.models import AIResult, RoutingDecision
from hitl_shared.settings import Settings
from hitl_shared.workflows.config import (
    FeedbackSettings,
    Label,
    WorkflowConfig,
)
from hitl_shared.workflows.store import apply_workflow

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
ITEM = re.compile(r'data-item="([0-9a-f-]+)"')
LEVEL = re.compile(r'data-level="(\w+)"')
AI_LABEL = re.compile(r'id="ai-label">([^<]*)<')
LEVELS = ("auto", "light", "full", "manual", "escalated")


class ReplayError(Exception):
    pass


@dataclass
class SimulatedReviewer:
    """Plausible review times (seconds): a glance for light review, reading and checking for
    full review, doing the task for manual review; reading at about 25 characters a second."""

    seed: int = 0
    reading_chars_per_second: float = 25.0
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def seconds(self, level: str, chars: int, changed: bool) -> float:
        read = chars / self.reading_chars_per_second
        jitter = float(self.rng.lognormal(0.0, 0.25))
        if level == "light":
            base = 3.0 + 0.5 * read
        elif level == "full":
            base = 6.0 + read
        else:  # manual, escalated: do the task from scratch
            base = 15.0 + read
        if changed and level != "manual":
            base += 6.0  # pick the right answer instead
        return base * jitter


def read_dataset(path: Path, text_column: str, label_column: str) -> list[tuple[str, str]]:
    if not path.exists():
        raise ReplayError(f"{path}: no such file")
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        for col in (text_column, label_column):
            if col not in columns:
                raise ReplayError(
                    f"{path}: no column {col!r}; the columns are {', '.join(columns) or '(none)'}"
                )
        rows = [
            (r[text_column].strip(), r[label_column].strip())
            for r in reader
            if (r.get(text_column) or "").strip() and (r.get(label_column) or "").strip()
        ]
    if len(rows) < 10:
        raise ReplayError(f"{path}: fewer than 10 labelled rows")
    return rows


def _ece(conf: list[float], correct: list[bool], bins: int = 10) -> float:
    c = np.asarray(conf, dtype=float)
    y = np.asarray(correct, dtype=float)
    if len(c) == 0:
        return 0.0
    idx = np.clip((c * bins).astype(int), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = idx == b
        if mask.any():
            total += mask.mean() * abs(c[mask].mean() - y[mask].mean())
    return float(total)


async def replay(
    dataset: Path,
    text_column: str,
    label_column: str,
    block: int = 500,
    limit: int | None = None,
    data_dir: Path | None = None,
    target_error: float = 0.02,
    seed: int = 0,
    progress: Any = None,
) -> dict[str, Any]:
    rows = read_dataset(dataset, text_column, label_column)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(rows))
    rows = [rows[i] for i in order][: limit or None]
    labels = sorted({label for _, label in rows})
    if len(labels) < 2:
        raise ReplayError("the label column must hold at least two different labels")

    workdir = data_dir or Path(tempfile.mkdtemp(prefix="hitl-replay-"))
    api_key = "hitl_replay_" + secrets.token_urlsafe(24)
    password = secrets.token_urlsafe(16)
    settings = Settings(
        environment="development",
        data_dir=workdir,
        database_url="",
        demo_workflows=False,
        bootstrap_api_key=api_key,
        bootstrap_admin_password=password,
        sweep_interval_seconds=3600.0,
        stuck_after_seconds=0.0,
    )
    embedded = Embedded(settings)
    app = embedded.app()
    name = "replay-" + re.sub(r"[^a-z0-9-]+", "-", dataset.stem.lower()).strip("-")[:40]
    reviewer = SimulatedReviewer(seed)
    blocks: list[dict[str, Any]] = []
    truth: dict[str, str] = {}
    texts: dict[str, str] = {}
    started = time.monotonic()

    async with app.router.lifespan_context(app):
        runtime = embedded.runtime
        assert runtime is not None
        config = WorkflowConfig(
            name=name if len(name) >= 3 else "replay-data",
            description=f"Replay of {dataset.name}",
            task_type="classify",
            input_schema={
                "type": "object",
                "required": ["text"],
                "properties": {"text": {"type": "string", "minLength": 1}},
            },
            text_fields=["text"],
            labels=[Label(name=label) for label in labels],
            feedback=FeedbackSettings(
                target_light_error=target_error, recalibrate_every=100, auto_apply_thresholds=True
            ),
        )
        async with runtime.work() as work:
            await apply_workflow(work.session, config, actor="replay")

        async def settle() -> None:
            for _ in range(3):
                await embedded.queue.join()
                await embedded.sweep_once()
            await embedded.queue.join()

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://replay") as http:
            r = await http.post("/login", data={"username": "admin", "password": password})
            if r.status_code != 303:
                raise ReplayError("the simulated reviewer could not sign in")
            page = await http.get("/")
            m = CSRF.search(page.text)
            assert m
            csrf = m.group(1)
            headers = {"Authorization": f"Bearer {api_key}"}

            for start, end in block_bounds(len(rows), block):
                chunk = rows[start:end]
                ids: list[str] = []
                for text, label in chunk:
                    resp = await http.post(
                        "/v1/items",
                        json={"workflow": config.name, "input": {"text": text}},
                        headers=headers,
                    )
                    if resp.status_code != 202:
                        raise ReplayError(f"ingest refused an item: {resp.status_code} {resp.text}")
                    item_id = resp.json()["id"]
                    ids.append(item_id)
                    truth[item_id] = label
                    texts[item_id] = text
                await settle()

                minutes = 0.0
                levels: Counter[str] = Counter()
                resp = await http.post(
                    "/queue/start", data={"csrf_token": csrf, "workflow": config.name}
                )
                while resp.status_code == 303 and "/tasks/" in resp.headers["location"]:
                    task_url = resp.headers["location"]
                    page = await http.get(task_url)
                    item_id = ITEM.search(page.text).group(1)  # type: ignore[union-attr]
                    level = LEVEL.search(page.text).group(1)  # type: ignore[union-attr]
                    ai = AI_LABEL.search(page.text)
                    ai_label = ai.group(1).strip() if ai else None
                    true_label = truth[item_id]
                    right = ai_label == true_label
                    seconds = reviewer.seconds(level, len(texts[item_id]), not right)
                    minutes += seconds / 60
                    levels[level] += 1
                    form = {
                        "csrf_token": csrf,
                        "active_ms": str(int(seconds * 1000)),
                        "queue_workflow": config.name,
                    }
                    if right and level != "manual":
                        form["action"] = "approve"
                    else:
                        form["action"] = "edit"
                        form["label"] = true_label
                    task_id = task_url.split("/tasks/")[1].split("?")[0]
                    resp = await http.post(f"/tasks/{task_id}/decide", data=form)
                await settle()
                blocks.append(
                    await _block_figures(runtime, ids, truth, minutes, start + len(chunk))
                )
                if progress:
                    progress(blocks[-1])

    summary = _summary(blocks, time.monotonic() - started)
    return {
        "dataset": str(dataset),
        "workflow": config.name,
        "labels": len(labels),
        "items": len(rows),
        "block": block,
        "blocks": blocks,
        "summary": summary,
    }


def block_bounds(n: int, block: int) -> list[tuple[int, int]]:
    """Blocks of ``block`` items; a remainder under half a block joins the last one, so no
    final block of a handful of items stands for the system's end state."""
    bounds = [(s, min(s + block, n)) for s in range(0, n, block)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < block / 2:
        bounds[-2:] = [(bounds[-2][0], n)]
    return bounds


async def _block_figures(
    runtime: Any, ids: list[str], truth: dict[str, str], minutes: float, seen: int
) -> dict[str, Any]:
    uuids = [uuid.UUID(i) for i in ids]
    async with runtime.sessionmaker() as s:
        rows = (
            await s.execute(
                sa.select(
                    RoutingDecision.item_id,
                    RoutingDecision.level,
                    AIResult.output,
                    AIResult.confidence,
                )
                .join(AIResult, AIResult.item_id == RoutingDecision.item_id)
                .where(RoutingDecision.item_id.in_(uuids))
            )
        ).all()
    levels: Counter[str] = Counter()
    conf: list[float] = []
    correct: list[bool] = []
    light_items = light_errors = 0
    for item_id, level, output, confidence in rows:
        ok = (output or {}).get("label") == truth[str(item_id)]
        levels[level] += 1
        conf.append(confidence)
        correct.append(ok)
        if level in ("light", "auto"):
            light_items += 1
            light_errors += int(not ok)
    n = len(rows) or 1
    return {
        "items": len(ids),
        "seen": seen,
        "levels": {
            lv: round(levels.get(lv, 0) / n, 4) for lv in ("auto", "light", "full", "manual")
        },
        "light_or_auto_error_rate": round(light_errors / light_items, 4) if light_items else 0.0,
        "light_or_auto_errors": light_errors,
        "ai_accuracy": round(sum(correct) / n, 4),
        "ece": round(_ece(conf, correct), 4),
        "reviewer_minutes": round(minutes, 1),
    }


def _summary(blocks: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    first, last = blocks[0], blocks[-1]
    per100_first = first["reviewer_minutes"] / first["items"] * 100
    per100_last = last["reviewer_minutes"] / last["items"] * 100
    return {
        "first_block_minutes_per_100": round(per100_first, 1),
        "last_block_minutes_per_100": round(per100_last, 1),
        "minutes_ratio_last_to_first": round(per100_last / per100_first, 3)
        if per100_first
        else None,
        "last_block_light_or_auto_share": round(
            last["levels"]["light"] + last["levels"]["auto"], 4
        ),
        "last_block_light_or_auto_error_rate": last["light_or_auto_error_rate"],
        "total_reviewer_minutes": round(sum(b["reviewer_minutes"] for b in blocks), 1),
        "wall_seconds": round(seconds, 1),
    }


def format_block(b: dict[str, Any]) -> str:
    lv = b["levels"]
    return (
        f"{b['seen']:>7} {lv['auto']:>6.1%} {lv['light']:>6.1%} {lv['full']:>6.1%} "
        f"{lv['manual']:>7.1%} {b['ai_accuracy']:>7.1%} {b['light_or_auto_error_rate']:>8.2%} "
        f"{b['ece']:>6.3f} {b['reviewer_minutes']:>8.1f}"
    )


HEADER = "  items   auto  light   full  manual  AI acc  lt/auto err   ECE  minutes"


def write_report(path: Path, result: dict[str, Any]) -> None:
    path.write_text(json.dumps(result, indent=2))
