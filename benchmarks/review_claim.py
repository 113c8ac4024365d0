"""Claim and decide under a deep queue: 1,000,000 open review tasks on PostgreSQL.

Run by hand (not part of the test suite):

    uv run python benchmarks/review_claim.py [--tasks 1000000] [--seconds 60]
        [--report-every 60] [--reviewers 1,16] [--filtered] [--think-ms 0]
        [--keep | --database NAME]

It builds a throw-away database with the migrations, bulk-loads the tasks (with their items,
AI results and routing decisions) in a few INSERT ... SELECT generate_series statements, then
calls the review UI's own functions through a unit of work, as its HTTP endpoints do:

- "claim next item": `claims.claim` (what `claim_next` runs) + commit (POST /queue/start, and
  the claim inside every decision's redirect to the next item);
- "submit decision and load next": `load_context` + `decide` (approve) + the claim of the
  next task + commit (POST .../decide: one transaction), then `load_context` of the next task
  in a transaction of its own (the GET of the next review page, without the HTML rendering).

For 1 and for 16 concurrent reviewers it prints, per reporting interval (to show whether they
decay as claimed and decided rows pile up) and overall, p50/p99 of:

- claim srv: the time PostgreSQL itself spent on the claim statement (`clock_timestamp() -
  statement_timestamp()` returned by the statement: lock waits and rows skipped under
  concurrency included; its FK check trigger and the commit not);
- claim wall: the claim statement and its commit as this client saw them. All reviewers are
  coroutines of this one Python process (as they would be requests of one review UI process),
  so on a small machine this includes waiting for the event loop while other reviewers' Python
  runs: compare with the loop lag and the CPU figures printed after each table;
- submit, page, cycle (wall) and decision cycles per second;
- fsync p50/max: a probe thread writes 8 KiB and fdatasyncs it every 100 ms on the disk the
  database is on (`HITL_BENCH_PROBE_DIR`, default /var/tmp): the wait every durable commit
  has at its core. When the disk stalls, every commit queues behind it, whatever the code.

After each phase: the client's CPU (one core at most) and PostgreSQL's (the benchmark's
backends, read from /proc when the server runs on this machine) per cycle, and the event-loop
lag (how late a 5 ms timer fires: the queueing every await of every reviewer pays). With no
think time the reviewers form a closed loop that saturates the client by design; `--think-ms`
adds a pause after each decision (a human reading the next item; exponentially distributed
with that mean) to measure latency below saturation. `--filtered` claims from one workflow +
level queue instead of "all queues" (the inbox's Start reviewing button). The inbox's queue
summary (`claims.queue_summaries`, uncached) is timed after loading and after each phase.
`--keep` keeps the database; `--database NAME` runs on a kept one (migrated to head first)
instead of loading a new one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import psycopg
import sqlalchemy as sa
from diskprobe import DiskProbe, summary
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hitl_review_ui import claims
from hitl_review_ui.decisions import decide, load_context
from hitl_shared.db.engine import create_engine, create_sessionmaker
from hitl_shared.db.migrate import upgrade
from hitl_shared.runtime import freeze_startup_heap
from hitl_shared.work import unit_of_work
from hitl_shared.workflows.config import DEMO_DIR, load_workflow_file

PG_ADMIN = os.environ.get("HITL_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
LOCK_SECONDS = 600
LEVELS = ("light", "full", "manual")
APP = "hitl-bench"


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
    claim: list[float] = field(default_factory=list)  # wall ms: claim statement + commit
    claim_server: list[float] = field(default_factory=list)  # ms inside PostgreSQL
    submit: list[float] = field(default_factory=list)  # POST decide: decide, commit, claim next
    page: list[float] = field(default_factory=list)  # GET the next task's review page
    cycle: list[float] = field(default_factory=list)  # ms
    cycles: int = 0
    fsync: list[float] = field(default_factory=list)  # ms: the disk probe's 8 KiB write+fsync


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
    think: float,
) -> None:
    queue = NullQueue()

    def bucket(t: float) -> Samples:
        return buckets[min(len(buckets) - 1, int((t - started) // every))]

    async def claim(session_work: Any) -> uuid.UUID | None:
        t0 = time.perf_counter()
        result = await claims.claim(
            session_work.session, reviewer_id, workflow, level, LOCK_SECONDS
        )
        await session_work.commit()
        b = bucket(t0)
        b.claim.append((time.perf_counter() - t0) * 1000)
        if result.server_ms is not None:
            b.claim_server.append(result.server_ms)
        return result.task_id

    if think:
        await asyncio.sleep(random.uniform(0, think))
    async with unit_of_work(sessionmaker, queue) as work:  # type: ignore[arg-type]
        task_id = await claim(work)
    while task_id is not None and time.perf_counter() < stop_at:
        t0 = time.perf_counter()
        async with unit_of_work(sessionmaker, queue) as work:  # type: ignore[arg-type]
            ctx = await load_context(work.session, task_id)
            assert ctx is not None
            action = "edit" if ctx.task.level == "manual" else "approve"
            answer = {"label": ctx.ai_label or ""} if action == "edit" else {}
            await decide(work, ctx, reviewer_id, "bench", action, answer, None, "", 5000)
            task_id = await claim(work)  # commits the decision with the claim, as the POST does
        t1 = time.perf_counter()
        if task_id is not None:
            async with unit_of_work(sessionmaker, queue) as work:  # type: ignore[arg-type]
                nxt = await load_context(work.session, task_id)  # the GET it redirects to
                assert nxt is not None
        t2 = time.perf_counter()
        b = bucket(t0)
        b.submit.append((t1 - t0) * 1000)
        b.page.append((t2 - t1) * 1000)
        b.cycle.append((time.perf_counter() - t0) * 1000)
        b.cycles += 1
        if think:
            # Reading time varies, so reviewers do not move in lockstep: exponential pauses
            # (arrivals as a Poisson process) with the given mean.
            await asyncio.sleep(random.expovariate(1 / think))


async def loop_lag(stop_at: float, lags: list[float]) -> None:
    """How late a 5 ms timer fires: how long a coroutine that is ready waits for the loop."""
    while time.perf_counter() < stop_at:
        t0 = time.perf_counter()
        await asyncio.sleep(0.005)
        lags.append((time.perf_counter() - t0) * 1000 - 5)


def proc_cpu_seconds(pids: list[int]) -> float | None:
    """CPU (user + system) of these processes, if they run on this machine."""
    total = 0
    try:
        for pid in pids:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None
    return total / os.sysconf("SC_CLK_TCK")


async def time_inbox(url: str, runs: int = 5) -> list[float]:
    engine = create_engine(url, application_name=APP)
    sessionmaker = create_sessionmaker(engine)
    times = []
    for _ in range(runs):
        async with sessionmaker() as session:
            t0 = time.perf_counter()
            await claims.queue_summaries(session)
            times.append((time.perf_counter() - t0) * 1000)
    await engine.dispose()
    return times


def print_inbox(when: str, times: list[float]) -> None:
    print(
        f"   inbox {when}: queue_summaries {pct(times, 0.5):.1f} ms p50, "
        f"{max(times):.1f} ms max over {len(times)} (uncached)",
        flush=True,
    )


async def run_phase(
    url: str,
    user_ids: list[uuid.UUID],
    n: int,
    seconds: float,
    every: float,
    filtered: bool,
    think: float,
) -> None:
    engine = create_engine(url, application_name=APP, pool_size=n + 2)
    sessionmaker = create_sessionmaker(engine)
    buckets = [Samples() for _ in range(max(1, int(seconds // every) + 1))]
    lags: list[float] = []
    freeze_startup_heap()  # as the review UI's server process does once it has started
    cpu0 = time.process_time()
    started = time.perf_counter()
    stop_at = started + seconds
    with DiskProbe() as probe:
        await asyncio.gather(
            loop_lag(stop_at, lags),
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
                    think,
                )
                for i in range(n)
            ],
        )
    elapsed = time.perf_counter() - started
    for t, ms in probe.samples:
        buckets[min(len(buckets) - 1, int((t - started) // every))].fsync.append(ms)
    client_cpu = time.process_time() - cpu0
    async with engine.connect() as conn:
        pids = list(
            (
                await conn.execute(
                    sa.text("SELECT pid FROM pg_stat_activity WHERE application_name = :app"),
                    {"app": APP},
                )
            ).scalars()
        )
    server_cpu = proc_cpu_seconds(pids)
    await engine.dispose()
    print(
        f"\n== {n} reviewer(s), {seconds:.0f} s, {'one queue each' if filtered else 'all queues'}"
        + (f", {think * 1000:.0f} ms think time" if think else "")
    )
    print(
        f"{'interval':>10} {'claim srv':>9} {'claim srv':>9} {'claim wall':>10} "
        f"{'claim wall':>10} {'submit':>8} {'submit':>8} {'page':>7} {'page':>7} "
        f"{'cycle':>7} {'cycle':>7} {'cycles/s':>8} {'fsync':>7} {'fsync':>7}\n"
        f"{'':>10} {'p50':>9} {'p99':>9} {'p50':>10} {'p99':>10} {'p50':>8} {'p99':>8} "
        f"{'p50':>7} {'p99':>7} {'p50':>7} {'p99':>7} {'':>8} {'p50':>7} {'max':>7}"
    )

    def row(label: str, b: Samples, span: float) -> str:
        return (
            f"{label:>10} {pct(b.claim_server, 0.5):9.2f} {pct(b.claim_server, 0.99):9.2f} "
            f"{pct(b.claim, 0.5):10.2f} {pct(b.claim, 0.99):10.2f} "
            f"{pct(b.submit, 0.5):8.2f} {pct(b.submit, 0.99):8.2f} "
            f"{pct(b.page, 0.5):7.2f} {pct(b.page, 0.99):7.2f} "
            f"{pct(b.cycle, 0.5):7.2f} {pct(b.cycle, 0.99):7.2f} "
            f"{b.cycles / span if span > 0 else 0:8.1f} "
            f"{pct(b.fsync, 0.5):7.2f} {max(b.fsync, default=float('nan')):7.2f}"
        )

    shown = []
    for i, b in enumerate(buckets):
        span = min(every, elapsed - i * every)
        if not b.cycle or span < every / 2:
            continue  # the few claims in the last instant are in the overall row
        shown.append(b)
        print(row(f"{i * every:.0f}-{i * every + span:.0f}s", b, span), flush=True)
    total = Samples(
        claim=[x for b in buckets for x in b.claim],
        claim_server=[x for b in buckets for x in b.claim_server],
        submit=[x for b in buckets for x in b.submit],
        page=[x for b in buckets for x in b.page],
        cycle=[x for b in buckets for x in b.cycle],
        cycles=sum(b.cycles for b in buckets),
        fsync=[x for b in buckets for x in b.fsync],
    )
    print(row("overall", total, elapsed), flush=True)
    cycles = max(total.cycles, 1)
    print(
        f"   (ms; {len(total.claim):,} claims, {total.cycles:,} decisions, mean cycle "
        f"{statistics.fmean(total.cycle) if total.cycle else float('nan'):.2f} ms)"
    )
    print(f"   {summary(total.fsync)}")
    if len(shown) > 1:
        first, last = shown[0], shown[-1]
        print(
            "   decay, first -> last interval: claim srv p99 "
            f"{pct(first.claim_server, 0.99):.2f} -> {pct(last.claim_server, 0.99):.2f} ms, "
            f"claim wall p99 {pct(first.claim, 0.99):.2f} -> {pct(last.claim, 0.99):.2f} ms, "
            f"cycles/s {first.cycles / every:.1f} -> {last.cycles / every:.1f}"
        )
    server = (
        f"{server_cpu / elapsed:.0%} of a core, {server_cpu / cycles * 1000:.1f} ms/cycle"
        if server_cpu is not None
        else "not readable here"
    )
    print(
        f"   client (this process, one core at most): CPU {client_cpu / elapsed:.0%} of a core, "
        f"{client_cpu / cycles * 1000:.1f} ms/cycle; PostgreSQL backends: {server}; "
        f"event-loop lag p50 {pct(lags, 0.5):.2f} ms, p99 {pct(lags, 0.99):.2f} ms",
        flush=True,
    )


def bench_users(dsn: str) -> list[uuid.UUID]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT id FROM users WHERE username LIKE 'bench%' ORDER BY length(username), username"
        ).fetchall()
    return [r[0] for r in rows]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=1_000_000)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--report-every", type=float, default=60.0)
    ap.add_argument("--reviewers", default="1,16", help="comma-separated concurrency levels")
    ap.add_argument("--filtered", action="store_true", help="claim from one queue, not all")
    ap.add_argument("--think-ms", type=float, default=0.0, help="pause after each decision")
    ap.add_argument("--keep", action="store_true", help="keep the database afterwards")
    ap.add_argument("--database", help="run on this kept database instead of loading one")
    args = ap.parse_args()
    levels = [int(x) for x in args.reviewers.split(",")]

    db = args.database or f"hitl_bench_claim_{uuid.uuid4().hex[:8]}"
    base = PG_ADMIN.rsplit("/", 1)[0]
    dsn = f"{base}/{db}"
    url = dsn.replace("postgresql://", "postgresql+asyncpg://")
    admin = psycopg.connect(PG_ADMIN, autocommit=True)
    if not args.database:
        admin.execute(f'CREATE DATABASE "{db}"')
    try:

        async def migrate() -> None:
            engine = create_engine(url)
            await upgrade(engine)
            await engine.dispose()

        asyncio.run(migrate())
        if args.database:
            user_ids = bench_users(dsn)
            assert len(user_ids) >= max(levels), f"{db} has {len(user_ids)} bench users"
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("ANALYZE review_tasks")
        else:
            # At least 16 reviewers' accounts, so a kept database serves a 16-reviewer run.
            _, user_ids = load(dsn, args.tasks, max(*levels, 16))
        with psycopg.connect(dsn, autocommit=True) as conn:
            row = conn.execute("SELECT version()").fetchone()
            print(row[0] if row else "", flush=True)
            row = conn.execute("SHOW autovacuum").fetchone()
            if row and row[0] != "on":
                # Then the dead entries every claim leaves at the head of the claim index
                # are never vacuumed away: the decay check below is the worst case.
                print("autovacuum is off on this server: nothing is vacuumed during the run")
        print_inbox("before the run", asyncio.run(time_inbox(url)))
        for n in levels:
            asyncio.run(
                run_phase(
                    url,
                    user_ids,
                    n,
                    args.seconds,
                    args.report_every,
                    args.filtered,
                    args.think_ms / 1000,
                )
            )
            with psycopg.connect(dsn, autocommit=True) as conn:
                row = conn.execute(
                    "SELECT count(*) FILTER (WHERE status = 'open'), count(*) FILTER "
                    "(WHERE status = 'done'), n_dead_tup FROM review_tasks, pg_stat_user_tables "
                    "WHERE relname = 'review_tasks' GROUP BY n_dead_tup"
                ).fetchone()
                assert row is not None
                print(f"   after: open {row[0]:,}, done {row[1]:,}, dead tuples {row[2]:,}")
            print_inbox("after", asyncio.run(time_inbox(url)))
    finally:
        if not args.keep and not args.database:
            admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        elif args.keep:
            print(f"kept the database: rerun on it with --database {db}")
        admin.close()


if __name__ == "__main__":
    main()
