"""Claim and decide under a deep queue: 1,000,000 open review tasks on PostgreSQL.

Run by hand (not part of the test suite):

    uv run python benchmarks/review_claim.py [--tasks 1000000] [--seconds 60]
        [--report-every 60] [--reviewers 1,16] [--filtered] [--proposed-indexes] [--keep]

It builds a throw-away database with the migrations, bulk-loads the tasks (with their items,
AI results and routing decisions) in a few INSERT ... SELECT generate_series statements, then
calls the review UI's own functions through a unit of work, as its HTTP endpoints do:

- "claim next item": `claims.claim_next` + commit (POST /queue/start, and the claim inside
  every decision's redirect to the next item);
- "submit decision and load next": `load_context` + `decide` (approve) + commit, then
  `claim_next` + commit, then `load_context` of the next task (POST .../decide plus the
  GET of the next review page, without the HTML rendering).

For 1 and for 16 concurrent reviewers it prints p50/p99 of both per reporting interval (to
show whether they decay as claimed and decided rows pile up) and overall, plus decision
cycles per second. `--filtered` claims from one workflow + level queue instead of "all
queues" (the inbox's Start reviewing button); `--proposed-indexes` adds the indexes this
benchmark recommends to the throw-away database first, to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hitl_review_ui import claims
from hitl_review_ui.decisions import decide, load_context
from hitl_shared.db.engine import create_engine, create_sessionmaker
from hitl_shared.db.migrate import upgrade
from hitl_shared.work import unit_of_work
from hitl_shared.workflows.config import DEMO_DIR, load_workflow_file

PG_ADMIN = os.environ.get("HITL_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
LOCK_SECONDS = 600
LEVELS = ("light", "full", "manual")

# What this benchmark proposes for migration 0002 (see the report printed at the end).
PROPOSED_INDEXES = [
    # ORDER BY priority DESC, created_at: a plain ascending index cannot give this mixed order,
    # so every claim sorted all open rows of the queue.
    "CREATE INDEX ix_review_tasks_open_next ON review_tasks "
    "(workflow_id, level, priority DESC, created_at) WHERE status = 'open'",
    # "Start reviewing" claims across every queue: the same order without the queue columns.
    "CREATE INDEX ix_review_tasks_open_any ON review_tasks "
    "(priority DESC, created_at) WHERE status = 'open'",
    # The reviewer's held task, looked up before every claim; also the lock-expiry sweep.
    "CREATE INDEX ix_review_tasks_claimed_by ON review_tasks "
    "(claimed_by, claimed_at) WHERE status = 'claimed'",
]


class NullQueue:
    """Jobs (feedback, webhooks) are not part of what is measured."""

    async def enqueue(self, job: str, arg: str) -> None:
        return None

    async def enqueue_many(self, jobs: list[tuple[str, str]]) -> None:
        return None

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None


def load(dsn: str, tasks: int, reviewers: int) -> tuple[uuid.UUID, list[uuid.UUID]]:
    config, source = load_workflow_file(DEMO_DIR / "support-triage.yaml")
    wf_id = uuid.uuid4()
    user_ids = [uuid.uuid4() for _ in range(reviewers)]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO workflows (id, name, description, task_type, current_version, enabled,"
            " created_at, updated_at) VALUES (%s, 'support-triage', '', 'classify', 1, true,"
            " now(), now())",
            (wf_id,),
        )
        conn.execute(
            "INSERT INTO workflow_versions (id, workflow_id, version, config, source, created_by,"
            " created_at) VALUES (gen_random_uuid(), %s, 1, %s, %s, 'bench', now())",
            (wf_id, json.dumps(config.public_config()), source),
        )
        for n, uid in enumerate(user_ids):
            conn.execute(
                "INSERT INTO users (id, username, display_name, password_hash, role, is_active,"
                " failed_logins, created_at) VALUES (%s, %s, '', 'x', 'reviewer', true, 0, now())",
                (uid, f"bench{n}"),
            )
        t0 = time.perf_counter()
        conn.execute(
            "CREATE UNLOGGED TABLE bench_ids AS SELECT g AS n, gen_random_uuid() AS id,"
            " now() - make_interval(secs => %s - g) AS at FROM generate_series(1, %s) g",
            (tasks, tasks),
        )
        conn.execute(
            "INSERT INTO items (id, workflow_id, workflow_version, input, priority, status,"
            " is_demo, created_at, updated_at) SELECT id, %s, 1, jsonb_build_object("
            "'subject', 'Ticket ' || n,"
            " 'body', repeat('My parcel has not arrived yet. ', 1 + mod(n, 12))"
            "), (mod(n, 4)) * 10, 'in_review', false, at, at FROM bench_ids",
            (wf_id,),
        )
        conn.execute(
            "INSERT INTO ai_results (id, item_id, output, raw_confidence, confidence, provider,"
            " model, prompt_version, latency_ms, flags, created_at) SELECT gen_random_uuid(), id,"
            " jsonb_build_object('label', (ARRAY['billing','technical','account','shipping'])"
            "[1 + mod(n, 4)]), 0.9, 0.9, 'local', 'bench', '', 1, '[]'::jsonb, at FROM bench_ids"
        )
        conn.execute(
            "INSERT INTO routing_decisions (id, item_id, level, reason, rule, confidence,"
            " policy_version, created_at) SELECT gen_random_uuid(), id,"
            " (ARRAY['light','full','manual'])[1 + mod(n, 3)], 'bench', 'threshold', 0.9, 1, at"
            " FROM bench_ids"
        )
        # Priorities 0/10/20/30 and three levels: several queues, ties within each priority.
        conn.execute(
            "INSERT INTO review_tasks (id, item_id, workflow_id, level, status, priority,"
            " created_at) SELECT gen_random_uuid(), id, %s,"
            " (ARRAY['light','full','manual'])[1 + mod(n, 3)], 'open', (mod(n, 4)) * 10, at"
            " FROM bench_ids",
            (wf_id,),
        )
        conn.execute("DROP TABLE bench_ids")
        loaded = time.perf_counter() - t0
        t0 = time.perf_counter()
        conn.execute("VACUUM ANALYZE")
        print(
            f"loaded {tasks:,} open tasks (+ items, AI results, routing) in {loaded:.1f} s; "
            f"VACUUM ANALYZE {time.perf_counter() - t0:.1f} s",
            flush=True,
        )
    return wf_id, user_ids


@dataclass
class Samples:
    claim: list[float] = field(default_factory=list)  # ms
    submit: list[float] = field(default_factory=list)  # POST decide: decide, commit, claim next
    page: list[float] = field(default_factory=list)  # GET the next task's review page
    cycle: list[float] = field(default_factory=list)  # ms
    cycles: int = 0


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def reviewer_loop(
    sessionmaker: async_sessionmaker[AsyncSession],
    reviewer_id: uuid.UUID,
    workflow: str | None,
    level: str | None,
    stop_at: float,
    buckets: list[Samples],
    started: float,
    every: float,
) -> None:
    queue = NullQueue()

    async def claim(session_work: Any) -> uuid.UUID | None:
        t0 = time.perf_counter()
        task_id = await claims.claim_next(
            session_work.session, reviewer_id, workflow, level, LOCK_SECONDS
        )
        await session_work.commit()
        bucket(t0).claim.append((time.perf_counter() - t0) * 1000)
        return task_id

    def bucket(t: float) -> Samples:
        return buckets[min(len(buckets) - 1, int((t - started) // every))]

    async with unit_of_work(sessionmaker, queue) as work:  # type: ignore[arg-type]
        task_id = await claim(work)
    while task_id is not None and time.perf_counter() < stop_at:
        t0 = time.perf_counter()
        async with unit_of_work(sessionmaker, queue) as work:  # type: ignore[arg-type]
            ctx = await load_context(work.session, task_id)
            assert ctx is not None
            action = "edit" if ctx.task.level == "manual" else "approve"
            label = ctx.ai_label if action == "edit" else None
            await decide(work, ctx, reviewer_id, "bench", action, label, None, "", 5000)
            await work.commit()
            task_id = await claim(work)
            t1 = time.perf_counter()
            if task_id is not None:
                nxt = await load_context(work.session, task_id)
                assert nxt is not None
        t2 = time.perf_counter()
        b = bucket(t0)
        b.submit.append((t1 - t0) * 1000)
        b.page.append((t2 - t1) * 1000)
        b.cycle.append((time.perf_counter() - t0) * 1000)
        b.cycles += 1


async def run_phase(
    url: str, user_ids: list[uuid.UUID], n: int, seconds: float, every: float, filtered: bool
) -> None:
    engine = create_engine(url, application_name="hitl-bench", pool_size=n + 2)
    sessionmaker = create_sessionmaker(engine)
    buckets = [Samples() for _ in range(max(1, int(seconds // every) + 1))]
    started = time.perf_counter()
    stop_at = started + seconds
    await asyncio.gather(
        *[
            reviewer_loop(
                sessionmaker,
                user_ids[i],
                "support-triage" if filtered else None,
                LEVELS[i % 2] if filtered else None,
                stop_at,
                buckets,
                started,
                every,
            )
            for i in range(n)
        ]
    )
    elapsed = time.perf_counter() - started
    await engine.dispose()
    print(
        f"\n== {n} reviewer(s), {seconds:.0f} s, {'one queue each' if filtered else 'all queues'}"
    )
    print(
        f"{'interval':>10} {'claim p50':>10} {'claim p99':>10} {'submit p50':>10} "
        f"{'submit p99':>10} {'page p50':>9} {'page p99':>9} {'cycle p50':>10} "
        f"{'cycle p99':>10} {'cycles/s':>9}"
    )
    for i, b in enumerate(buckets):
        if not b.cycle and not b.claim:
            continue
        span = min(every, elapsed - i * every)
        print(
            f"{f'{i * every:.0f}-{i * every + span:.0f}s':>10} {pct(b.claim, 0.5):10.2f} "
            f"{pct(b.claim, 0.99):10.2f} {pct(b.submit, 0.5):10.2f} {pct(b.submit, 0.99):10.2f} "
            f"{pct(b.page, 0.5):9.2f} {pct(b.page, 0.99):9.2f} "
            f"{pct(b.cycle, 0.5):10.2f} {pct(b.cycle, 0.99):10.2f} "
            f"{b.cycles / span if span > 0 else 0:9.1f}",
            flush=True,
        )
    claim = [x for b in buckets for x in b.claim]
    cycle = [x for b in buckets for x in b.cycle]
    submit = [x for b in buckets for x in b.submit]
    page = [x for b in buckets for x in b.page]
    cycles = sum(b.cycles for b in buckets)
    print(
        f"{'overall':>10} {pct(claim, 0.5):10.2f} {pct(claim, 0.99):10.2f} "
        f"{pct(submit, 0.5):10.2f} {pct(submit, 0.99):10.2f} "
        f"{pct(page, 0.5):9.2f} {pct(page, 0.99):9.2f} "
        f"{pct(cycle, 0.5):10.2f} {pct(cycle, 0.99):10.2f} {cycles / elapsed:9.1f}"
        f"   (ms; {len(claim):,} claims, {cycles:,} decisions, mean cycle "
        f"{statistics.fmean(cycle) if cycle else float('nan'):.2f} ms)",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=1_000_000)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--report-every", type=float, default=60.0)
    ap.add_argument("--reviewers", default="1,16", help="comma-separated concurrency levels")
    ap.add_argument("--filtered", action="store_true", help="claim from one queue, not all")
    ap.add_argument("--proposed-indexes", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = ap.parse_args()
    levels = [int(x) for x in args.reviewers.split(",")]

    db = f"hitl_bench_claim_{uuid.uuid4().hex[:8]}"
    base = PG_ADMIN.rsplit("/", 1)[0]
    dsn = f"{base}/{db}"
    url = dsn.replace("postgresql://", "postgresql+asyncpg://")
    admin = psycopg.connect(PG_ADMIN, autocommit=True)
    admin.execute(f'CREATE DATABASE "{db}"')
    try:

        async def migrate() -> None:
            engine = create_engine(url)
            await upgrade(engine)
            await engine.dispose()

        asyncio.run(migrate())
        _, user_ids = load(dsn, args.tasks, max(levels))
        if args.proposed_indexes:
            with psycopg.connect(dsn, autocommit=True) as conn:
                for ddl in PROPOSED_INDEXES:
                    conn.execute(ddl)
                conn.execute("ANALYZE review_tasks")
            print("with the proposed indexes:\n  " + ";\n  ".join(PROPOSED_INDEXES))
        with psycopg.connect(dsn, autocommit=True) as conn:
            row = conn.execute("SELECT version()").fetchone()
            print(row[0] if row else "", flush=True)
        for n in levels:
            asyncio.run(run_phase(url, user_ids, n, args.seconds, args.report_every, args.filtered))
            with psycopg.connect(dsn, autocommit=True) as conn:
                row = conn.execute(
                    "SELECT count(*) FILTER (WHERE status = 'open'), count(*) FILTER "
                    "(WHERE status = 'done'), n_dead_tup FROM review_tasks, pg_stat_user_tables "
                    "WHERE relname = 'review_tasks' GROUP BY n_dead_tup"
                ).fetchone()
                print(f"   after: open {row[0]:,}, done {row[1]:,}, dead tuples {row[2]:,}")
    finally:
        if not args.keep:
            admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        admin.close()


if __name__ == "__main__":
    main()
