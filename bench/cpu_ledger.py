"""Who used the machine's CPU during a timed run: the driver, the stage actors, Ray's other workers,
Ray's own processes and everything else, from every process's CPU time sampled twice a second.

A benchmark that compares a run inside Ray with the same work in process needs to know whether
the work itself got slower (more CPU seconds for the same frames) or got less of the cores (Ray's
processes or others took them), and the machine's idle time says whether cores were left unused.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter

import psutil

GROUPS = (
    ("stage actors", ("ChainActor",)),
    ("raylet", ("raylet",)),
    ("gcs", ("gcs_server",)),
    ("ray agents", ("dashboard", "agent", "log_monitor", "monitor.py")),
    ("other ray workers", ("ray::", "default_worker.py")),
)


def group_of(pid: int, cmdline: list[str], driver: int) -> str:
    if pid == driver:
        return "driver"
    text = " ".join(cmdline)
    return next((name for name, marks in GROUPS if any(m in text for m in marks)), "other processes")


class CpuLedger:
    """`with CpuLedger() as ledger: ...` then `ledger.report()`; CPU seconds by group."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.seconds: Counter[str] = Counter()
        self.kernel: Counter[str] = Counter()  # the part of `seconds` spent in the kernel
        self._last: dict[tuple[int, float], tuple[float, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._driver = os.getpid()

    def _sample(self) -> None:
        for proc in psutil.process_iter(["pid", "cmdline", "create_time", "cpu_times"]):
            info = proc.info
            times = info["cpu_times"]
            if times is None:
                continue
            key, now = (info["pid"], info["create_time"]), (times.user + times.system, times.system)
            used, kernel = self._last.get(key, now)
            group = group_of(info["pid"], info["cmdline"] or [], self._driver)
            self.seconds[group] += now[0] - used
            self.kernel[group] += now[1] - kernel
            self._last[key] = now

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> CpuLedger:
        self._sample()
        self._busy, self._steal = _busy(), _steal()
        self._wall = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.wall = time.perf_counter() - self._wall
        self.busy = _busy() - self._busy
        self.steal = _steal() - self._steal

    def report(self) -> str:
        cores = psutil.cpu_count() or 1
        parts = [
            f"{name} {s:.1f} ({self.kernel[name]:.1f} kernel)" for name, s in self.seconds.most_common() if s >= 0.05
        ]
        idle = cores * self.wall - self.busy
        head = f"CPU s over {self.wall:.1f} s wall x {cores} cores: "
        return head + ", ".join(parts) + f"; machine idle {idle:.1f}, stolen {self.steal:.1f}"


def _busy() -> float:
    t = psutil.cpu_times()
    return t.user + t.system + getattr(t, "nice", 0.0) + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)


def _steal() -> float:
    """Time the hypervisor gave this VM's vCPUs to others (0 where not reported)."""
    return getattr(psutil.cpu_times(), "steal", 0.0)
