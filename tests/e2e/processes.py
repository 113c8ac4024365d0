"""Start the real `hitl` command as OS processes and stop them cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

HITL = str(Path(sys.executable).with_name("hitl"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Processes:
    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = {**os.environ, **env}
        self.log_dir = log_dir
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def run(self, name: str, *args: str, timeout: float = 120) -> str:
        out = subprocess.run(
            [HITL, *args], env=self.env, capture_output=True, timeout=timeout, check=False
        )
        text = out.stdout.decode() + out.stderr.decode()
        assert out.returncode == 0, f"`hitl {' '.join(args)}` failed:\n{text}"
        return text

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"{name}.log", "wb")
        proc = subprocess.Popen(
            [HITL, *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append((name, proc))
        return proc

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.log_dir.glob("*.log"))
        )

    def wait_http(self, url: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, p in self.procs:
                if p.poll() is not None:
                    raise AssertionError(f"{name} exited early with {p.returncode}\n{self.logs()}")
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{url} did not answer within {timeout}s\n{self.logs()}")

    def stop(self) -> None:
        for _, p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for _, p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


@contextmanager
def hitl_up(tmp_path: Path) -> Iterator[tuple[str, Processes]]:
    """`hitl up` as a process on a free port with its own SQLite data directory, the tests'
    admin password and API key, and no demo items; yields its base URL once it is ready."""
    from tests.support import ADMIN_PASSWORD, API_KEY

    port = free_port()
    procs = Processes(
        {
            "HITL_BOOTSTRAP_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "HITL_BOOTSTRAP_API_KEY": API_KEY,
            "HITL_DATABASE_URL": "",
            "HITL_DEMO_ITEMS": "false",
            "HITL_DATA_DIR": str(tmp_path / "data"),
        },
        tmp_path,
    )
    procs.start("up", "up", "--port", str(port))
    base = f"http://127.0.0.1:{port}"
    try:
        procs.wait_http(f"{base}/readyz")
        yield base, procs
    finally:
        procs.stop()
