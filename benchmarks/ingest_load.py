"""Ingest throughput: `hitl serve ingest` on PostgreSQL + Redis under wrk at 64 connections.

Run by hand (not part of the test suite):

    uv run python benchmarks/ingest_load.py [--workers 2] [--seconds 20] [--connections 64]

It creates a throw-away database, runs `hitl migrate`, starts the ingest service, drives it
with wrk, then checks that every accepted item is committed in PostgreSQL and has its
process_item job in Redis (no processor runs during the benchmark, so jobs stay queued).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import redis
from diskprobe import DiskProbe, summary

HERE = Path(__file__).resolve().parent
HITL = str(Path(sys.executable).with_name("hitl"))
PG_ADMIN = os.environ.get("HITL_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("HITL_TEST_REDIS", "redis://127.0.0.1:6379/0")
KEY = "hitl_bench_" + "k" * 40


def parse_ms(value: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", value.strip())
    assert m, value
    n, unit = float(m.group(1)), m.group(2)
    return n / 1000 if unit == "us" else n * 1000 if unit == "s" else n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--port", type=int, default=18001)
    args = ap.parse_args()

    db = f"hitl_bench_{uuid.uuid4().hex[:8]}"
    prefix = f"hitl-bench-{uuid.uuid4().hex[:6]}"
    admin = psycopg.connect(PG_ADMIN, autocommit=True)
    admin.execute(f'CREATE DATABASE "{db}"')
    base = PG_ADMIN.rsplit("/", 1)[0]
    env = {
        **os.environ,
        "HITL_DATABASE_URL": f"{base.replace('postgresql://', 'postgresql+asyncpg://')}/{db}",
        "HITL_REDIS_URL": REDIS_URL,
        "HITL_QUEUE_PREFIX": prefix,
        "HITL_BOOTSTRAP_API_KEY": KEY,
        "HITL_BOOTSTRAP_ADMIN_PASSWORD": "bench-admin-password",
        "HITL_DEMO_ITEMS": "false",
        "HITL_BENCH_KEY": KEY,
        "HITL_BENCH_RUN": "run",
    }
    server = None
    try:
        subprocess.run([HITL, "migrate"], env=env, check=True, capture_output=True)
        server = subprocess.Popen(
            [
                HITL,
                "serve",
                "ingest",
                "--port",
                str(args.port),
                "--host",
                "127.0.0.1",
                "--workers",
                str(args.workers),
            ],
            env=env,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{args.port}"
        for _ in range(100):
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        # Warm-up: fill caches and connection pools in every worker process.
        subprocess.run(
            ["wrk", "-t2", "-c16", "-d3s", "-s", str(HERE / "ingest_post.lua"), url],
            env={**env, "HITL_BENCH_RUN": "warmup"},
            check=True,
            capture_output=True,
        )
        with psycopg.connect(f"{base}/{db}") as conn:
            before = conn.execute("SELECT count(*) FROM items").fetchone()[0]  # type: ignore[index]
        r = redis.Redis.from_url(REDIS_URL)
        queue_key = f"{prefix}:queue:processor"
        queued_before = r.zcard(queue_key)

        with DiskProbe() as probe:
            out = subprocess.run(
                [
                    "wrk",
                    "-t2",
                    f"-c{args.connections}",
                    f"-d{args.seconds}s",
                    "--latency",
                    "-s",
                    str(HERE / "ingest_post.lua"),
                    url,
                ],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        errors = int(non2xx.group(1)) if non2xx else 0
        sock = re.search(r"Socket errors: (.*)", out)
        lat = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", out, re.MULTILINE))
        with psycopg.connect(f"{base}/{db}") as conn:
            after = conn.execute("SELECT count(*) FROM items").fetchone()[0]  # type: ignore[index]
        queued = r.zcard(queue_key) - queued_before
        accepted = total - errors
        print(out)
        print(f"workers={args.workers} connections={args.connections} seconds={args.seconds}")
        print(f"accepted items/s : {accepted / args.seconds:,.0f}")
        print(f"latency p50 / p99: {parse_ms(lat['50']):.1f} ms / {parse_ms(lat['99']):.1f} ms")
        print(f"non-2xx responses: {errors}; socket errors: {sock.group(1) if sock else 'none'}")
        print(summary([ms for _, ms in probe.samples]))
        print(f"committed in PostgreSQL: {after - before} (accepted {accepted})")
        print(f"enqueued in Redis      : {queued}")
        ok = after - before >= accepted and queued >= accepted
        print("every accepted item committed and enqueued:", "yes" if ok else "NO")
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=20)
        admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        r2 = redis.Redis.from_url(REDIS_URL)
        for k in r2.scan_iter(f"{prefix}:*"):
            r2.delete(k)


if __name__ == "__main__":
    main()
