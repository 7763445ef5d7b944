"""Cases (2) and (3) of bench/serving.py: the Serve app on a Ray head of the run's own (its own temp
dir, token and free ports), single-complaint requests at several concurrencies through each
replica's own HTTP server (direct ingress) and through the proxy, 64-complaint requests, and the
latency under an open-loop load at fractions of the best single-request rate."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from ml_assets.serving.schemas import ServingConfig
from resources.ray_cluster import RayCluster
from serving_cpu import idle_cpu
from serving_measure import Measurements, Server, free_port, run_client, wait_healthy
from serving_model import BATCH, ModelUnderTest

# Ray Serve's throughput-optimized mode (ray/serve/_private/constants.py in ray 2.60): direct
# ingress (the ingress replica serves HTTP itself, on a port of its own), gRPC between proxy and
# replicas, user code and router on the replica's main event loop, GC frozen after start-up.
THROUGHPUT_OPTIMIZED_ENV = {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}
# Ray starts its workers at niceness 15 (RAY_worker_niceness): under a load client on the same
# cores the replicas would lose the CPU to it; the plain servers run at 0 too.
TUNED_ENV = {**THROUGHPUT_OPTIMIZED_ENV, "RAY_worker_niceness": "0"}
IDLE_S = 3.0  # measuring the cluster's CPU with no requests
DIRECT_PORTS_WAIT_S = 20.0


@dataclass
class RayOptions:
    """How the head and the app run, and the loads measured (serving.py's Ray options)."""

    env: dict[str, str]  # Ray's and Serve's settings, for every process of the head
    num_cpus: int
    gcs_port: int  # preferred ports (a free one when taken)
    http_port: int
    concurrency: list[int]  # clients of (2) through direct ingress
    proxy_concurrency: list[int]  # of (2) through the proxy
    batched_concurrency: list[int]  # of (3)
    load_fractions: list[float]  # open-loop rates of (2), as fractions of its best
    replicas: int | None = None  # None: the app's own settings
    max_ongoing: int | None = None
    replica_cpus: float | None = None
    variant: dict[str, Any] = field(default_factory=dict)  # serving_variants.py; {}: the app

    @property
    def direct_ingress(self) -> bool:
        """Whether Serve gives each ingress replica an HTTP port of its own with these settings."""
        optimized = self.env.get("RAY_SERVE_THROUGHPUT_OPTIMIZED") == "1"
        return self.env.get("RAY_SERVE_ENABLE_DIRECT_INGRESS", "1" if optimized else "0") == "1"


@dataclass
class Head:
    """A running Ray head of this run."""

    temp_dir: Path
    cluster: RayCluster
    settings: dict[str, Any]

    def processes(self) -> list[psutil.Process]:
        """Every process of this head (found by its temp dir), none of another cluster's."""
        from resources.ray_cluster import cluster_processes

        return cluster_processes(self.temp_dir)


@contextlib.contextmanager
def ray_head(options: RayOptions, temp_dir: Path, predictions_dir: str) -> Iterator[Head]:
    """`start_head` on free ports with the options' environment; stopped by PID afterwards."""
    from ml_assets.serving.deploy import PROXY_ENV
    from resources.ray_cluster import start_head, stop_head

    # Serve's settings are read at import by every Serve process: the head's (passed on to its
    # workers) and this one, which deploys.
    os.environ.update(options.env)
    token = temp_dir / "auth_token"
    gcs_port, http_port = free_port(options.gcs_port), free_port(options.http_port)
    client_port = free_port()  # not Ray's default 10001: a demo's head may hold it
    settings: dict[str, Any] = {"env": options.env, "gcs_port": gcs_port, "http_port": http_port}
    began = time.monotonic()
    try:
        start_head(
            temp_dir,
            token,
            options.num_cpus,
            port=gcs_port,
            extra_env={**PROXY_ENV, **options.env},
            client_port=client_port,
        )
        cluster = RayCluster(
            address=f"127.0.0.1:{gcs_port}",
            token_path=str(token),
            predictions_dir=predictions_dir,
            http_port=http_port,
        )
        settings["head_start_s"] = round(time.monotonic() - began, 1)
        yield Head(temp_dir, cluster, settings)
    finally:
        import ray

        ray.shutdown()
        settings["stopped_processes"] = stop_head(temp_dir)


def deployment_options(options: RayOptions, config: ServingConfig) -> dict[str, Any]:
    """`Deployment.options(...)` of this run: the version's config and the settings given."""
    chosen: dict[str, Any] = {"user_config": config.model_dump()}
    if options.replicas:
        chosen["num_replicas"] = options.replicas
    if options.max_ongoing:
        chosen["max_ongoing_requests"] = options.max_ongoing
    if options.replica_cpus is not None:
        chosen["ray_actor_options"] = {"num_cpus": options.replica_cpus}
    return chosen


def direct_ingress_ports(http_port: int) -> list[int]:
    """The HTTP ports of the ingress replicas' own servers, once Serve lists them."""
    from ml_assets.serving.deploy import APP_NAME
    from resources.compat.ray import serve_http_target_ports

    deadline = time.monotonic() + DIRECT_PORTS_WAIT_S
    while time.monotonic() < deadline:
        ports = [port for port in serve_http_target_ports(APP_NAME) if port != http_port]
        if ports:
            return ports
        time.sleep(0.5)
    raise RuntimeError(f"Serve listed no direct-ingress port in {DIRECT_PORTS_WAIT_S:.0f} s")


def deploy(head: Head, config: ServingConfig, options: RayOptions) -> dict[str, list[str]]:
    """The app (or its variant) deployed on the head; the URLs to measure, by path."""
    import ray
    from ray import serve

    from ml_assets.serving.app import ChallengerScorer, DisputeModelServer
    from ml_assets.serving.deploy import APP_NAME

    began = time.monotonic()
    head.cluster.connect()
    http_port = head.cluster.http_port
    serve.start(http_options={"host": "127.0.0.1", "port": http_port})
    deployment: Any = DisputeModelServer
    if options.variant:
        from serving_variants import variant_deployment

        deployment = variant_deployment(**options.variant)
    chosen = deployment_options(options, config)
    # The app's graph as the pipeline deploys it: the challenger's deployment beside the ingress
    # (idle without a challenger), under the serving code's version, so that case (6) changes
    # only user_configs, in place.
    versioned = versioned_by_code()
    scorer = versioned(
        ChallengerScorer.options(user_config=config.scorer_config().model_dump())
    ).bind()
    serve.run(versioned(deployment.options(**chosen)).bind(scorer), name=APP_NAME, route_prefix="/")
    wait_healthy(head.cluster.endpoint)
    paths = {"proxy": [head.cluster.endpoint]}
    direct = direct_ingress_ports(http_port) if options.direct_ingress else []
    if direct:
        # What a load balancer would target: the client spreads its workers over them.
        paths["direct"] = [f"http://127.0.0.1:{port}" for port in direct]
    ray.shutdown()  # the app lives on the head; this process stays out of the measurements
    head.settings.update(
        deploy_s=round(time.monotonic() - began, 1),
        deployment={k: v for k, v in chosen.items() if k != "user_config"},
        app_variant=options.variant,
        feedback_log=config.predictions_dir is not None,
        direct_ingress_ports=direct,
    )
    print(f"Ray Serve deployed in {head.settings['deploy_s']} s: {paths}", flush=True)
    return paths


def measure_single(
    bench: Measurements,
    model: ModelUnderTest,
    head: Head,
    paths: dict[str, list[str]],
    options: RayOptions,
) -> tuple[str, float]:
    """(2) through each path after checking its answers; the best path and its requests/s."""
    best_path, best_rps = "", 0.0
    for name, concurrencies in (
        ("direct", options.concurrency),
        ("proxy", options.proxy_concurrency),
    ):
        for url in paths.get(name, []):
            bench.check(f"Ray Serve {name} :{url.rsplit(':', 1)[1]}", url, model)
        if name not in paths:
            continue
        server = Server(f"Ray Serve ({name})", paths[name], head.processes)
        case = f"(2) Ray Serve, {'direct ingress' if name == 'direct' else 'via proxy'}"
        for row in bench.levels(case, f"2_{name}", server, 1, concurrencies):
            if row["requests_per_s"] > best_rps:
                best_path, best_rps = name, row["requests_per_s"]
    return best_path, best_rps


def versioned_by_code() -> Any:
    """What the pipeline's deployments get: the serving code's version (in-place updates)."""
    from ml_assets.assets.serving import versioned

    return versioned()


# Case (6): the share of complaints a split sends to the challenger (90/10).
CHALLENGER_SHARE = 0.1


def reconfigure(head: Head, config: ServingConfig, options: RayOptions) -> None:
    """The deployed app moved to `config` (its challenger, or none) in place."""
    import ray
    from ray import serve

    from ml_assets.serving.app import ChallengerScorer, DisputeModelServer
    from ml_assets.serving.deploy import APP_NAME

    head.cluster.connect()
    versioned = versioned_by_code()
    scorer = versioned(
        ChallengerScorer.options(user_config=config.scorer_config().model_dump())
    ).bind()
    chosen = deployment_options(options, config)
    serve.run(
        versioned(DisputeModelServer.options(**chosen)).bind(scorer),
        name=APP_NAME,
        route_prefix="/",
    )
    ray.shutdown()
    wait_healthy(head.cluster.endpoint)


def measure_challenger(
    bench: Measurements,
    model: ModelUnderTest,
    head: Head,
    server: Server,
    options: RayOptions,
    rate: float,
) -> None:
    """(6) single-complaint requests with no challenger, one in shadow, and a 90/10 split: the
    same version as the challenger (its deployment loads and scores it), closed loop at the most
    clients and open loop at `rate`."""
    from ml_assets.serving.schemas import ChallengerConfig, ChallengerMode

    clients = max(options.concurrency)
    config = model.config
    cases: tuple[tuple[str, str, ChallengerMode | None], ...] = (
        ("none", "no challenger", None),
        ("shadow", "challenger in shadow", "shadow"),
        ("split", f"{1 - CHALLENGER_SHARE:.0%}/{CHALLENGER_SHARE:.0%} split", "split"),
    )
    for key, label, mode in cases:
        challenger = (
            ChallengerConfig(
                model_version=config.model_version,
                decision_threshold=config.decision_threshold,
                mode=mode,
                share=CHALLENGER_SHARE,
            )
            if mode
            else None
        )
        reconfigure(head, config.model_copy(update={"challenger": challenger}), options)
        bench.levels(f"(6) {label}", f"6_{key}", server, 1, [clients])
        row = run_client(bench, server, bench.singles, 1, rate=rate)
        bench.add(f"(6) {label}, open loop at half load", f"6_{key}_half", row)


def measure_ray(
    bench: Measurements, model: ModelUnderTest, options: RayOptions, temp_dir: Path
) -> dict[str, Any]:
    """(2), (3) and the open-loop latencies; the head's settings and what was measured idle."""
    with ray_head(options, temp_dir, model.config.predictions_dir or "") as head:
        paths = deploy(head, model.config, options)
        head.settings["idle"] = idle_cpu(head.processes, IDLE_S)
        best_path, best_rps = measure_single(bench, model, head, paths, options)
        where = "direct ingress" if best_path == "direct" else "via proxy"
        server = Server(f"Ray Serve ({best_path})", paths[best_path], head.processes)
        case = f"(3) Ray Serve {BATCH}/request, {where}"
        bench.levels(case, f"3_{best_path}", server, BATCH, options.batched_concurrency)
        rates = {}
        for fraction in options.load_fractions:
            rate = rates[fraction] = best_rps * fraction
            row = run_client(bench, server, bench.singles, 1, rate=rate)
            name = "half" if fraction == 0.5 else f"{fraction:g}"
            key = "2_half" if fraction == 0.5 else f"2_open{fraction:g}"
            bench.add(f"(2) Ray Serve at {name} load, {where}", key, row)
        head.settings.update(best_path=best_path, open_loop_rates=rates)
        if not options.variant:  # a variant measures batching settings, not the challenger
            measure_challenger(bench, model, head, server, options, best_rps * 0.5)
    return head.settings
