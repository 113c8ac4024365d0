"""Routing throughput on PostgreSQL: one router process pinned to one core.

Run by hand (not part of the test suite):

    uv run python benchmarks/router_throughput.py [--items 50000] [--batch 500] [--single 2000]
        [--keep]

It builds a throw-away database with the migrations and the demo workflows (risk rules,
audit samples, batches, canaries and SLAs all switched on as shipped), bulk-loads processed
items with their AI results (a spread of confidences and labels; some VIP and refund tickets
that the risk rules catch), then routes them with the router's own code through a unit of
work, exactly as the router's sweeper does on a backlog: select up to 2,000 waiting ids, call
``route_items`` on chunks of ``--batch``, commit. It prints items/s for that batch path and,
for comparison, for the one-id ``route_item`` job (one transaction per item).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid

import psycopg
import sqlalchemy as sa

from hitl_router.routing import route_item, route_items
from hitl_shared.db.engine import create_engine, create_sessionmaker
from hitl_shared.db.migrate import upgrade
from hitl_shared.db.models import Item, RoutingDecision
from hitl_shared.lifecycle import ItemStatus
from hitl_shared.settings import Settings
from hitl_shared.work import unit_of_work
from hitl_shared.workflows.config import demo_workflow_files, load_workflow_file
from hitl_shared.workflows.store import apply_workflow

PG_ADMIN = os.environ.get("HITL_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


class NullQueue:
    """Wake-ups (webhooks, feedback) are not part of what is measured."""

    async def enqueue(self, job: str, arg: str) -> None:
        return None

    async def enqueue_many(self, jobs: list[tuple[str, str]]) -> None:
        return None

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None


LOAD_SQL = """
WITH wf AS (SELECT id, current_version FROM workflows WHERE name = 'support-triage'),
new AS (
  SELECT gen_random_uuid() AS id, g AS n FROM generate_series(1, %(n)s) AS g
), items AS (
  INSERT INTO items (id, workflow_id, workflow_version, input, priority, status, is_demo,
                     created_at, updated_at)
  SELECT new.id, wf.id, wf.current_version,
         CASE WHEN n %% 20 = 0
              THEN jsonb_build_object('body', 'Please refund me', 'customer_tier', 'vip')
              WHEN n %% 7 = 0 THEN jsonb_build_object('body', 'I want a refund for order ' || n)
              ELSE jsonb_build_object('subject', 'Ticket ' || n,
                                      'body', 'My parcel ' || n || ' is late')
         END,
         0, 'processed', false, now(), now() - interval '1 minute'
  FROM new, wf
  RETURNING id
), scored AS (
  SELECT id, 0.3 + 0.7 * random() AS c FROM items
)
INSERT INTO ai_results (id, item_id, output, raw_confidence, confidence, provider, model,
                        prompt_version, latency_ms, flags, created_at)
SELECT gen_random_uuid(), scored.id,
       jsonb_build_object('label', (ARRAY['billing','technical','account','shipping'])
                                   [1 + (abs(hashtext(scored.id::text)) %% 4)]),
       c, c, 'local', 'bench', '', 1.0, '[]'::jsonb, now()
FROM scored
"""


async def pending_ids(sm: object, limit: int) -> list[uuid.UUID]:
    async with sm() as s:  # type: ignore[operator]
        return list(
            (
                await s.scalars(
                    sa.select(Item.id)
                    .where(Item.status == ItemStatus.PROCESSED.value)
                    .order_by(Item.updated_at)
                    .limit(limit)
                )
            ).all()
        )


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=50_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--single", type=int, default=2_000)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})  # one core for the router process

    name = f"hitl_bench_router_{uuid.uuid4().hex[:6]}"
    admin = psycopg.connect(PG_ADMIN, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    dsn = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    url = dsn.replace("postgresql://", "postgresql+asyncpg://")
    engine = create_engine(url, application_name="hitl-bench-router")
    try:
        await upgrade(engine)
        sm = create_sessionmaker(engine)
        queue = NullQueue()
        async with unit_of_work(sm, queue) as work:  # type: ignore[arg-type]
            for path in demo_workflow_files():
                config, source = load_workflow_file(path)
                await apply_workflow(work.session, config, source)
        with psycopg.connect(dsn, autocommit=True) as conn:
            t0 = time.perf_counter()
            conn.execute(LOAD_SQL, {"n": args.items + args.single})
            conn.execute("VACUUM ANALYZE")
            took = time.perf_counter() - t0
            print(f"loaded {args.items + args.single:,} processed items in {took:.1f} s")

        # The batch path, as the sweeper drains a backlog.
        routed = 0
        t0 = time.perf_counter()
        while routed < args.items:
            ids = await pending_ids(sm, min(2000, args.items - routed))
            if not ids:
                break
            for start in range(0, len(ids), args.batch):
                async with unit_of_work(sm, queue) as work:  # type: ignore[arg-type]
                    routed += await route_items(work, ids[start : start + args.batch])
        batch_seconds = time.perf_counter() - t0
        batch_rate = routed / batch_seconds

        # The one-id job, one transaction per item.
        settings = Settings(environment="test", database_url=url)
        runtime = type("R", (), {"settings": settings})()
        ids = await pending_ids(sm, args.single)
        t0 = time.perf_counter()
        for item_id in ids:
            async with unit_of_work(sm, queue) as work:  # type: ignore[arg-type]
                await route_item(work, runtime, str(item_id))  # type: ignore[arg-type]
        single_seconds = time.perf_counter() - t0

        async with sm() as s:
            levels = (
                await s.execute(
                    sa.select(RoutingDecision.level, sa.func.count()).group_by(
                        RoutingDecision.level
                    )
                )
            ).all()
        print(f"levels: {dict(levels)}")
        print(
            f"batch route_items ({args.batch}/transaction): {routed:,} items in "
            f"{batch_seconds:.2f} s = {batch_rate:,.0f} items/s"
        )
        print(
            f"single route_item job (1/transaction): {len(ids):,} items in "
            f"{single_seconds:.2f} s = {len(ids) / single_seconds:,.0f} items/s"
        )
    finally:
        await engine.dispose()
        if not args.keep:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


if __name__ == "__main__":
    asyncio.run(main())
