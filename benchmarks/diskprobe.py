"""Is the disk stalling? A thread that writes 8 KiB and fdatasyncs it every 100 ms.

Every durable commit waits for such a flush of the write-ahead log, so when the disk stalls
for a few hundred milliseconds (this machine's virtual disk does, now and then), every
request committing in that moment waits as long, whatever the code does. The benchmarks
print this probe beside their latencies so a tail can be told apart from the code's own.

Set HITL_BENCH_PROBE_DIR to a directory on the database's disk (default /var/tmp, which is
on the same disk as PostgreSQL's data here)."""

from __future__ import annotations

import os
import tempfile
import threading
import time


class DiskProbe:
    def __init__(self, every: float = 0.1) -> None:
        self.every = every
        self.samples: list[tuple[float, float]] = []  # (perf_counter at start, ms)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="disk-probe", daemon=True)

    def __enter__(self) -> DiskProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        directory = os.environ.get("HITL_BENCH_PROBE_DIR", "/var/tmp")
        with tempfile.NamedTemporaryFile(dir=directory, prefix="hitl-bench-fsync-") as f:
            block = os.urandom(8192)
            n = 0
            while not self._stop.is_set():
                t0 = time.perf_counter()
                os.pwrite(f.fileno(), block, (n % 128) * 8192)
                os.fdatasync(f.fileno())
                self.samples.append((t0, (time.perf_counter() - t0) * 1000))
                n += 1
                self._stop.wait(self.every)

    def between(self, start: float, end: float) -> list[float]:
        return [ms for t, ms in self.samples if start <= t < end]


def summary(values: list[float], slow_ms: float = 20.0) -> str:
    if not values:
        return "disk probe: no samples"
    values = sorted(values)
    slow = [v for v in values if v > slow_ms]
    return (
        f"disk probe (8 KiB write + fdatasync every 100 ms): p50 {values[len(values) // 2]:.2f} "
        f"ms, max {values[-1]:.0f} ms, {len(slow)} of {len(values)} over {slow_ms:.0f} ms "
        f"(together {sum(slow) / 1000:.1f} s stalled)"
    )
