"""What bench/pipeline.py measures of a command: wall time and peak RSS of its process tree (plus
services it talks to), and how a backfill's run time splits into data code and Dagster's
bookkeeping."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil

PHASE_TIMEOUT_S = 3 * 3600
RSS_SAMPLE_S = 0.2


@dataclass
class Phase:
    """One measured command."""

    name: str
    seconds: float
    peak_rss_gib: float
    output: str


def shared_memory_bytes(pid: int) -> int:
    """The part of a process's RSS that is shared memory (`RssShmem` in /proc/PID/status)."""
    # psutil reports RSS, and shared pages only together with the mapped files (`shared`).
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssShmem:"):
            return int(line.split()[1]) * 1024
    return 0


def tree_rss_bytes(roots: Iterable[psutil.Process]) -> int:
    """RSS of processes and all their descendants, summed (runs side by side, a daemon, a server),
    with shared memory counted once.

    Every PostgreSQL server process maps the server's shared buffers, and each counts the pages it
    touched in its RSS: summed, one segment would count once per process (PgBouncer keeps dozens
    of them alive). The largest process's shared memory is counted once instead."""
    seen: set[int] = set()
    private = 0
    shared = 0
    for root in roots:
        with contextlib.suppress(psutil.NoSuchProcess):
            for process in [root, *root.children(recursive=True)]:
                if process.pid in seen:
                    continue
                seen.add(process.pid)
                # A process that ended between the listing and the reading has no memory left.
                with contextlib.suppress(
                    psutil.NoSuchProcess, FileNotFoundError, ProcessLookupError
                ):
                    shmem = shared_memory_bytes(process.pid)
                    private += process.memory_info().rss - shmem
                    shared = max(shared, shmem)
    return private + shared


# Runs the command and prints the largest RSS any process of its tree reached (the kernel's
# RUSAGE_CHILDREN of this fresh process: exact, but of one process, not of several side by side).
PEAK_WRAPPER = (
    "import resource, subprocess, sys; "
    "code = subprocess.call(sys.argv[1:]); "
    "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
    "sys.exit(code)"
)


def measured(
    name: str,
    command: list[str],
    env: dict[str, str],
    services: Callable[[], list[int]] = list,
) -> Phase:
    """Run a command to the end; its wall time and peak RSS: the larger of the summed RSS of its
    process tree and of the `services` it talks to (PIDs of servers it did not start, such as
    PostgreSQL), sampled every RSS_SAMPLE_S so a short peak can slip between samples, and the
    exact peak of its largest process."""
    began = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-c", PEAK_WRAPPER, *command],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    root = psutil.Process(process.pid)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(RSS_SAMPLE_S):
            others = []
            for pid in services():
                with contextlib.suppress(psutil.NoSuchProcess):
                    others.append(psutil.Process(pid))
            peak = max(peak, tree_rss_bytes([root, *others]))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        output, _ = process.communicate(timeout=PHASE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    finally:
        done.set()
        sampler.join()
    seconds = time.monotonic() - began
    if process.returncode != 0:
        raise RuntimeError(f"{name} failed ({process.returncode}):\n{output[-4000:]}")
    line = next(x for x in output.splitlines() if x.startswith("PEAK_RSS_KB"))
    largest = int(line.split()[1]) * 1024
    phase = Phase(name, seconds, max(peak, largest) / 1024**3, output)
    print(f"{name}: {seconds:.1f} s, peak RSS {phase.peak_rss_gib:.2f} GiB", flush=True)
    return phase


# Reads the runs of the newest backfill from the instance (either storage) and splits their time.
# A run's time: from its launch (RUN_STARTING) to its end. Data code: in each data-layer step,
# what runs between Dagster's events where the project's code holds the thread: loading inputs
# from the warehouse (up to LOADED_INPUT), the asset's computation (up to its first output, check
# or per-day record) and writing its output (up to HANDLED_OUTPUT). The rest is Dagster's
# bookkeeping: launching the run and loading the code, the planned events, each day's
# materialization, data version and check evaluation, and storing every event.
RUN_SPLIT = """
import json, sys
import dagster as dg
from ml_assets.jobs import DATA_LAYER_ASSETS
dagster_home = sys.argv[1]
steps = {asset.op.name for asset in DATA_LAYER_ASSETS}
E = dg.DagsterEventType
FIRST_YIELD = {E.STEP_OUTPUT, E.ASSET_MATERIALIZATION, E.ASSET_CHECK_EVALUATION, E.STEP_FAILURE}
INPUT_OUTPUT = {E.LOADED_INPUT, E.HANDLED_OUTPUT}
with dg.DagsterInstance.from_config(dagster_home) as instance:
    newest = max(instance.get_backfills(), key=lambda b: b.backfill_timestamp)
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": newest.backfill_id}))
    run_s = data_s = 0.0
    events = 0
    for run in runs:
        records = instance.get_records_for_run(run.run_id, limit=None).records
        events += len(records)
        stamps = {r.event_log_entry.dagster_event.event_type: r.event_log_entry.timestamp
                  for r in records if r.event_log_entry.dagster_event}
        begin = stamps.get(E.RUN_STARTING, stamps.get(E.RUN_START))
        end = stamps.get(E.RUN_SUCCESS, stamps.get(E.RUN_FAILURE))
        run_s += end - begin
        by_step = {}
        for r in records:
            entry = r.event_log_entry
            if entry.step_key in steps and entry.dagster_event:
                by_step.setdefault(entry.step_key, []).append(
                    (entry.timestamp, entry.dagster_event.event_type))
        for timeline in by_step.values():
            computed = False
            for (before, _), (at, kind) in zip(timeline, timeline[1:]):
                if kind in INPUT_OUTPUT:
                    data_s += at - before
                elif kind in FIRST_YIELD and not computed:
                    data_s += at - before
                    computed = True
    print("SPLIT", json.dumps({"runs": len(runs), "events": events, "run_seconds": run_s,
                               "data_seconds": data_s}))
"""
