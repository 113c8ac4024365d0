"""`hitl up` as a real process: one port, SQLite, in-process queue, local AI."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.e2e.flow import whole_loop
from tests.e2e.processes import Processes, free_port
from tests.support import ADMIN_PASSWORD, API_KEY

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


async def test_hitl_up_runs_the_whole_loop(tmp_path: Path) -> None:
    port = free_port()
    procs = Processes(
        {
            "HITL_BOOTSTRAP_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "HITL_BOOTSTRAP_API_KEY": API_KEY,
            "HITL_WEBHOOK_SECRET": SECRET,
            "HITL_SWEEP_INTERVAL_SECONDS": "1",
            "HITL_DATABASE_URL": "",
        },
        tmp_path,
    )
    data_dir = tmp_path / "data"
    procs.start("up", "up", "--port", str(port), "--data-dir", str(data_dir))
    base = f"http://127.0.0.1:{port}"
    try:
        procs.wait_http(f"{base}/readyz")
        await whole_loop(base, base, base, SECRET)
        metrics = httpx.get(f"{base}/metrics").text
        assert "hitl_review_decisions_total{level=" in metrics
        assert "hitl_webhook_deliveries_total" in metrics
    finally:
        procs.stop()
    assert (data_dir / "hitl.sqlite3").exists()


async def test_fresh_data_dir_prints_credentials_once(tmp_path: Path) -> None:
    port = free_port()
    procs = Processes({"HITL_DATABASE_URL": ""}, tmp_path)
    procs.start("up", "up", "--port", str(port), "--data-dir", str(tmp_path / "d"))
    try:
        procs.wait_http(f"http://127.0.0.1:{port}/readyz")
    finally:
        procs.stop()
    log = (tmp_path / "up.log").read_text()
    assert "Sign in as:  admin / " in log
    assert "API key:     hitl_" in log
    key = log.split("API key:     ")[1].split()[0]
    # Restart on the same data: the data survives and no new credentials are printed.
    procs2 = Processes({"HITL_DATABASE_URL": ""}, tmp_path / "second")
    (tmp_path / "second").mkdir()
    procs2.start("up", "up", "--port", str(port), "--data-dir", str(tmp_path / "d"))
    try:
        procs2.wait_http(f"http://127.0.0.1:{port}/readyz")
        r = httpx.get(
            f"http://127.0.0.1:{port}/v1/workflows", headers={"Authorization": f"Bearer {key}"}
        )
        assert r.status_code == 200
    finally:
        procs2.stop()
    assert "API key:" not in (tmp_path / "second" / "up.log").read_text()


async def test_accepted_items_survive_a_crash(tmp_path: Path) -> None:
    """SIGKILL right after accepting items: after a restart every one of them is processed."""
    import os
    import signal

    from tests.support import wait_for

    port = free_port()
    env = {
        "HITL_BOOTSTRAP_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "HITL_BOOTSTRAP_API_KEY": API_KEY,
        "HITL_SWEEP_INTERVAL_SECONDS": "1",
        "HITL_STUCK_AFTER_SECONDS": "1",
        "HITL_DATABASE_URL": "",
        "HITL_DEMO_ITEMS": "false",
    }
    data_dir = tmp_path / "data"
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {API_KEY}"}
    first = Processes(env, tmp_path)
    proc = first.start("up", "up", "--port", str(port), "--data-dir", str(data_dir))
    ids = []
    try:
        first.wait_http(f"{base}/readyz")
        with httpx.Client(base_url=base, headers=headers) as api:
            for n in range(30):
                r = api.post(
                    "/v1/items",
                    json={"workflow": "support-triage", "input": {"body": f"ticket {n}"}},
                )
                assert r.status_code == 202
                ids.append(r.json()["id"])
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # no clean shutdown: in-memory queue lost
        proc.wait()
    (tmp_path / "again").mkdir()
    second = Processes(env, tmp_path / "again")
    second.start("up", "up", "--port", str(port), "--data-dir", str(data_dir))
    try:
        second.wait_http(f"{base}/readyz")
        async with httpx.AsyncClient(base_url=base, headers=headers) as api:

            async def all_in_review() -> bool:
                for item_id in ids:
                    r = await api.get(f"/v1/items/{item_id}")
                    if r.json()["status"] != "in_review":
                        return False
                return True

            await wait_for(all_in_review, timeout=60, what="every accepted item to be processed")
    finally:
        second.stop()
