"""Limits benchmark: how fast an oversized request is refused, and what it costs other callers.

Against a running endpoint (`make demo` serves one at http://127.0.0.1:8000), in one run:

 (1) a 7.7 MiB body of 2.7 million empty complaints, sent alone N times: time to its 4xx;
     beside it, bodies the guard refuses with a 400 because the app would parse more than it
     counted (a duplicate `complaints` key, content after the object, a list led by NaN, which
     its parser stops at and `json.loads` reads on);
 (2) a normal client (one complaint per request, back to back) alone: p50/p99 latency;
 (3) the same client while another process sends the oversized body --pace times a second;
 (4) ... while another process sends normal requests --pace times a second: the control for (3);
 (5) ... while another process sends the oversized body back to back, as fast as it is refused;
 (6) ... while another process sends normal requests back to back: the control for (5).
     On a small machine any other client takes CPU from everyone (the sender's own included):
     (3) near (4) and (5) near (6) mean an oversized body costs other callers no more than a
     normal request does.

Prints a Markdown table and, as its last line,
`limits ratios: refusal_ms=.. p99_paced=.. p99_normal_paced=.. p99_flood=.. p99_normal_flood=..
uncountable_ms=..` (p99 ratios against the client alone; the last, the slowest median time to 400
of the uncountable bodies).

    .venv/bin/python bench/limits.py [--url http://127.0.0.1:8000] [--seconds 10] [--repeats 20]
        [--smoke]

The token comes from ML_ASSETS_API_TOKEN when the endpoint requires one. Every request has a
timeout, and the run is bounded by --seconds per phase.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from collections.abc import Callable, Container
from typing import Any

import numpy as np
import requests

from ml_assets.serving.auth import bearer_headers
from ml_assets.settings import load_settings
from smoke import bench_parser, parse

EMPTY_COMPLAINTS = b",".join([b"{}"] * 2_700_000)
OVERSIZED = b'{"complaints":[' + EMPTY_COMPLAINTS + b"]}"
UNCOUNTABLE = {
    "duplicate key, two one-complaint lists": b'{"complaints":[{}],"complaints":[{}]}',
    "duplicate key, 2.7 million complaints in the second list": (
        b'{"complaints":[{}],"complaints":[' + EMPTY_COMPLAINTS + b"]}"
    ),
    "7.7 MiB of '[' after the object": b'{"complaints":[{}]} ' + b"[" * len(EMPTY_COMPLAINTS),
    "NaN, then 2.7 million complaints": b'{"complaints":[NaN,' + EMPTY_COMPLAINTS + b"]}",
}
ONE = {
    "complaints": [
        {
            "product": "Mortgage",
            "state": "CA",
            "zip_code": "94110",
            "consumer_complaint_narrative": "I called five times and it is still not resolved",
        }
    ]
}
TIMEOUT_S = 30
FLOOD_LEAD_S = 1.0  # the flood under way before measuring
SMOKE_SIZE = {"seconds": 1.0, "repeats": 2, "pace": 5.0}


def refuse_times(
    url: str,
    headers: dict[str, str],
    repeats: int,
    body: bytes = OVERSIZED,
    expected: Container[int] = range(400, 500),
) -> list[float]:
    """Seconds from sending a refused body (the oversized one unless told) to its 4xx, per attempt."""
    times = []
    with requests.Session() as session:
        for _ in range(repeats):
            began = time.perf_counter()
            answer = session.post(
                f"{url}/predict",
                data=body,
                headers={"content-type": "application/json", **headers},
                timeout=TIMEOUT_S,
            )
            times.append(time.perf_counter() - began)
            if answer.status_code not in expected:
                raise RuntimeError(
                    f"expected {expected}, got {answer.status_code}: {answer.text[:200]}"
                )
    return times


def normal_latencies(url: str, headers: dict[str, str], seconds: float) -> list[float]:
    """Latencies (s) of back-to-back single-complaint requests for `seconds`."""
    latencies = []
    deadline = time.monotonic() + seconds
    with requests.Session() as session:
        while time.monotonic() < deadline:
            began = time.perf_counter()
            answer = session.post(f"{url}/predict", json=ONE, headers=headers, timeout=TIMEOUT_S)
            latencies.append(time.perf_counter() - began)
            answer.raise_for_status()
    return latencies


def percentile_ms(values: list[float], q: float) -> float:
    return float(np.percentile(values, q) * 1000)


def flood(
    url: str, headers: dict[str, str], oversized: bool, pace_s: float, stop: Any, out: Any
) -> None:
    """Send oversized (or normal) requests every `pace_s` seconds (0: back to back) until `stop`."""
    times: list[float] = []
    while not stop.is_set():
        began = time.monotonic()
        if oversized:
            times.extend(refuse_times(url, headers, 1))
        else:
            answer = requests.post(f"{url}/predict", json=ONE, headers=headers, timeout=TIMEOUT_S)
            answer.raise_for_status()
            times.append(time.monotonic() - began)
        time.sleep(max(0.0, pace_s - (time.monotonic() - began)))
    out.put(times)


def next_to(
    measure: Callable[[], list[float]],
    url: str,
    headers: dict[str, str],
    oversized: bool,
    pace_s: float,
) -> tuple[list[float], list[float]]:
    """`measure()` while another process floods the endpoint: (measured, the flood's times)."""
    context = multiprocessing.get_context("spawn")
    stop, out = context.Event(), context.Queue()
    process = context.Process(target=flood, args=(url, headers, oversized, pace_s, stop, out))
    process.start()
    try:
        time.sleep(FLOOD_LEAD_S)
        measured = measure()
    finally:
        stop.set()
    flooded = out.get(timeout=TIMEOUT_S * 2)
    process.join(timeout=TIMEOUT_S)
    return measured, flooded


def main() -> None:
    """Measure the phases and print the table and the ratios line."""
    parser = bench_parser(__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--pace", type=float, default=10.0, help="oversized bodies a second in (3)")
    args = parse(parser, SMOKE_SIZE)
    headers = bearer_headers(load_settings().token())
    print(f"oversized body: {len(OVERSIZED) / 2**20:.1f} MiB, 2,700,000 empty complaints")

    def client() -> list[float]:
        return normal_latencies(args.url, headers, args.seconds)

    client()  # warm up the connection and the model
    alone = refuse_times(args.url, headers, args.repeats)
    uncountable = {
        name: refuse_times(args.url, headers, args.repeats, body, (400,))
        for name, body in UNCOUNTABLE.items()
    }
    baseline = client()
    paced, paced_refusals = next_to(client, args.url, headers, True, 1 / args.pace)
    paced_control, paced_requests = next_to(client, args.url, headers, False, 1 / args.pace)
    flooded, flood_refusals = next_to(client, args.url, headers, True, 0.0)
    controlled, control_requests = next_to(client, args.url, headers, False, 0.0)

    rows = [
        ("oversized body alone: time to 4xx", alone),
        *((f"{name}: time to 400", times) for name, times in uncountable.items()),
        ("normal client alone", baseline),
        (f"normal client, oversized bodies at {args.pace:g}/s", paced),
        ("(their time to 4xx)", paced_refusals),
        (f"normal client, normal requests at {args.pace:g}/s (control)", paced_control),
        ("(their latency)", paced_requests),
        ("normal client, oversized bodies back to back", flooded),
        ("(their time to 4xx)", flood_refusals),
        ("normal client, normal requests back to back (control)", controlled),
        ("(their latency)", control_requests),
    ]
    print("| measurement | requests | p50 ms | p99 ms | max ms |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, values in rows:
        print(
            f"| {name} | {len(values)} | {percentile_ms(values, 50):.1f} | "
            f"{percentile_ms(values, 99):.1f} | {max(values) * 1000:.1f} |"
        )
    p99 = percentile_ms(baseline, 99)
    print(
        f"limits ratios: refusal_ms={statistics.median(alone) * 1000:.1f} "
        f"p99_paced={percentile_ms(paced, 99) / p99:.2f} "
        f"p99_normal_paced={percentile_ms(paced_control, 99) / p99:.2f} "
        f"p99_flood={percentile_ms(flooded, 99) / p99:.2f} "
        f"p99_normal_flood={percentile_ms(controlled, 99) / p99:.2f} "
        f"uncountable_ms={max(statistics.median(t) for t in uncountable.values()) * 1000:.1f}"
    )


if __name__ == "__main__":
    main()
