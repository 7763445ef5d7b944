"""The measurements of bench/serving.py: the load client (serving_client.py) against a server in a
process of its own, with the server's CPU read around the client's measured window; the model's
limit called in this process; the checks that a server answers as the model does offline."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from ml_assets.serving.deploy import smoke_test
from ml_assets.serving.predictor import Predictor
from serving_cpu import QuietGate, Window, cpu_seconds, machine_seconds, rounded
from serving_model import ModelUnderTest
from serving_report import row_line

CLIENT = Path(__file__).with_name("serving_client.py")
CLIENT_TIMEOUT_S = 60  # past the end of its measured window
HEALTHY_TIMEOUT_S = 180  # a fresh server loads TensorFlow and the model first
MAX_REQUESTS = 10_000_000


def free_port(preferred: int = 0) -> int:
    """`preferred` if it is free on 127.0.0.1, else a port the system picks."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", preferred))
        except OSError:
            probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    """Something to measure: its URLs and how to find the processes that serve them."""

    name: str
    urls: list[str]
    processes: Callable[[], list[psutil.Process]]


@dataclass
class Measurements:
    """The run's settings, rows and answer checks; each row printed as it is added."""

    gate: QuietGate
    workdir: Path
    singles: Path  # request bodies of one complaint each, one per line
    batches: Path  # of BATCH complaints each
    seconds: float  # per measured window
    warmup_s: float  # load before each window
    warmup_first_s: float  # before a server's first window: new input shapes warm up TF
    rows: list[dict[str, Any]] = field(default_factory=list)
    checks: dict[str, float] = field(default_factory=dict)

    def add(self, case: str, key: str, row: dict[str, Any]) -> dict[str, Any]:
        row.update(case=case, key=key)
        self.rows.append(row)
        print(row_line(row), flush=True)
        return row

    def levels(
        self, case: str, key: str, server: Server, per_request: int, concurrencies: list[int]
    ) -> list[dict[str, Any]]:
        """Closed-loop rows (keyed KEY_cN) at each number of clients N; the first one after the
        longer warm-up."""
        bodies = self.singles if per_request == 1 else self.batches
        rows = []
        for i, clients in enumerate(concurrencies):
            warmup = self.warmup_first_s if i == 0 else self.warmup_s
            row = run_client(
                self, server, bodies, per_request, concurrency=clients, warmup_s=warmup
            )
            rows.append(self.add(case, f"{key}_c{clients}", row))
        return rows

    def check(self, name: str, url: str, model: ModelUnderTest) -> None:
        """Answers of `url` against the offline ones (single and batched requests), or raise."""
        result = smoke_test(url, model.sample, model.expected, model.version)
        self.checks[name] = result.max_difference


def client_spec(
    bench: Measurements,
    server: Server,
    bodies: Path,
    per_request: int,
    concurrency: int | None,
    rate: float | None,
    warmup_s: float,
) -> Path:
    """The spec file serving_client.py reads (see its docstring)."""
    spec = {
        "urls": [url + "/predict" for url in server.urls],
        "bodies": str(bodies),
        "complaints_per_request": per_request,
        "mode": "open" if rate else "closed",
        "concurrency": concurrency,
        "rate": rate,
        "warmup_s": warmup_s,
        "seconds": bench.seconds,
        "max_requests": MAX_REQUESTS,
    }
    path = bench.workdir / f"client_{time.monotonic_ns()}.json"
    path.write_text(json.dumps(spec))
    return path


def follow_client(
    client: subprocess.Popen[str], server: Server
) -> tuple[Window, Window, dict[str, Any] | None]:
    """Read the client's GO / DONE / result lines, opening and closing the CPU windows of the
    server's processes and of the client itself exactly around its measured window."""
    server_window = Window([])
    client_window = Window([psutil.Process(client.pid)])
    result = None
    assert client.stdout is not None  # started with stdout=PIPE
    for line in client.stdout:
        line = line.strip()
        if line == "GO":
            server_window = Window(server.processes())
            server_window.open()
            client_window.open()
        elif line == "DONE":
            client_window.close()
            server_window.close()
        elif line.startswith("{"):
            result = json.loads(line)
    return server_window, client_window, result


