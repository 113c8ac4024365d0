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
