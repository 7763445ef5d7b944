"""CPU accounting of bench/serving.py (psutil): each server process's user + system seconds around
a measured window, the whole machine's busy seconds, and a gate that waits for a quiet machine."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

# Ray's workers retitle themselves `ray::<actor class>.<method>`: Serve's actors by role.
RAY_TITLES = {"ServeReplica": "replicas", "ProxyActor": "proxy", "ServeController": "controller"}
# Figures under this many CPU seconds are left out of the per-process lists.
NEGLIGIBLE_S = 0.005
CORES = os.cpu_count() or 1

# pid -> (short name, user + system seconds)
Snapshot = dict[int, tuple[str, float]]


def process_name(process: psutil.Process) -> str:
    """Short names: Serve's actors by role, Ray's other workers by title, scripts by file name."""
    try:
        argv = process.cmdline()
    except psutil.Error:
        return "?"
    first = argv[0].strip() if argv else ""
    if first.startswith("ray::"):
        title = first.split()[0].removeprefix("ray::").split(".")[0]
        return next((v for k, v in RAY_TITLES.items() if title.startswith(k)), title)
    if "python" in Path(first).name:
        for i, arg in enumerate(argv[1:], start=1):
            if arg == "-m" and i + 1 < len(argv):
                return argv[i + 1]
            if arg.endswith(".py"):
                return Path(arg).name
    return Path(first).name or process.name()


def cpu_seconds(process: psutil.Process) -> float | None:
    """User + system seconds of a process (None once it is gone)."""
    try:
        times = process.cpu_times()
    except psutil.Error:
        return None
    return times.user + times.system


def snapshot(processes: Sequence[psutil.Process]) -> Snapshot:
    """Name and CPU seconds of each process still running."""
    taken: Snapshot = {}
    for process in processes:
        cpu = cpu_seconds(process)
        if cpu is not None:
            taken[process.pid] = (process_name(process), cpu)
    return taken


def used_by_name(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """CPU seconds used between two snapshots, summed by process name (processes in both)."""
    used: dict[str, float] = {}
    for pid, (name, cpu) in after.items():
        if pid in before:
            used[name] = used.get(name, 0.0) + cpu - before[pid][1]
    return used


def rounded(used: dict[str, float]) -> dict[str, float]:
    """The non-negligible figures of `used_by_name`, by name, rounded to milliseconds."""
    return {k: round(v, 3) for k, v in sorted(used.items()) if v > NEGLIGIBLE_S}


def machine_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, summed over its cores."""
    times = psutil.cpu_times()
    # As psutil.cpu_percent counts them: guest time is already inside user time, iowait is idle.
    total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    idle = times.idle + getattr(times, "iowait", 0.0)
    return total - idle, total


@dataclass
class Window:
    """CPU used between `open` and `close`: by the given processes, and by the whole machine."""

    processes: Sequence[psutil.Process]
    before: Snapshot = field(default_factory=dict)
    after: Snapshot = field(default_factory=dict)
    machine_before: tuple[float, float] = (0.0, 0.0)
    machine_after: tuple[float, float] = (0.0, 0.0)

    def open(self) -> None:
        self.machine_before = machine_seconds()
        self.before = snapshot(self.processes)

    def close(self) -> None:
        self.after = snapshot(self.processes)
        self.machine_after = machine_seconds()

    @property
    def closed(self) -> bool:
        return bool(self.after)

    def by_name(self) -> dict[str, float]:
        return used_by_name(self.before, self.after)

    def machine_cpu_s(self) -> float:
        return self.machine_after[0] - self.machine_before[0]

    def machine_busy_cores(self) -> float:
        total = self.machine_after[1] - self.machine_before[1]
        return self.machine_cpu_s() / total * CORES if total else 0.0


def idle_cpu(processes: Callable[[], list[psutil.Process]], seconds: float) -> dict[str, Any]:
    """CPU the processes use with no requests at all (controller loops, metrics, health checks)."""
    window = Window(processes())
    window.open()
    time.sleep(seconds)
    window.close()
    used = window.by_name()
    return {
        "seconds": seconds,
        "cores": round(sum(used.values()) / seconds, 3),
        "by_process": rounded(used),
    }


class QuietGate:
    """Before a measurement, wait until other work on the machine (other sessions share it) uses
    under `threshold_cores`, spending at most `budget_s` waiting over the whole run."""

    def __init__(self, budget_s: float, threshold_cores: float = 0.3) -> None:
        self.budget_s = budget_s
        self.threshold_cores = threshold_cores
        self.waited_s = 0.0

    def wait(self) -> float | None:
        """Busy cores of the last 1 s window before the measurement (None: no budget, no wait)."""
        if self.budget_s <= 0:
            return None
        while True:
            cores = psutil.cpu_percent(interval=1.0) / 100 * CORES
            if cores < self.threshold_cores or self.waited_s >= self.budget_s:
                return round(cores, 2)
            self.waited_s += 1.0