def run_client(
    bench: Measurements,
    server: Server,
    bodies: Path,
    per_request: int,
    *,
    concurrency: int | None = None,
    rate: float | None = None,
    warmup_s: float | None = None,
) -> dict[str, Any]:
    """One measurement: the load client in a subprocess, server CPU read around its window."""
    warmup = bench.warmup_s if warmup_s is None else warmup_s
    spec = client_spec(bench, server, bodies, per_request, concurrency, rate, warmup)
    busy_before = bench.gate.wait()
    log = spec.with_suffix(".log")
    with log.open("w") as stderr:
        client = subprocess.Popen(
            [sys.executable, str(CLIENT), str(spec)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    try:
        server_window, client_window, result = follow_client(client, server)
        client.wait(timeout=CLIENT_TIMEOUT_S)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    if result is None or not server_window.closed:
        raise RuntimeError(f"load client failed against {server.name}: {log.read_text()[-2000:]}")
    spec.unlink()
    return with_cpu(result, server, server_window, client_window, busy_before)


def with_cpu(
    result: dict[str, Any],
    server: Server,
    server_window: Window,
    client_window: Window,
    busy_before: float | None,
) -> dict[str, Any]:
    """The client's result with the CPU seconds of the server, the client and everything else."""
    by_name = server_window.by_name()
    server_cpu = sum(by_name.values())
    client_cpu = sum(client_window.by_name().values())
    requests = max(1, result["requests"])
    machine_cpu = server_window.machine_cpu_s()
    # The client's CPU as psutil reads it for the servers (its own getrusage figure is kept too).
    result["client_cpu_self_s"] = result["client_cpu_s"]
    result.update(
        client_cpu_s=client_cpu,
        busy_before_cores=busy_before,
        machine_cpu_s=machine_cpu,
        other_cpu_s=machine_cpu - server_cpu - client_cpu,
        server=server.name,
        server_cpu_s=server_cpu,
        server_cpu_by_process=rounded(by_name),
        server_cpu_ms_per_request=1000 * server_cpu / requests,
        client_cpu_ms_per_request=1000 * client_cpu / requests,
        machine_busy_cores=server_window.machine_busy_cores(),
    )
    return result


def in_process(
    bench: Measurements, predictor: Predictor, records: list[dict[str, Any]], batch: int
) -> dict[str, Any]:
    """Complaints/s of back-to-back `predict_inputs` calls on precomputed arrays (one thread)."""
    batches = [
        predictor.input_arrays(records[i : i + batch])
        for i in range(0, min(len(records), 64 * batch) - batch + 1, batch)
    ]
    # Warm up on every batch: each new input shape costs oneDNN/TF a first-time setup, and the
    # throughput only settles after all of them were seen (about +40% at batch 64 here).
    warm_until = time.perf_counter() + bench.warmup_first_s
    while time.perf_counter() < warm_until:
        for arrays in batches:
            predictor.predict_inputs(arrays)
    busy_before = bench.gate.wait()
    latencies = []
    machine0 = machine_seconds()[0]
    cpu0 = cpu_seconds(psutil.Process()) or 0.0
    began = now = time.perf_counter()
    while now < began + bench.seconds:
        predictor.predict_inputs(batches[len(latencies) % len(batches)])
        done = time.perf_counter()
        latencies.append(done - now)
        now = done
    elapsed, cpu = now - began, (cpu_seconds(psutil.Process()) or 0.0) - cpu0
    machine_cpu = machine_seconds()[0] - machine0
    return in_process_row(sorted(latencies), batch, elapsed, cpu, machine_cpu, busy_before)


def in_process_row(
    latencies: list[float],
    batch: int,
    elapsed: float,
    cpu: float,
    machine_cpu: float,
    busy_before: float | None,
) -> dict[str, Any]:
    """A row of the table from the in-process calls' sorted latencies and CPU seconds."""
    calls = len(latencies)
    return {
        "server": "in-process tf.function",
        "mode": "in-process",
        "concurrency": 1,
        "complaints_per_request": batch,
        "seconds": elapsed,
        "requests": calls,
        "errors": 0,
        "requests_per_s": calls / elapsed,
        "complaints_per_s": calls * batch / elapsed,
        "p50_ms": 1000 * latencies[calls // 2],
        "p99_ms": 1000 * latencies[min(calls - 1, round(0.99 * (calls - 1)))],
        "mean_ms": 1000 * elapsed / calls,
        "client_cpu_s": 0.0,
        "server_cpu_s": cpu,
        "server_cpu_by_process": {"bench (this process)": round(cpu, 3)},
        "server_cpu_ms_per_request": 1000 * cpu / calls,
        "client_cpu_ms_per_request": 0.0,
        "busy_before_cores": busy_before,
        "machine_cpu_s": machine_cpu,
        "other_cpu_s": machine_cpu - cpu,
    }


class NotHealthy(Exception):
    """The server does not answer /healthz with a model loaded yet."""


def wait_healthy(url: str, alive: Callable[[], bool] = lambda: True) -> None:
    """Until `url` answers /healthz with a model loaded; raise at once when `alive()` turns false."""
    import requests
    from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

    for attempt in Retrying(
        stop=stop_after_delay(HEALTHY_TIMEOUT_S),
        wait=wait_fixed(0.3),
        retry=retry_if_exception_type((NotHealthy, requests.RequestException)),
        reraise=True,
    ):
        with attempt:
            if not alive():
                raise RuntimeError(f"{url}: the server process exited")
            answer = requests.get(url + "/healthz", timeout=2)
            if not (answer.ok and answer.json().get("model_loaded")):
                raise NotHealthy(f"{url}/healthz: {answer.status_code} {answer.text[:200]}")
