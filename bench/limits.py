"""Limits benchmark: how fast an oversized request is refused, and what it costs other callers.

Against a running endpoint (`make demo` serves one at http://127.0.0.1:8000), in one run:

 (1) a 7.7 MiB body of 2.7 million empty complaints, sent alone N times: time to its 4xx;
 (2) a normal client (one complaint per request, back to back) alone: p50/p99 latency;
 (3) the same client while another thread sends the oversized body back to back: p50/p99, and
     the oversized bodies' time to 4xx under that load.

Prints a Markdown table and, as its last line,
`limits ratios: refusal_ms=.. refusal_under_load_ms=.. p99_with_vs_without=..`
(p99_with_vs_without near 1.0: the oversized requests do not hold up other callers).

    .venv/bin/python bench/limits.py [--url http://127.0.0.1:8000] [--seconds 10] [--repeats 20]

The token comes from ML_ASSETS_API_TOKEN when the endpoint requires one. Every request has a
timeout, and the run is bounded by --seconds per phase.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import numpy as np
import requests

from ml_assets.serving.auth import bearer_headers, configured_token

OVERSIZED = b'{"complaints":[' + b",".join([b"{}"] * 2_700_000) + b"]}"
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


def refuse_times(url: str, headers: dict[str, str], repeats: int) -> list[float]:
    """Seconds from sending the oversized body to its 4xx, per attempt."""
    times = []
    with requests.Session() as session:
        for _ in range(repeats):
            began = time.perf_counter()
            answer = session.post(
                f"{url}/predict",
                data=OVERSIZED,
                headers={"content-type": "application/json", **headers},
                timeout=TIMEOUT_S,
            )
            times.append(time.perf_counter() - began)
            if not 400 <= answer.status_code < 500:
                raise RuntimeError(f"expected a 4xx, got {answer.status_code}: {answer.text[:200]}")
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


def main() -> None:
    """Measure the three phases and print the table and the ratios line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    headers = bearer_headers(configured_token())
    print(f"oversized body: {len(OVERSIZED) / 2**20:.1f} MiB, 2,700,000 empty complaints")

    normal_latencies(args.url, headers, 2.0)  # warm up the connection and the model
    alone = refuse_times(args.url, headers, args.repeats)
    baseline = normal_latencies(args.url, headers, args.seconds)

    stop = threading.Event()
    under_load: list[float] = []

    def attacker() -> None:
        while not stop.is_set():
            under_load.extend(refuse_times(args.url, headers, 1))

    thread = threading.Thread(target=attacker)
    thread.start()
    try:
        loaded = normal_latencies(args.url, headers, args.seconds)
    finally:
        stop.set()
        thread.join(timeout=TIMEOUT_S * 2)

    rows = [
        ("oversized body alone: time to 4xx", alone),
        ("oversized body, with the normal client: time to 4xx", under_load),
        ("normal client alone", baseline),
        ("normal client, with oversized bodies sent back to back", loaded),
    ]
    print("| measurement | requests | p50 ms | p99 ms | max ms |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, values in rows:
        print(
            f"| {name} | {len(values)} | {percentile_ms(values, 50):.1f} | "
            f"{percentile_ms(values, 99):.1f} | {max(values) * 1000:.1f} |"
        )
    ratio = percentile_ms(loaded, 99) / percentile_ms(baseline, 99)
    print(
        f"limits ratios: refusal_ms={statistics.median(alone) * 1000:.1f} "
        f"refusal_under_load_ms={statistics.median(under_load) * 1000:.1f} "
        f"p99_with_vs_without={ratio:.2f}"
    )


if __name__ == "__main__":
    main()
