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
     directly, no Ray, doing the Serve app's other work per request;

and the p99 latency of (2) under an open-loop load at half of its best single-request rate.
For each: complaints/s, requests/s, p50/p99 latency, CPU seconds of the client process, of the
server processes (user + system time read with psutil around the measured window; for Ray every
process of the cluster) and of anything else on the machine. The load client (aiohttp, keep-alive,
a fixed number of workers or a fixed rate, bounded by time) runs in its own process.

    .venv/bin/python bench/serving.py [--home PATH] [--version N] [--seconds 8] [--out PREFIX]

The home needs a trained model (`ml-assets --home PATH generate --days 20`, `materialize`,
`train`). Writes PREFIX.md and PREFIX.json (default bench/results/serving; `--smoke`: a temp
folder) and prints as its last line
`serving ratios: endpoint_vs_naive=.. endpoint_vs_fastapi=.. batched_vs_limit=.. p99_ms_at_half_load=..`.

Where things are: serving_model.py (the version, its records and offline answers),
serving_measure.py (the load client runs, the in-process limit, the answer checks),
serving_cpu.py (CPU accounting), serving_plain.py + serving_servers.py (cases 4 and 5),
serving_ray.py + serving_variants.py (cases 2 and 3), serving_report.py (table and ratios),
serving_client.py (the load client).

Ray settings (default: the best found on a 2-core machine): Serve's throughput-optimized mode,
worker niceness 0, one replica per CPU; `--serve-defaults --replicas 0` measures Ray's and the
app's defaults instead. The app is measured as it is; `--batch-wait-s` / `--max-batch-size`
measure other `@serve.batch` settings without editing it (serving_variants.py).

Everything it starts (a Ray head with its own temp dir, token and free ports; two uvicorn servers;
the load clients) is ended by PID before it exits; an already running project cluster is not
touched.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from serving_cpu import QuietGate
from serving_measure import Measurements, in_process
from serving_model import BATCH, ModelUnderTest, prepare, write_bodies
from serving_plain import measure_plain
from serving_ray import TUNED_ENV, RayOptions, measure_ray
from serving_report import ratios, ratios_line, write
from smoke import bench_parser, output_path, parse

CPUS = os.cpu_count() or 2
WARMUP_S = 1.0  # load before each measured window
WARMUP_FIRST_S = 3.0  # before the first window of a server: new input shapes warm up TF
# --smoke: every case once, briefly, on one replica; no waiting for a quiet machine.
SMOKE_SIZE = {
    "seconds": 0.5,
    "warmup": 0.2,
    "concurrency": "2",
    "batched_concurrency": "2",
    "naive_concurrency": "1",
    "proxy_concurrency": "2",
    "load_fractions": "0.5",
    "wait_quiet": 0.0,
    "replicas": 1,
}


