"""Load client of bench/serving.py: an asyncio aiohttp client in its own lean process.

    python bench/serving_client.py SPEC.json

SPEC: {"urls" (requests are spread over them: one per replica with direct ingress), "bodies" (a file, one JSON request body per line), "complaints_per_request",
"mode": "closed" | "open", "concurrency" (closed loop: workers, each with one request in flight),
"rate" (open loop: requests per second, sent on schedule whatever the answers do),
"warmup_s", "seconds", "max_requests"}.

Protocol on stdout, so the caller can read server CPU counters exactly around the measured
window: `GO` when the warm-up ends, `DONE` when the last measured request has finished, then one
JSON line with the results. Latency is measured from the moment a request was due (open loop: its
scheduled send time, so queueing behind a slow server counts) or sent (closed loop).
Only 127.0.0.1 is accepted as a target.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import aiohttp

JSON_HEADERS = {"Content-Type": "application/json"}
MAX_IN_FLIGHT_OPEN = 1024


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Recorder:
    """Latencies and errors of requests that started inside the measured window."""

    def __init__(self, go_at: float, end_at: float, max_requests: int) -> None:
        self.go_at = go_at
        self.end_at = end_at
        self.max_requests = max_requests
        self.started = 0
        self.latencies: list[float] = []
        self.errors = 0
        self.error_samples: list[str] = []
        self.last_done = go_at

    def may_start(self, now: float) -> bool:
        return now < self.end_at and self.started < self.max_requests

    def record(self, due: float, done: float, ok: bool, error: str = "") -> None:
        if due < self.go_at:
            return
        self.last_done = max(self.last_done, done)
        if ok:
            self.latencies.append(done - due)
        else:
            self.errors += 1
            if len(self.error_samples) < 5:
                self.error_samples.append(error)


async def send(session: aiohttp.ClientSession, url: str, body: bytes) -> tuple[bool, str]:
    """POST one body; (ok, error text)."""
    try:
        async with session.post(url, data=body, headers=JSON_HEADERS) as answer:
            payload = await answer.read()
            if answer.status != 200:
                return False, f"{answer.status}: {payload[:200]!r}"
            return True, ""
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        return False, repr(exc)


async def closed_loop(
    session: aiohttp.ClientSession, spec: dict[str, Any], bodies: list[bytes], rec: Recorder
) -> None:
    counter = iter(range(1 << 62))
    urls = spec["urls"]

    async def worker(url: str) -> None:
        while True:
            now = time.perf_counter()
            if not rec.may_start(now):
                return
            if now >= rec.go_at:
                rec.started += 1
            i = next(counter)
            ok, error = await send(session, url, bodies[i % len(bodies)])
            rec.record(now, time.perf_counter(), ok, error)

    await asyncio.gather(*(worker(urls[w % len(urls)]) for w in range(int(spec["concurrency"]))))


async def open_loop(
    session: aiohttp.ClientSession, spec: dict[str, Any], bodies: list[bytes], rec: Recorder
) -> None:
    rate = float(spec["rate"])
    began = time.perf_counter()
    pending: set[asyncio.Task[None]] = set()

    async def one(i: int, due: float) -> None:
        url = spec["urls"][i % len(spec["urls"])]
        ok, error = await send(session, url, bodies[i % len(bodies)])
        rec.record(due, time.perf_counter(), ok, error)

    i = 0
    while True:
        due = began + i / rate
        now = time.perf_counter()
        if due > now:
            await asyncio.sleep(due - now)
        if not rec.may_start(due):
            break
        if due >= rec.go_at:
            rec.started += 1
        if len(pending) >= MAX_IN_FLIGHT_OPEN:
            rec.record(due, time.perf_counter(), False, "client: too many requests in flight")
        else:
            task = asyncio.create_task(one(i, due))
            pending.add(task)
            task.add_done_callback(pending.discard)
        i += 1
    if pending:
        await asyncio.gather(*pending)


def percentile_ms(values: list[float], q: float) -> float | None:
    """The q-th percentile of latencies in seconds, in ms, by nearest rank (None: no values)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return 1000 * ordered[rank]


async def main(spec: dict[str, Any]) -> dict[str, Any]:
    if any(urlparse(url).hostname != "127.0.0.1" for url in spec["urls"]):
        raise SystemExit("the load client only sends to 127.0.0.1")
    bodies = [line.encode() for line in Path(spec["bodies"]).read_text().splitlines() if line]
    limit = int(spec.get("concurrency") or MAX_IN_FLIGHT_OPEN)
    connector = aiohttp.TCPConnector(limit=limit, keepalive_timeout=60, force_close=False)
    timeout = aiohttp.ClientTimeout(total=float(spec.get("timeout_s", 60)))
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.perf_counter()
        go_at = start + float(spec["warmup_s"])
        rec = Recorder(go_at, go_at + float(spec["seconds"]), int(spec["max_requests"]))
        marks: dict[str, float] = {}

        async def announce() -> None:
            await asyncio.sleep(max(0.0, go_at - time.perf_counter()))
            marks["cpu"] = cpu_seconds()
            marks["go"] = time.perf_counter()
            say("GO")

        announcer = asyncio.create_task(announce())
        if spec["mode"] == "open":
            await open_loop(session, spec, bodies, rec)
        else:
            await closed_loop(session, spec, bodies, rec)
        await announcer
        finished = time.perf_counter()
        client_cpu = cpu_seconds() - marks["cpu"]
        say("DONE")
    elapsed = max(1e-9, finished - marks["go"])
    ok = len(rec.latencies)
    per_request = int(spec["complaints_per_request"])
    return {
        "mode": spec["mode"],
        "concurrency": spec.get("concurrency"),
        "rate": spec.get("rate"),
        "complaints_per_request": per_request,
        "seconds": elapsed,
        "requests": ok,
        "errors": rec.errors,
        "error_samples": rec.error_samples,
        "requests_per_s": ok / elapsed,
        "complaints_per_s": ok * per_request / elapsed,
        "p50_ms": percentile_ms(rec.latencies, 50),
        "p99_ms": percentile_ms(rec.latencies, 99),
        "mean_ms": None if not ok else 1000 * sum(rec.latencies) / ok,
        "client_cpu_s": client_cpu,
    }


if __name__ == "__main__":
    import uvloop

    result = uvloop.run(main(json.loads(Path(sys.argv[1]).read_text())))
    say(json.dumps(result))
