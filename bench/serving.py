"""Serving benchmark: the Ray Serve endpoint against the model's own limit and two plain servers.

Measures, in one run on this machine and one registered model version:

 (1) in-process calls of the model's `tf.function` (`Predictor.predict_inputs`, precomputed
     arrays) at batch 1 and 64 — the limit;
 (2) the Ray Serve endpoint (`DisputeModelServer` on a Ray head of its own) with single-complaint
     requests at several client concurrencies, through each replica's own HTTP server (direct
     ingress) and through the Serve proxy;
 (3) the endpoint with 64-complaint requests;
 (4) a naive server: FastAPI + uvicorn calling `model.predict` per request;
 (5) a plain server: the same request schema on one uvicorn worker calling the `tf.function`
     directly, no Ray (serving_servers.py);

and the p99 latency of (2) under an open-loop load at half of its best single-request rate.
For each: complaints/s, requests/s, p50/p99 latency, CPU seconds of the client process, of the
server processes (utime+stime from /proc around the measured window; for Ray every process of the
cluster) and of anything else on the machine. The load client (serving_client.py: aiohttp, keep-
alive, a fixed number of workers or a fixed rate, bounded by time) runs in its own process.

    .venv/bin/python bench/serving.py [--home PATH] [--version N] [--seconds 8] [--out PREFIX]

Writes PREFIX.md and PREFIX.json (default bench/results/serving) and prints as its last line
`serving ratios: endpoint_vs_naive=.. endpoint_vs_fastapi=.. batched_vs_limit=.. p99_ms_at_half_load=..`.

Ray settings (default: the best found on a 2-core machine): Serve's throughput-optimized mode,
worker niceness 0, one replica per CPU; `--serve-defaults --replicas 0` measures Ray's and the
app's defaults instead. The app is measured as it is; `--batch-wait-s` / `--max-batch-size`
measure other `@serve.batch` settings without editing it (serving_variants.py).

Everything it starts (a Ray head with its own temp dir, token and ports; two uvicorn servers; the
load clients) is ended by PID before it exits; an already running project cluster is not touched.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(REPO_ROOT))  # run as a script from anywhere: the project's packages

# Ray Serve's throughput-optimized mode (ray/serve/_private/constants.py in ray 2.60): direct
# ingress (the ingress replica serves HTTP itself, on a port of its own), gRPC between proxy and
# replicas, user code and router on the replica's main event loop, GC frozen after start-up.
# Read by every Serve process at import: set for the Ray head, which passes them on to its workers.
THROUGHPUT_OPTIMIZED_ENV = {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}
# Ray starts its workers at niceness 15 (RAY_worker_niceness): under a load client on the same
# cores the replicas would lose the CPU to it; the uvicorn servers run at 0 too.
TUNED_ENV = {**THROUGHPUT_OPTIMIZED_ENV, "RAY_worker_niceness": "0"}
CLK_TCK = os.sysconf("SC_CLK_TCK")
WARMUP_S = 1.0  # load before each measured window
WARMUP_FIRST_S = 3.0  # before the first window of a server: new input shapes warm up TF
SMOKE_TOLERANCE = 1e-4
CASE_NUMBER = {"naive": "4", "plain": "5"}


# ---------------------------------------------------------------------------------------------
# process CPU accounting


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces: split after the last ')'.
    return raw[raw.rfind(")") + 2 :].split()


def process_cpu(pid: int) -> float | None:
    """utime + stime of a process, in seconds (None once it is gone)."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def process_start(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[19])


RAY_TITLES = {"ServeReplica": "replicas", "ProxyActor": "proxy", "ServeController": "controller"}


def process_name(pid: int) -> str:
    """Short names: Serve's actors by role, Ray's other workers by title, scripts by file name."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    argv = [a.decode(errors="replace") for a in raw.split(b"\0")]
    first = argv[0].strip()
    if first.startswith("ray::"):
        title = first.split()[0].removeprefix("ray::").split(".")[0]
        return next((v for k, v in RAY_TITLES.items() if title.startswith(k)), title)
    if "python" in Path(first).name:
        for i, arg in enumerate(argv[1:], start=1):
            if arg == "-m" and i + 1 < len(argv):
                return argv[i + 1]
            if arg.endswith(".py"):
                return Path(arg).name
    return Path(first).name


def descendants(roots: Sequence[int]) -> list[int]:
    """The roots and every process below them (Ray's workers retitle themselves `ray::...`, so
    only their parentage ties them to a cluster)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, stack = set(), list(roots)
    while stack:
        pid = stack.pop()
        if pid in found:
            continue
        found.add(pid)
        stack.extend(children.get(pid, []))
    return sorted(found)