def add_load_options(parser: argparse.ArgumentParser) -> None:
    """How long and how hard each case is loaded."""
    parser.add_argument("--seconds", type=float, default=8.0, help="per measurement")
    parser.add_argument(
        "--warmup",
        type=float,
        default=WARMUP_S,
        help="load before each measurement (before a server's first: "
        f"{WARMUP_FIRST_S / WARMUP_S:g} times as long)",
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


def add_ray_options(parser: argparse.ArgumentParser) -> None:
    """The Ray head's settings and the app's deployment options."""
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
        default=CPUS,
        help="num_replicas (default: one per CPU; 0: the app's default)",
    )
    tuning.add_argument("--max-ongoing", type=int, help="max_ongoing_requests (default: the app's)")
    tuning.add_argument("--replica-cpus", type=float, help="ray_actor_options num_cpus")
    tuning.add_argument(
        "--skip", default="", help="comma list of cases to skip: naive,plain,ray (for experiments)"
    )
    tuning.add_argument("--keep-temp", action="store_true", help="keep the temp dir (Ray logs)")
    variants = parser.add_argument_group("app changes to measure (default: the app as it is)")
    variants.add_argument("--batch-wait-s", type=float, help="@serve.batch batch_wait_timeout_s")
    variants.add_argument("--max-batch-size", type=int, help="@serve.batch max_batch_size")
    variants.add_argument(
        "--no-feedback", action="store_true", help="predictions_dir unset (no feedback log)"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = bench_parser(__doc__)
    parser.add_argument("--home", help="project home (default: $ML_ASSETS_HOME or .ml_assets/)")
    parser.add_argument("--version", help="model version (default: the champion, else the latest)")
    parser.add_argument("--out", help="writes OUT.md and OUT.json (default bench/results/serving)")
    add_load_options(parser)
    parser.add_argument("--gcs-port", type=int, default=6390, help="(a free one when taken)")
    parser.add_argument("--http-port", type=int, default=8011, help="Serve proxy port")
    parser.add_argument("--naive-port", type=int, default=8021)
    parser.add_argument("--plain-port", type=int, default=8022)
    parser.add_argument("--num-cpus", type=int, default=CPUS, help="Ray head CPUs")
    add_ray_options(parser)
    return parse(parser, SMOKE_SIZE, argv)


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def ray_options(args: argparse.Namespace) -> RayOptions:
    """The Ray options of the command line."""
    env = {} if args.serve_defaults else dict(TUNED_ENV)
    for item in args.ray_env:
        key, _, value = item.partition("=")
        env[key] = value
    variant: dict[str, Any] = {}
    if args.batch_wait_s is not None:
        variant["batch_wait_timeout_s"] = args.batch_wait_s
    if args.max_batch_size is not None:
        from ml_assets.serving.app import BATCH_COMPLAINTS

        # The app scores a request's complaints in chunks of up to BATCH_COMPLAINTS, and its
        # batches count complaints: Serve refuses (500) a chunk larger than a batch.
        if args.max_batch_size < BATCH_COMPLAINTS:
            raise SystemExit(f"--max-batch-size: at least {BATCH_COMPLAINTS}, the app's chunk")
        variant["max_batch_size"] = args.max_batch_size
    return RayOptions(
        env=env,
        num_cpus=args.num_cpus,
        gcs_port=args.gcs_port,
        http_port=args.http_port,
        concurrency=ints(args.concurrency),
        proxy_concurrency=ints(args.proxy_concurrency),
        batched_concurrency=ints(args.batched_concurrency),
        load_fractions=floats(args.load_fractions),
        replicas=args.replicas or None,
        max_ongoing=args.max_ongoing,
        replica_cpus=args.replica_cpus,
        variant=variant,
    )


def measure(args: argparse.Namespace, temp_dir: Path, workdir: Path) -> dict[str, Any]:
    """Every case not skipped, in order; the report (without the wall time)."""
    from ml_assets.settings import load_settings
    from resources.home import ProjectHome

    skip = set(args.skip.split(","))
    on_ray = None if "ray" in skip else ray_options(args)  # its mistakes said before anything runs
    home = ProjectHome.at(args.home or load_settings().home)
    predictions = None if args.no_feedback else temp_dir / "predictions"
    model, predictor = prepare(home, args.version, predictions)
    bench = Measurements(
        gate=QuietGate(args.wait_quiet),
        workdir=workdir,
        singles=write_bodies(model.records, 1, workdir / "single.jsonl"),
        batches=write_bodies(model.records, BATCH, workdir / f"batch{BATCH}.jsonl"),
        seconds=args.seconds,
        warmup_s=args.warmup,
        warmup_first_s=args.warmup * WARMUP_FIRST_S / WARMUP_S,
    )
    print(
        f"model {model.config.model_name} v{model.version}; {len(model.records)} evaluation "
        f"complaints; temp dir {temp_dir}",
        flush=True,
    )
    for batch in (1, BATCH):
        row = in_process(bench, predictor, model.records, batch)
        bench.add(f"(1) in-process tf.function, batch {batch}", f"1_b{batch}", row)
    del predictor  # its memory back before the servers load their own copies
    kinds = [kind for kind in ("naive", "plain") if kind not in skip]
    if kinds:
        concurrencies = {"naive": ints(args.naive_concurrency), "plain": ints(args.concurrency)}
        ports = {"naive": args.naive_port, "plain": args.plain_port}
        measure_plain(bench, model, kinds, concurrencies, ports)
    ray_settings = {} if on_ray is None else measure_ray(bench, model, on_ray, temp_dir)
    return report(args, model, bench, ray_settings)


def report(
    args: argparse.Namespace,
    model: ModelUnderTest,
    bench: Measurements,
    ray_settings: dict[str, Any],
) -> dict[str, Any]:
    """What the run measured, with the settings and versions it ran with."""
    import ray
    import tensorflow as tf

    return {
        "model": {
            "name": model.config.model_name,
            "version": model.version,
            "home": str(model.home.root),
        },
        "machine": {"cpus": CPUS, "python": platform.python_version()},
        "versions": {"ray": ray.__version__, "tensorflow": tf.__version__},
        "settings": {
            "seconds": args.seconds,
            "warmup_s": bench.warmup_s,
            "warmup_first_s": bench.warmup_first_s,
            "quiet_wait_s": bench.gate.waited_s,
            "quiet_wait_budget_s": args.wait_quiet,
            "quiet_threshold_cores": bench.gate.threshold_cores,
            "ray": ray_settings,
        },
        "checks": bench.checks,
        "results": bench.rows,
        "ratios": ratios(bench.rows),
    }


def main() -> None:
    """Measure every case, write the report, and end with the ratios line."""
    args = parse_args()
    began = time.monotonic()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Short: Ray's socket paths live under it (at most 107 bytes).
    temp_dir = Path(tempfile.mkdtemp(prefix="rb", dir="/tmp"))
    # Not under temp_dir: Ray's processes are found by the paths they name or hold open there.
    workdir = Path(tempfile.mkdtemp(prefix="rbw"))
    try:
        result = measure(args, temp_dir, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if not args.keep_temp:
            shutil.rmtree(temp_dir, ignore_errors=True)
    result["wall_s"] = time.monotonic() - began
    out = output_path(args.out, "serving", args.smoke)
    print(write(result, out))
    print(f"written {out.with_suffix('.md')} and {out.with_suffix('.json')}")
    print(ratios_line(result["ratios"]))


if __name__ == "__main__":
    main()
