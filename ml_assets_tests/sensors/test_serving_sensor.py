"""The serving sensor: the champion redeployed when the endpoint is gone or serves another version."""

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import dagster as dg
import pytest

from ml_assets.assets.policy import ServingPolicy
from ml_assets.assets.serving import deployed_model
from ml_assets.jobs import deployment_job
from ml_assets.model.tracking import CHALLENGER_ALIAS, CHAMPION_ALIAS, RETIRED_TAG
from resources.compat.dagster_testing import create_run_for_test
from resources.mlflow_registry import ModelRegistry, sqlite_tracking_uri
from resources.ray_cluster import RayCluster
from sensors.serving import REDEPLOY_BACKOFF_S, REDEPLOY_TAG, ServingCursor, make_serving_sensor

sensor = make_serving_sensor(deployment_job, deployed_model.key)


class Endpoint:
    """A real HTTP server answering /healthz as the endpoint would, serving `version` (None: 404)."""

    def __init__(self) -> None:
        self.version: str | None = None
        self.challenger: str | None = None
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if endpoint.version is None:
                    self.send_error(404)
                    return
                body = json.dumps(
                    {
                        "status": "ok",
                        "model_version": endpoint.version,
                        "challenger_version": endpoint.challenger,
                    }
                ).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    served = Endpoint()
    yield served
    served.server.shutdown()


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(
        tracking_uri=sqlite_tracking_uri(tmp_path / "mlflow"),
        artifact_location=str(tmp_path / "mlflow" / "artifacts"),
        experiment_name="serving-sensor",
        model_name="dispute_model",
    )


def crown(registry: ModelRegistry, versions: int, champion: str) -> None:
    """Register `versions` versions (no model files needed to be listed) and alias one champion."""
    client = registry.client()
    client.create_registered_model(registry.model_name)
    for _ in range(versions):
        client.create_model_version(registry.model_name, source="file:///nowhere")
    registry.set_alias(CHAMPION_ALIAS, champion)


def cluster(port: int) -> RayCluster:
    # The reachability check only connects: the endpoint's port stands in for Ray's.
    return RayCluster(
        address=f"127.0.0.1:{port}", token_path="", predictions_dir="", http_port=port
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tick(
    instance: dg.DagsterInstance,
    ray_cluster: RayCluster,
    registry: ModelRegistry,
    cursor: str | None = None,
    policy: ServingPolicy | None = None,
) -> dg.SensorResult:
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={
            "ray_cluster": ray_cluster,
            "model_registry": registry,
            "serving_policy": policy or ServingPolicy(),
        },
    )
    return sensor(context)


def skipped(result: dg.SensorResult) -> str:
    """Why the tick requested nothing (it fails the test if it requested a run)."""
    assert not result.run_requests and result.skip_reason is not None
    return result.skip_reason.skip_message or ""


def test_the_sensor_is_running_by_default() -> None:
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_nothing_is_requested_without_a_champion_or_a_cluster(
    registry: ModelRegistry, endpoint: Endpoint
) -> None:
    with dg.instance_for_test() as instance:
        assert "no champion" in skipped(tick(instance, cluster(endpoint.port), registry))
        crown(registry, 1, "1")
        assert "ml-assets ray-up" in skipped(tick(instance, cluster(closed_port()), registry))


def test_an_endpoint_gone_or_behind_is_redeployed_once_per_backoff(
    registry: ModelRegistry, endpoint: Endpoint
) -> None:
    crown(registry, 2, "2")
    ray_cluster = cluster(endpoint.port)
    with dg.instance_for_test() as instance:
        endpoint.version = "2"
        assert skipped(tick(instance, ray_cluster, registry)) == "serving version 2"

        endpoint.version = None  # a restarted head: no app
        (request,) = tick(instance, ray_cluster, registry).run_requests
        assert request.tags[REDEPLOY_TAG] == "nothing->version 2"

        endpoint.version = "1"  # a rollback moved the alias away from what is served
        first = tick(instance, ray_cluster, registry)
        (request,) = first.run_requests
        assert request.tags[REDEPLOY_TAG] == "version 1->version 2"
        # Asked again at once (the deployment failed): not before the backoff has passed.
        again = tick(instance, ray_cluster, registry, first.cursor)
        assert "next request after" in skipped(again)
        stale = ServingCursor("version 2", time.time() - REDEPLOY_BACKOFF_S - 1).dumps()
        assert tick(instance, ray_cluster, registry, stale).run_requests


# NOT_STARTED: submitted, waiting for a worker (Dagster's own in-progress list leaves it out).
@pytest.mark.parametrize("status", [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTED])
def test_nothing_is_requested_while_a_run_deploys(
    registry: ModelRegistry, endpoint: Endpoint, status: dg.DagsterRunStatus
) -> None:
    crown(registry, 1, "1")
    with dg.instance_for_test() as instance:
        create_run_for_test(
            instance, job_name="__ASSET_JOB", asset_selection={deployed_model.key}, status=status
        )
        assert "is deploying" in skipped(tick(instance, cluster(endpoint.port), registry))
        # Once that run has finished, the endpoint still lacking the champion is asked for again.
        (run,) = instance.get_runs()
        instance.report_run_failed(run)
        assert tick(instance, cluster(endpoint.port), registry).run_requests


def test_a_challenger_promoted_retired_or_new_is_redeployed(
    registry: ModelRegistry, endpoint: Endpoint
) -> None:
    crown(registry, 3, "1")
    registry.set_alias(CHALLENGER_ALIAS, "2")
    shadow = ServingPolicy(challenger_mode="shadow")
    ray_cluster = cluster(endpoint.port)
    with dg.instance_for_test() as instance:
        endpoint.version = "1"
        # Challengers are off by default: the champion alone is what should serve.
        assert skipped(tick(instance, ray_cluster, registry)) == "serving version 1"
        (request,) = tick(instance, ray_cluster, registry, policy=shadow).run_requests
        assert request.tags[REDEPLOY_TAG] == "version 1->version 1 beside challenger 2"
        endpoint.challenger = "2"
        assert "beside challenger 2" in skipped(
            tick(instance, ray_cluster, registry, policy=shadow)
        )
        # live_promotion retired it: it must stop serving.
        registry.set_version_tag("2", RETIRED_TAG, "live AUC ...")
        (request,) = tick(instance, ray_cluster, registry, policy=shadow).run_requests
        assert request.tags[REDEPLOY_TAG] == "version 1 beside challenger 2->version 1"
