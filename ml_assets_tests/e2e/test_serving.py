"""Serving end to end: a real Ray head on 127.0.0.1, the deployed_model asset, HTTP, a hot swap."""

import socket
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import requests

from ml_assets.definitions import local_resources
from ml_assets.ingest.generator import generate_landing
from ml_assets.jobs import DATA_LAYER_ASSETS, MODEL_LAYER_ASSETS, MODEL_LAYER_CHECKS, SERVING_ASSETS
from resources.home import ProjectHome
from resources.ray_cluster import RayCluster, cluster_pids, start_head, stop_head

pytestmark = pytest.mark.e2e
ALL_ASSETS = [*DATA_LAYER_ASSETS, *MODEL_LAYER_ASSETS, *MODEL_LAYER_CHECKS, *SERVING_ASSETS]
DAYS = 12
COMPLAINT = {
    "complaint_id": "c-1",
    "product": "Mortgage",
    "state": "CA",
    "zip_code": "94110",
    "timely_response": "Yes",
    "consumer_complaint_narrative": "I called five times and it still has not been resolved",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Served:
    home: ProjectHome
    instance: dg.DagsterInstance
    resources: dict
    endpoint: str
    first: dg.ExecuteInProcessResult


def materialize(
    served_home: ProjectHome, instance: dg.DagsterInstance, resources: dict, keys: list, **ops: dict
) -> dg.ExecuteInProcessResult:
    window = {"training_dataset": {"config": {"window_days": DAYS, "evaluation_days": 4}}}
    return dg.materialize(
        ALL_ASSETS,
        selection=keys,
        resources=resources,
        instance=instance,
        run_config={"ops": {**window, **{op: {"config": c} for op, c in ops.items()}}},
        raise_on_error=False,
    )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = ProjectHome(tmp_path_factory.mktemp("serving") / "home")
    # Ray's session paths end in unix sockets (at most 107 bytes): a short temp dir of our own.
    ray_dir = Path(tempfile.mkdtemp(prefix="r", dir="/tmp"))
    gcs_port, http_port = free_port(), free_port()
    start_head(ray_dir, ray_dir / "auth_token", num_cpus=2, port=gcs_port)
    try:
        yesterday = datetime.now(UTC).date() - timedelta(days=1)
        generate_landing(home.landing, yesterday - timedelta(days=DAYS - 1), DAYS, 300, seed=9)
        resources = {
            **local_resources(home),
            "ray_cluster": RayCluster(
                address=f"127.0.0.1:{gcs_port}",
                token_path=str(ray_dir / "auth_token"),
                predictions_dir=str(home.predictions),
                http_port=http_port,
            ),
        }
        with dg.instance_for_test() as instance:
            for offset in range(DAYS):
                day = (yesterday - timedelta(days=offset)).isoformat()
                assert dg.materialize(
                    DATA_LAYER_ASSETS, resources=resources, partition_key=day, instance=instance
                ).success
            keys = [a.key for a in (*MODEL_LAYER_ASSETS, *SERVING_ASSETS)]
            first = materialize(home, instance, resources, keys)
            yield Served(home, instance, resources, f"http://127.0.0.1:{http_port}", first)
    finally:
        import ray

        ray.shutdown()
        stop_head(ray_dir)
        assert cluster_pids(ray_dir) == []


def test_the_champion_is_deployed_and_answers(served: Served) -> None:
    assert served.first.success
    meta = served.first.asset_materializations_for_node("deployed_model")[0].metadata
    assert meta["version"].value == "1" and meta["smoke_max_difference"].value < 1e-4
    answer = requests.post(
        f"{served.endpoint}/predict", json={"complaints": [COMPLAINT, {}]}, timeout=30
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["model_version"] == "1" and len(body["predictions"]) == 2
    first = body["predictions"][0]
    assert first["complaint_id"] == "c-1" and 0 < first["dispute_probability"] < 1
    health = requests.get(f"{served.endpoint}/healthz", timeout=10).json()
    assert health == {"status": "ok", "model_loaded": True, "model_version": "1"}
    info = requests.get(f"{served.endpoint}/model", timeout=10).json()
    assert (
        info["alias"] == "champion"
        and info["mlflow_run_id"]
        and info["dagster_run_id"] == served.first.run_id
    )
    assert "roc_auc" in info["evaluation"] and info["code_versions"]["complaint_features"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ("not json", 400, "not valid JSON"),
        ({"complaints": []}, 422, "complaints"),
        ({"complaints": [{"product": 7}]}, 422, "complaints.0.product"),
        ({"complaints": [{"colour": "red"}]}, 422, "complaints.0.colour"),
        ({"complaints": [COMPLAINT] * 1001}, 413, "at most 1000"),
    ],
    ids=["non-json", "empty", "wrong-type", "unknown-field", "oversize-list"],
)
def test_bad_input_gets_a_4xx_naming_the_problem(
    served: Served, body: object, status: int, message: str
) -> None:
    if isinstance(body, str):
        answer = requests.post(
            f"{served.endpoint}/predict",
            data=body,
            headers={"content-type": "application/json"},
            timeout=30,
        )
    else:
        answer = requests.post(f"{served.endpoint}/predict", json=body, timeout=30)
    assert answer.status_code == status
    assert message in answer.text


def test_an_oversized_body_is_refused(served: Served) -> None:
    answer = requests.post(f"{served.endpoint}/predict", data=b"x" * (9 * 1024 * 1024), timeout=60)
    assert answer.status_code == 413


def test_a_new_champion_replaces_the_old_without_a_failed_request(served: Served) -> None:
    outcomes: list[tuple[int, str | None]] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            try:
                answer = requests.post(
                    f"{served.endpoint}/predict", json={"complaints": [COMPLAINT]}, timeout=30
                )
                outcomes.append((answer.status_code, answer.json().get("model_version")))
            except requests.RequestException as exc:
                outcomes.append((0, str(exc)))

    thread = threading.Thread(target=client)
    thread.start()
    try:
        keys = [a.key for a in (*MODEL_LAYER_ASSETS, *SERVING_ASSETS)]
        swap = materialize(
            served.home, served.instance, served.resources, keys,
            model_evaluation={"auc_floor": 0.0, "champion_tolerance": 1.0, "slice_tolerance": 1.0},
        )  # fmt: skip
    finally:
        stop.set()
        thread.join(timeout=60)
    assert swap.success
    assert len(outcomes) > 20
    assert [o for o in outcomes if o[0] != 200] == []
    versions = [v for _, v in outcomes]
    assert versions[0] == "1" and versions[-1] == "2"
    assert requests.get(f"{served.endpoint}/healthz", timeout=10).json()["model_version"] == "2"


def test_answered_predictions_are_logged_for_monitoring(served: Served) -> None:
    import json
    import time

    time.sleep(1.5)  # the writer flushes every half second
    files = list(served.home.predictions.glob("*/*.jsonl"))
    assert files
    records = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert any(r["inputs"].get("complaint_id") == "c-1" for r in records)
    assert {"request_time", "model_version", "dispute_probability", "disputed"} <= set(records[0])
