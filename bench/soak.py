"""Soak benchmark: the endpoint at half its measured capacity for a long while, on 127.0.0.1.

Against a running endpoint (`make demo` serves one at http://127.0.0.1:8000), in one run:

 (1) capacity: --clients closed-loop clients for --probe seconds, single-complaint requests;
 (2) the soak: requests sent open-loop at --load times that rate for --minutes, each answered or
     counted as an error (timeout, connection error, non-200);
 (3) every minute, a line with the requests, errors, p50 and p99 of that minute; the Serve
     replicas' resident memory (found by their process names on this machine) at the start and
     the end.

The last line is `soak: errors=.. requests=.. p50_ms=.. p99_ms=.. rss_growth_pct=..`
(targets: 0 errors, RSS growth under 10 %).

    .venv/bin/python bench/soak.py [--url http://127.0.0.1:8000] [--minutes 10] [--load 0.5]
        [--smoke]

Every request has a timeout, the run is bounded by --minutes, and the token comes from
ML_ASSETS_API_TOKEN when the endpoint requires one.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import psutil
import requests

from ml_assets.serving.auth import bearer_headers
from ml_assets.settings import load_settings
from smoke import bench_parser, parse

ONE = {
    "complaints": [
        {
            "product": "Credit card",
            "state": "NY",
            "zip_code": "10001",
            "consumer_complaint_narrative": "They charged me twice and will not refund the fee",
        }
    ]
}
TIMEOUT_S = 10
SENDERS = 32  # threads the open-loop requests are sent from (enough that none waits for one)
SMOKE_SIZE = {"minutes": 0.05, "clients": 2, "probe": 1.0, "warmup": 0.5}


def replica_rss_bytes() -> dict[int, int]:
    """Resident memory of each Serve replica process on this machine, by PID."""
    found = {}
    for process in psutil.process_iter(["cmdline", "memory_info"]):
        if "ServeReplica:" in " ".join(process.info["cmdline"] or []):
            found[process.pid] = process.info["memory_info"].rss
    return found


def capacity(url: str, headers: dict[str, str], clients: int, seconds: float) -> float:
    """Requests per second that `clients` back-to-back clients get answered."""
    done = []
    deadline = time.monotonic() + seconds

    def client() -> None:
        with requests.Session() as session:
            while time.monotonic() < deadline:
                answer = session.post(
                    f"{url}/predict", json=ONE, headers=headers, timeout=TIMEOUT_S
                )
                answer.raise_for_status()
                done.append(1)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + TIMEOUT_S * 2)
    return len(done) / (time.monotonic() - began)


def soak(
    url: str, headers: dict[str, str], rate: float, minutes: float
) -> list[tuple[float, float, bool]]:
    """(minute, latency s, ok) of requests sent at `rate` a second for `minutes`."""
    results: list[tuple[float, float, bool]] = []
    local = threading.local()
    began = time.monotonic()

    def send(minute: float) -> None:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        start = time.perf_counter()
        try:
            ok = (
                session.post(
                    f"{url}/predict", json=ONE, headers=headers, timeout=TIMEOUT_S
                ).status_code
                == 200
            )
        except requests.RequestException:
            ok = False
        results.append((minute, time.perf_counter() - start, ok))

    with ThreadPoolExecutor(SENDERS) as pool:
        sent = 0
        while (elapsed := time.monotonic() - began) < minutes * 60:
            # Open loop: the schedule does not wait for answers, so a slow endpoint queues up
            # (and shows it in p99) instead of being sent less.
            due = int(elapsed * rate) + 1
            for _ in range(due - sent):
                pool.submit(send, elapsed // 60)
            sent = due
            time.sleep(max(0.0, (sent / rate) - (time.monotonic() - began)))
    return results


def main() -> None:
    """Measure capacity, soak at a share of it, print the per-minute table and the summary."""
    parser = bench_parser(__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--load", type=float, default=0.5, help="share of the measured capacity")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--probe", type=float, default=20.0, help="seconds measuring capacity")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before the probe")
    args = parse(parser, SMOKE_SIZE)
    headers = bearer_headers(load_settings().token())

    capacity(args.url, headers, 2, args.warmup)
    measured = capacity(args.url, headers, args.clients, args.probe)
    rate = measured * args.load
    rss_start = replica_rss_bytes()
    print(f"capacity {measured:.0f} req/s ({args.clients} clients); soaking at {rate:.0f} req/s")
    results = soak(args.url, headers, rate, args.minutes)
    rss_end = replica_rss_bytes()

    print("| minute | requests | errors | p50 ms | p99 ms |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for minute in sorted({m for m, _, _ in results}):
        rows = [(latency, ok) for m, latency, ok in results if m == minute]
        latencies = np.array([latency for latency, _ in rows]) * 1000
        errors = sum(not ok for _, ok in rows)
        print(
            f"| {minute:.0f} | {len(rows)} | {errors} | "
            f"{np.percentile(latencies, 50):.1f} | {np.percentile(latencies, 99):.1f} |"
        )
    print(
        f"replica RSS at the start: { {p: f'{b / 2**20:.0f} MiB' for p, b in rss_start.items()} }"
    )
    print(f"replica RSS at the end:   { {p: f'{b / 2**20:.0f} MiB' for p, b in rss_end.items()} }")
    same = set(rss_start) & set(rss_end)
    growth = (
        100 * (sum(rss_end[p] for p in same) / sum(rss_start[p] for p in same) - 1)
        if same
        else float("nan")  # no replica lived through the whole soak: nothing to compare
    )
    latencies = np.array([latency for _, latency, _ in results]) * 1000
    errors = sum(not ok for _, _, ok in results)
    print(
        f"soak: errors={errors} requests={len(results)} "
        f"p50_ms={np.percentile(latencies, 50):.1f} p99_ms={np.percentile(latencies, 99):.1f} "
        f"rss_growth_pct={growth:.1f}"
    )


if __name__ == "__main__":
    main()