def cpu_snapshot(pids: Sequence[int]) -> dict[int, tuple[str, float]]:
    snapshot = {}
    for pid in pids:
        cpu = process_cpu(pid)
        if cpu is not None:
            snapshot[pid] = (process_name(pid), cpu)
    return snapshot


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return float(sum(values) - idle), float(sum(values))


class QuietGate:
    """Before a measurement, wait until other work on the machine (other sessions share it) uses
    under `threshold_cores`, spending at most `budget_s` waiting over the whole run."""

    def __init__(self, budget_s: float, threshold_cores: float = 0.3) -> None:
        self.budget_s = budget_s
        self.threshold_cores = threshold_cores
        self.waited_s = 0.0

    def wait(self) -> float:
        """Busy cores of the last 1 s window before the measurement."""
        while True:
            busy0 = machine_busy()
            time.sleep(1.0)
            busy1 = machine_busy()
            cores = (busy1[0] - busy0[0]) / max(1.0, busy1[1] - busy0[1]) * (os.cpu_count() or 1)
            if cores < self.threshold_cores or self.waited_s >= self.budget_s:
                return round(cores, 2)
            self.waited_s += 1.0


GATE = QuietGate(0.0)  # main sets the budget from --wait-quiet


# ---------------------------------------------------------------------------------------------
# load generation


@dataclass
class Server:
    """Something to measure: a URL and how to find the processes that serve it."""

    name: str
    urls: list[str]
    pids: Callable[[], list[int]]
    notes: dict[str, Any] = field(default_factory=dict)


def run_client(
    server: Server,
    bodies: Path,
    per_request: int,
    seconds: float,
    workdir: Path,
    *,
    concurrency: int | None = None,
    rate: float | None = None,
    warmup_s: float = WARMUP_S,
    max_requests: int = 10_000_000,
) -> dict[str, Any]:
    """One measurement: the load client in a subprocess, server CPU read around its window."""
    spec = {
        "urls": [url + "/predict" for url in server.urls],
        "bodies": str(bodies),
        "complaints_per_request": per_request,
        "mode": "open" if rate else "closed",
        "concurrency": concurrency,
        "rate": rate,
        "warmup_s": warmup_s,
        "seconds": seconds,
        "max_requests": max_requests,
    }
    spec_path = workdir / f"client_{time.monotonic_ns()}.json"
    spec_path.write_text(json.dumps(spec))
    busy_before = GATE.wait()
    client = subprocess.Popen(
        [sys.executable, str(BENCH_DIR / "serving_client.py"), str(spec_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    before: dict[int, tuple[str, float]] = {}
    client0 = client1 = 0.0
    after: dict[int, tuple[str, float]] = {}
    busy0 = busy1 = (0.0, 0.0)
    pids: list[int] = []
    result: dict[str, Any] | None = None
    try:
        assert client.stdout is not None
        for line in client.stdout:
            line = line.strip()
            if line == "GO":
                pids = server.pids()
                busy0 = machine_busy()
                before = cpu_snapshot(pids)
                client0 = process_cpu(client.pid) or 0.0
            elif line == "DONE":
                client1 = process_cpu(client.pid) or 0.0
                after = cpu_snapshot(pids)
                busy1 = machine_busy()
            elif line.startswith("{"):
                result = json.loads(line)
        client.wait(timeout=60)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    if result is None or not after:
        stderr = client.stderr.read() if client.stderr else ""
        raise RuntimeError(f"load client failed against {server.name}: {stderr[-2000:]}")
    by_name: dict[str, float] = {}
    for pid, (name, cpu) in after.items():
        if pid in before:
            by_name[name] = by_name.get(name, 0.0) + cpu - before[pid][1]
    server_cpu = sum(by_name.values())
    requests = max(1, result["requests"])
    window_jiffies = busy1[1] - busy0[1]
    machine_cpu = (busy1[0] - busy0[0]) / CLK_TCK
    # The client's CPU from /proc like the servers' (its own getrusage figure is kept too).
    result["client_cpu_self_s"] = result["client_cpu_s"]
    result["client_cpu_s"] = client1 - client0
    result.update(
        busy_before_cores=busy_before,
        machine_cpu_s=machine_cpu,
        other_cpu_s=machine_cpu - server_cpu - result["client_cpu_s"],
        server=server.name,
        server_cpu_s=server_cpu,
        server_cpu_by_process={k: round(v, 3) for k, v in sorted(by_name.items()) if v > 0.005},
        server_cpu_ms_per_request=1000 * server_cpu / requests,
        client_cpu_ms_per_request=1000 * result["client_cpu_s"] / requests,
        machine_busy_cores=(
            (busy1[0] - busy0[0]) / window_jiffies * (os.cpu_count() or 1) if window_jiffies else 0
        ),
    )
    spec_path.unlink(missing_ok=True)
    return result


# ---------------------------------------------------------------------------------------------
# data, model and the in-process limit


def load_records(warehouse: Path) -> list[dict[str, Any]]:
    """Raw complaint records that map back to the evaluation split's model inputs."""
    import duckdb

    from ml_assets.assets.keys import WAREHOUSE_SCHEMA
    from ml_assets.model.features import FEATURE_COLUMNS
    from ml_assets.model.training import EVALUATION, SPLIT_COLUMN
    from ml_assets.serving.deploy import features_to_record

    columns = ", ".join(["complaint_id", *FEATURE_COLUMNS])
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        frame = conn.execute(
            f"select {columns} from {WAREHOUSE_SCHEMA}.training_dataset "
            f"where {SPLIT_COLUMN} = ? order by complaint_id",
            [EVALUATION],
        ).fetchdf()
    if frame.empty:
        raise SystemExit(f"no evaluation rows in {warehouse}: train a model first")
    return [features_to_record(row) for row in frame.astype(object).to_dict("records")]


def write_bodies(records: list[dict[str, Any]], size: int, path: Path) -> Path:
    chunks = [records[i : i + size] for i in range(0, len(records) - size + 1, size)]
    path.write_text("\n".join(json.dumps({"complaints": c}) for c in chunks) + "\n")
    return path


def in_process(predictor: Any, records: list[dict[str, Any]], batch: int, seconds: float) -> dict:
    """Complaints/s of back-to-back `predict_inputs` calls on precomputed arrays (one thread)."""
    from ml_assets.model.features import records_to_arrays

    batches = [
        records_to_arrays(records[i : i + batch])
        for i in range(0, min(len(records), 64 * batch) - batch + 1, batch)
    ]
    # Warm up on every batch: each new input shape costs oneDNN/TF a first-time setup, and the
    # throughput only settles after all of them were seen (about +40% at batch 64 here).
    warm_until = time.perf_counter() + WARMUP_FIRST_S
    while time.perf_counter() < warm_until:
        for arrays in batches:
            predictor.predict_inputs(arrays)
    busy_before = GATE.wait()
    latencies = []
    busy0 = machine_busy()
    cpu0, began = time.process_time(), time.perf_counter()
    end = began + seconds
    now = began
    while now < end:
        arrays = batches[len(latencies) % len(batches)]
        predictor.predict_inputs(arrays)
        done = time.perf_counter()
        latencies.append(done - now)
        now = done
    elapsed, cpu = now - began, time.process_time() - cpu0
    machine_cpu = (machine_busy()[0] - busy0[0]) / CLK_TCK
    latencies.sort()
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


# ---------------------------------------------------------------------------------------------
# servers


def free_port(preferred: int) -> int:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            probe.bind(("127.0.0.1", 0))
            return int(probe.getsockname()[1])


def wait_healthy(url: str, timeout_s: float, alive: Callable[[], bool] = lambda: True) -> dict:
    import requests

    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"{url}: the server process exited")
        try:
            answer = requests.get(url + "/healthz", timeout=2)
            if answer.ok and answer.json().get("model_loaded"):
                return answer.json()
            last = answer.text[:200]
        except requests.RequestException as exc:
            last = repr(exc)
        time.sleep(0.3)
    raise RuntimeError(f"{url} not healthy after {timeout_s:.0f} s: {last}")


def check_answers(url: str, records: list[dict[str, Any]], expected: Any, version: str) -> float:
    """Largest |served - offline| probability over single and one 64-complaint request."""
    import numpy as np
    import requests

    served = []
    for record in records:
        answer = requests.post(url + "/predict", json={"complaints": [record]}, timeout=60)
        answer.raise_for_status()
        body = answer.json()
        if body["model_version"] != version:
            raise RuntimeError(f"{url} served version {body['model_version']}, not {version}")
        served.append(body["predictions"][0]["dispute_probability"])
    batch = requests.post(url + "/predict", json={"complaints": records}, timeout=60)
    batch.raise_for_status()
    served.extend(p["dispute_probability"] for p in batch.json()["predictions"])
    difference = float(np.max(np.abs(np.asarray(served) - np.tile(expected, 2))))
    if difference > SMOKE_TOLERANCE:
        raise RuntimeError(f"{url}: answers differ from offline ones by {difference:.2e}")
    return difference


@contextlib.contextmanager
def uvicorn_server(
    factory: str, port: int, env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen]:
    """One uvicorn worker (no supervisor process) serving a factory of serving_servers.py."""
    command = [
        sys.executable, "-m", "uvicorn", "--app-dir", str(BENCH_DIR),
        f"serving_servers:{factory}", "--factory", "--host", "127.0.0.1", "--port", str(port),
        "--no-access-log", "--log-level", "warning", "--loop", "uvloop", "--http", "httptools",
        "--timeout-keep-alive", "60",
    ]  # fmt: skip
    with log.open("w") as out:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env={**os.environ, **env}, stdout=out, stderr=out
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def ray_pids(temp_dir: Path) -> list[int]:
    from resources.ray_cluster import cluster_pids

    own = os.getpid()
    return [p for p in descendants(cluster_pids(temp_dir)) if p != own]


def stop_ray(temp_dir: Path) -> int:
    """`stop_head` by temp dir, then any retitled worker of that cluster still alive, by PID."""
    from resources.ray_cluster import stop_head

    known = {pid: process_start(pid) for pid in ray_pids(temp_dir)}
    stopped = stop_head(temp_dir)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        left = [p for p, start in known.items() if start and process_start(p) == start]
        if not left:
            break
        time.sleep(0.5)
    for pid, start in known.items():
        if start and process_start(pid) == start:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return stopped


def deploy_ray(config: Any, args: argparse.Namespace, http_port: int) -> dict[str, Any]:
    """The Serve app with this run's deployment options; the direct-ingress port when there is one."""
    import ray
    from ray import serve

    from ml_assets.serving.app import DisputeModelServer
    from ml_assets.serving.deploy import APP_NAME

    serve.start(http_options={"host": "127.0.0.1", "port": http_port})
    deployment, variant = DisputeModelServer, app_variant(args)
    if variant:
        from serving_variants import variant_deployment

        deployment = variant_deployment(**variant)
    options: dict[str, Any] = {"user_config": config.model_dump()}
    if args.replicas:
        options["num_replicas"] = args.replicas
    if args.max_ongoing:
        options["max_ongoing_requests"] = args.max_ongoing
    if args.replica_cpus is not None:
        options["ray_actor_options"] = {"num_cpus": args.replica_cpus}
    serve.run(deployment.options(**options).bind(), name=APP_NAME, route_prefix="/")
    wait_healthy(f"http://127.0.0.1:{http_port}", 180)
    direct: list[int] = []
    with contextlib.suppress(Exception):
        controller = serve.context._get_global_client()._controller
        for _ in range(40):
            groups = ray.get(controller.get_target_groups.remote(APP_NAME))
            direct = sorted(
                t.port
                for g in groups
                if str(getattr(g.protocol, "value", g.protocol)).upper() == "HTTP"
                for t in g.targets
                if t.port != http_port
            )
            if direct:
                break
            time.sleep(0.5)
    options = {k: v for k, v in options.items() if k != "user_config"}
    return {"options": options, "app_variant": variant, "direct": direct}


def app_variant(args: argparse.Namespace) -> dict[str, Any]:
    """Changes to the app under test (serving_variants.py); empty: the app as it is."""
    variant: dict[str, Any] = {}
    if args.batch_wait_s is not None:
        variant["batch_wait_timeout_s"] = args.batch_wait_s
    if args.max_batch_size is not None:
        variant["max_batch_size"] = args.max_batch_size
    return variant


# ---------------------------------------------------------------------------------------------
# report


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def top_cpu(by_process: dict[str, float], limit: int = 4) -> str:
    ranked = sorted(by_process.items(), key=lambda kv: -kv[1])[:limit]
    return ", ".join(f"{name} {cpu:.2f}" for name, cpu in ranked)


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Serving benchmark — {report['model']['name']} v{report['model']['version']}",
        "",
        f"{report['machine']['cpus']} CPUs, {report['machine']['python']}, ray "
        f"{report['versions']['ray']}, tensorflow {report['versions']['tensorflow']}; "
        f"{report['settings']['seconds']:.0f} s per measurement after a {WARMUP_S:.0f} s warm-up "
        f"({WARMUP_FIRST_S:.0f} s before a server's first); client: "
        "aiohttp + uvloop in its own process, keep-alive, on the same machine. CPU columns: "
        "seconds used during the measured window by the client process, by the server's "
        "processes (all processes of the Ray cluster for Ray Serve), and by anything else on the "
        "machine (other CPU: other sessions, kernel threads). Before each measurement the run "
        f"waited for the machine to be quiet (< {GATE.threshold_cores} busy cores; "
        f"{report['settings']['quiet_wait_s']:.0f} s waited in all, budget "
        f"{report['settings']['quiet_wait_budget_s']:.0f} s).",
        "",
        "| case | load | complaints/req | complaints/s | req/s | p50 ms | p99 ms | client CPU s "
        "| server CPU s | server CPU ms/req | other CPU s | errors | server CPU by process (s) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in report["results"]:
        load = (
            f"open loop {row['rate']:.0f} req/s"
            if row["mode"] == "open"
            else (
                "calls back to back"
                if row["mode"] == "in-process"
                else f"{row['concurrency']} concurrent"
            )
        )
        lines.append(
            f"| {row['case']} | {load} | {row['complaints_per_request']} "
            f"| {fmt(row['complaints_per_s'], 0)} | {fmt(row['requests_per_s'], 0)} "
            f"| {fmt(row['p50_ms'], 2)} | {fmt(row['p99_ms'], 2)} | {fmt(row['client_cpu_s'], 2)} "
            f"| {fmt(row['server_cpu_s'], 2)} | {fmt(row['server_cpu_ms_per_request'], 2)} "
            f"| {fmt(row.get('other_cpu_s'), 2)} | {row['errors']} "
            f"| {top_cpu(row.get('server_cpu_by_process', {}))} |"
        )
    ratios = report["ratios"]
    lines += [
        "",
        "Ratios (targets: endpoint_vs_naive ≥ 20, endpoint_vs_fastapi ≥ 1.0, batched_vs_limit ≥ 0.5, "
        "p99 ≤ 50 ms at half load):",
        "",
        *(f"- {k}: {fmt(v, 2)}" for k, v in ratios.items()),
    ]
    idle = report["settings"]["ray"].get("idle")
    if idle:
        lines += [
            "",
            f"Ray cluster with no requests: {idle['cores']:.3f} cores over {idle['seconds']:.0f} s "
            f"({top_cpu(idle['by_process'], 6)}).",
        ]
    lines += [
        "",
        "Ray settings: " + json.dumps(report["settings"]["ray"], sort_keys=True),
        "",
        "Answers checked against offline predictions before each server was measured: "
        + ", ".join(f"{k} max |Δp| {v:.1e}" for k, v in report["checks"].items()),
    ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", help="project home (default: $ML_ASSETS_HOME or .ml_assets/)")
    parser.add_argument("--version", help="model version (default: the champion, else the latest)")
    parser.add_argument("--seconds", type=float, default=8.0, help="per measurement")
    parser.add_argument(
        "--out", default=str(BENCH_DIR / "results" / "serving"), help="writes OUT.md and OUT.json"
    )
    parser.add_argument("--concurrency", default="1,8,32,64", help="clients for (2), (5)")
    parser.add_argument("--batched-concurrency", default="1,4,8", help="clients for (3)")
    parser.add_argument("--naive-concurrency", default="1,8", help="clients for (4)")
    parser.add_argument(
        "--proxy-concurrency", default="1,32", help="clients for (2) through the Serve proxy"
    )
    parser.add_argument(
        "--load-fractions",
        default="0.5,0.25",
        help="open-loop rates for (2), as fractions of its best single-request rate (0.5: the ratio)",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=60.0,
        help="seconds the run may spend in all waiting for other work on the machine to stop",
    )
    parser.add_argument("--gcs-port", type=int, default=6390)
    parser.add_argument("--http-port", type=int, default=8011, help="Serve proxy port")
    parser.add_argument("--naive-port", type=int, default=8021)
    parser.add_argument("--plain-port", type=int, default=8022)
    parser.add_argument("--num-cpus", type=int, default=os.cpu_count() or 2, help="Ray head CPUs")
    tuning = parser.add_argument_group("Ray Serve settings")
    tuning.add_argument(
        "--serve-defaults",
        action="store_true",
        help="Ray's defaults: no throughput-optimized mode (proxy path only), worker niceness 15",
    )
    tuning.add_argument(
        "--ray-env", action="append", default=[], help="KEY=VALUE for the Ray head (repeatable)"
    )
    tuning.add_argument(
        "--replicas",
        type=int,
        default=os.cpu_count() or 1,
        help="num_replicas (default: one per CPU; 0: the app's default)",
    )
    tuning.add_argument("--max-ongoing", type=int, help="max_ongoing_requests (default: the app's)")
    tuning.add_argument("--replica-cpus", type=float, help="ray_actor_options num_cpus")
    variants = parser.add_argument_group("app changes to measure (default: the app as it is)")
    variants.add_argument("--batch-wait-s", type=float, help="@serve.batch batch_wait_timeout_s")
    variants.add_argument("--max-batch-size", type=int, help="@serve.batch max_batch_size")
    variants.add_argument(
        "--no-feedback", action="store_true", help="predictions_dir unset (no feedback log)"
    )
    tuning.add_argument(
        "--skip", default="", help="comma list of cases to skip: naive,plain,ray (for experiments)"
    )
    tuning.add_argument("--keep-temp", action="store_true", help="keep the temp dir (Ray logs)")
    return parser.parse_args()


def resolve_version(registry: Any, wanted: str | None) -> str:
    from ml_assets.model.tracking import CHAMPION_ALIAS

    if wanted:
        return registry.get_version(wanted).version
    champion = registry.version_for_alias(CHAMPION_ALIAS)
    if champion is not None:
        return champion.version
    versions = registry.client().search_model_versions(f"name = '{registry.model_name}'")
    if not versions:
        raise SystemExit(f"no registered versions of {registry.model_name}: train a model first")
    return str(max(int(v.version) for v in versions))


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def main() -> None:
    args = parse_args()
    began = time.monotonic()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from ml_assets.assets.serving import serving_config
    from ml_assets.model.tracking import MODEL_NAME
    from ml_assets.settings import load_settings
    from resources.home import ProjectHome
    from resources.mlflow_registry import ModelRegistry, sqlite_tracking_uri

    home = ProjectHome.at(args.home or load_settings().home)
    tracking_uri = sqlite_tracking_uri(home.mlflow)
    registry = ModelRegistry(
        tracking_uri=tracking_uri,
        artifact_location=str(home.mlflow / "artifacts"),
        experiment_name="unused",
        model_name=MODEL_NAME,
    )
    version = resolve_version(registry, args.version)
    skip = set(args.skip.split(","))
    temp_dir = Path(f"/tmp/rb_{os.getpid()}")  # short: Ray's socket paths live under it
    temp_dir.mkdir(parents=True, exist_ok=False)
    # Not under temp_dir: `cluster_pids` finds Ray's processes by that path in their command line.
    workdir = Path(tempfile.mkdtemp(prefix=f"rbw_{os.getpid()}_"))
    results: list[dict[str, Any]] = []
    checks: dict[str, float] = {}
    ray_settings: dict[str, Any] = {}

    GATE.budget_s = args.wait_quiet

    def add(case: str, key: str, row: dict[str, Any]) -> dict[str, Any]:
        row.update(case=case, key=key)
        results.append(row)
        print(
            f"{case:<42} {row['complaints_per_request']:>3}/req "
            f"c={row.get('concurrency') or '-'} rate={row.get('rate') or '-'}: "
            f"{row['complaints_per_s']:>9,.0f} complaints/s {row['requests_per_s']:>8,.0f} req/s "
            f"p50 {fmt(row['p50_ms'], 2)} ms p99 {fmt(row['p99_ms'], 2)} ms "
            f"client {row['client_cpu_s']:.2f} s server {row['server_cpu_s']:.2f} s "
            f"other {fmt(row.get('other_cpu_s'), 2)} s "
            f"[{top_cpu(row.get('server_cpu_by_process', {}))}] errors {row['errors']}",
            flush=True,
        )
        return row

    try:
        config = serving_config(registry, version, str(temp_dir / "predictions"), 1000)
        if args.no_feedback:
            config = config.model_copy(update={"predictions_dir": None})
        records = load_records(home.warehouse)
        singles = write_bodies(records, 1, workdir / "single.jsonl")
        batches = write_bodies(records, 64, workdir / "batch64.jsonl")
        print(
            f"model {config.model_name} v{version}; {len(records)} evaluation complaints; "
            f"temp dir {temp_dir}",
            flush=True,
        )

        # (1) the limit: the tf.function in this process
        from ml_assets.model.tracking import load_keras_model
        from ml_assets.serving.predictor import Predictor

        predictor = Predictor(load_keras_model(version, tracking_uri, config.model_name))
        sample = records[:64]
        expected = predictor.predict_records(sample)
        for batch in (1, 64):
            add(
                f"(1) in-process tf.function, batch {batch}",
                f"1_b{batch}",
                in_process(predictor, records, batch, args.seconds),
            )
        del predictor

        server_env = {
            "BENCH_TRACKING_URI": tracking_uri,
            "BENCH_MODEL_NAME": config.model_name,
            "BENCH_MODEL_VERSION": version,
            "BENCH_THRESHOLD": str(config.decision_threshold),
            "BENCH_PREDICTIONS_DIR": ""
            if args.no_feedback
            else str(temp_dir / "predictions_plain"),
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
        plain_servers = [
            ("naive", "(4) naive FastAPI + model.predict", "naive_app", args.naive_port),
            ("plain", "(5) plain FastAPI + tf.function", "plain_app", args.plain_port),
        ]
        plain_servers = [s for s in plain_servers if s[0] not in skip]
        with contextlib.ExitStack() as stack:
            # Start both together (model loading overlaps), measure one after the other.
            running = {}
            for key, case, factory, port in plain_servers:
                port = free_port(port)
                process = stack.enter_context(
                    uvicorn_server(factory, port, server_env, workdir / f"{key}.log")
                )
                running[key] = (case, port, process)
            for key, (_case, port, process) in running.items():
                url = f"http://127.0.0.1:{port}"
                wait_healthy(url, 120, lambda p=process: p.poll() is None)
                checks[key] = check_answers(url, sample, expected, version)
            for key, (case, port, process) in running.items():
                server = Server(case, [f"http://127.0.0.1:{port}"], lambda p=process: [p.pid])
                levels = ints(args.naive_concurrency if key == "naive" else args.concurrency)
                for i, clients in enumerate(levels):
                    row = run_client(
                        server, singles, 1, args.seconds, workdir, concurrency=clients,
                        warmup_s=WARMUP_FIRST_S if i == 0 else WARMUP_S,
                    )  # fmt: skip
                    add(case, f"{CASE_NUMBER[key]}_c{clients}", row)

        if "ray" not in skip:
            measure_ray(args, config, temp_dir, workdir, singles, batches, sample, expected,
                        version, add, checks, ray_settings)  # fmt: skip
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if not args.keep_temp:
            shutil.rmtree(temp_dir, ignore_errors=True)

    def best(prefix: str) -> float | None:
        rows = [r for r in results if r["key"].startswith(prefix) and r["mode"] == "closed"]
        return max((r["complaints_per_s"] for r in rows), default=None)

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a and b else None

    limit = next((r["complaints_per_s"] for r in results if r["key"] == "1_b64"), None)

    def ratios_of(tag: str) -> dict[str, float | None]:
        """(2)/(4), (2)/(5), (3)/(1) and the half-load p99 of the app (tag "") or variant ("s")."""
        half = next((r for r in results if r["key"] == f"{tag}2_half"), None)
        return {
            "endpoint_vs_naive": ratio(best(f"{tag}2_"), best("4_")),
            "endpoint_vs_fastapi": ratio(best(f"{tag}2_"), best("5_")),
            "batched_vs_limit": ratio(best(f"{tag}3_"), limit),
            "p99_ms_at_half_load": half["p99_ms"] if half else None,
        }

    ratios = ratios_of("")
    import ray
    import tensorflow as tf

    report = {
        "model": {"name": MODEL_NAME, "version": version, "home": str(home.root)},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "versions": {"ray": ray.__version__, "tensorflow": tf.__version__},
        "settings": {
            "seconds": args.seconds,
            "quiet_wait_s": GATE.waited_s,
            "quiet_wait_budget_s": args.wait_quiet,
            "ray": ray_settings,
        },
        "checks": checks,
        "results": results,
        "ratios": ratios,
        "wall_s": time.monotonic() - began,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    print(f"written {out.with_suffix('.md')} and {out.with_suffix('.json')}")
    print(
        "serving ratios: "
        + " ".join(f"{k}={'n/a' if v is None else f'{v:.2f}'}" for k, v in ratios.items())
    )


def measure_ray(
    args: argparse.Namespace,
    config: Any,
    temp_dir: Path,
    workdir: Path,
    singles: Path,
    batches: Path,
    sample: list[dict[str, Any]],
    expected: Any,
    version: str,
    add: Callable[[str, str, dict[str, Any]], dict[str, Any]],
    checks: dict[str, float],
    settings: dict[str, Any],
) -> None:
    """(2), (3) and the open-loop latencies on a Ray head of this run's own."""
    from ml_assets.serving.deploy import PROXY_ENV
    from resources.ray_cluster import RayCluster, start_head

    ray_env = {} if args.serve_defaults else dict(TUNED_ENV)
    for item in args.ray_env:
        key, _, value = item.partition("=")
        ray_env[key] = value
    os.environ.update(ray_env)  # start_head passes os.environ on to the head's processes
    token = temp_dir / "auth_token"
    gcs_port = free_port(args.gcs_port)
    http_port = free_port(args.http_port)
    settings.update(env=ray_env, gcs_port=gcs_port, http_port=http_port)
    cluster = RayCluster(
        address=f"127.0.0.1:{gcs_port}",
        token_path=str(token),
        predictions_dir=config.predictions_dir or "",
        http_port=http_port,
    )

    def pids() -> list[int]:
        return ray_pids(temp_dir)

    def deploy(variant_args: argparse.Namespace) -> dict[str, list[str]]:
        import ray

        began = time.monotonic()
        cluster.connect()
        deployed = deploy_ray(config, variant_args, http_port)
        ray.shutdown()  # the app lives on the head; this process stays out of the measurements
        paths = {"proxy": [f"http://127.0.0.1:{http_port}"]}
        if deployed["direct"]:
            # Direct ingress: each ingress replica's own HTTP server (what a load balancer would
            # target); the client spreads its workers over them.
            paths["direct"] = [f"http://127.0.0.1:{port}" for port in deployed["direct"]]
        print(f"Ray Serve deployed in {time.monotonic() - began:.1f} s: {paths}", flush=True)
        deployed["deploy_s"] = round(time.monotonic() - began, 1)
        return {"paths": paths, **deployed}

    def measure(paths: dict[str, list[str]], tag: str, title: str, proxy: bool) -> dict:
        best_path, best_rps = "", 0.0
        for name in ("direct", "proxy"):
            if name not in paths or (name == "proxy" and not proxy):
                continue
            for url in paths[name]:
                checks[f"{title} {name} :{url.rsplit(':', 1)[1]}"] = check_answers(
                    url, sample, expected, version
                )
            server = Server(f"Ray Serve ({name})", paths[name], pids)
            label = f"(2) {title}, {'direct ingress' if name == 'direct' else 'via proxy'}"
            levels = ints(args.concurrency if name == "direct" else args.proxy_concurrency)
            for i, clients in enumerate(levels):
                row = run_client(
                    server, singles, 1, args.seconds, workdir, concurrency=clients,
                    warmup_s=WARMUP_FIRST_S if i == 0 else WARMUP_S,
                )  # fmt: skip
                add(label, f"{tag}2_{name}_c{clients}", row)
                if row["requests_per_s"] > best_rps:
                    best_path, best_rps = name, row["requests_per_s"]
        where = "direct ingress" if best_path == "direct" else "via proxy"
        server = Server(f"Ray Serve ({best_path})", paths[best_path], pids)
        for i, clients in enumerate(ints(args.batched_concurrency)):
            row = run_client(
                server, batches, 64, args.seconds, workdir, concurrency=clients,
                warmup_s=WARMUP_FIRST_S if i == 0 else WARMUP_S,
            )  # fmt: skip
            add(f"(3) {title} 64/request, {where}", f"{tag}3_{best_path}_c{clients}", row)
        rates = {}
        for fraction in floats(args.load_fractions):
            rate = rates[fraction] = best_rps * fraction
            row = run_client(server, singles, 1, args.seconds, workdir, rate=rate)
            name = "half" if fraction == 0.5 else f"{fraction:g}"
            key = f"{tag}2_half" if fraction == 0.5 else f"{tag}2_open{fraction:g}"
            add(f"(2) {title} at {name} load, {where}", key, row)
        return {"best_path": best_path, "open_loop_rates": rates}

    try:
        started = time.monotonic()
        start_head(temp_dir, token, num_cpus=args.num_cpus, port=gcs_port, extra_env=PROXY_ENV)
        deployed = deploy(args)
        settings.update(
            startup_s=round(time.monotonic() - started, 1),
            deployment=deployed["options"],
            app_variant=deployed["app_variant"],
            feedback_log=config.predictions_dir is not None,
            direct_ingress_ports=deployed["direct"],
        )
        settings["idle"] = idle_cpu(pids, 3.0)
        settings.update(measure(deployed["paths"], "", "Ray Serve", proxy=True))
    finally:
        with contextlib.suppress(Exception):
            import ray

            ray.shutdown()
        settings["stopped_processes"] = stop_ray(temp_dir)


def idle_cpu(pids: Callable[[], list[int]], seconds: float) -> dict[str, Any]:
    """CPU the cluster uses with no requests at all (controller loops, metrics, health checks)."""
    known = pids()
    before = cpu_snapshot(known)
    time.sleep(seconds)
    after = cpu_snapshot(known)
    by_name: dict[str, float] = {}
    for pid, (name, cpu) in after.items():
        if pid in before:
            by_name[name] = by_name.get(name, 0.0) + cpu - before[pid][1]
    return {
        "seconds": seconds,
        "cores": round(sum(by_name.values()) / seconds, 3),
        "by_process": {k: round(v, 3) for k, v in sorted(by_name.items()) if v > 0.005},
    }


if __name__ == "__main__":
    main()
