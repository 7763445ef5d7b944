"""Batch scoring's pool sizing, complaint_scores' refusal without a cluster (no Ray started), and
a pool that cannot start failing within its bound (a one-CPU head of its own).

The scoring itself, and its parity with the endpoint, run on a real head in
ml_assets_tests/e2e/test_serving.py."""

import shutil
import tempfile
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from ml_assets.assets.scoring import complaint_scores
from ml_assets.model.features import COMPANY_COLUMN, FEATURE_COLUMNS
from ml_assets.model.history import HISTORY_FEATURES
from ml_assets.serving.batch import (
    ACTOR_CPUS,
    MIN_ACTOR_CPUS,
    ActorPool,
    actor_pool,
    score_on_cluster,
)
from ml_assets.serving.schemas import ServingConfig
from resources.compat.ray import free_cpus_per_node
from resources.local_services import free_port
from resources.mlflow_registry import ModelRegistry, sqlite_tracking_uri
from resources.ray_cluster import RayCluster, auth_env, start_head, stop_head
from resources.warehouse import Warehouse


@pytest.mark.parametrize(
    ("free", "expected"),
    [
        ({"n1": 4.0}, ActorPool(4, ACTOR_CPUS)),
        ({"n1": 2.5}, ActorPool(2, ACTOR_CPUS)),
        # An actor fits on one node: what is left on each does not add up to another.
        ({"n1": 2.0, "n2": 1.0}, ActorPool(3, ACTOR_CPUS)),
        ({"n1": 1.5, "n2": 1.5}, ActorPool(2, ACTOR_CPUS)),
        # Half a CPU free on each of two nodes is one CPU in all, yet an actor of one CPU fits
        # on neither: an actor of half a CPU on each.
        ({"n1": 0.5, "n2": 0.5}, ActorPool(2, 0.5)),
        # Beside the Serve replicas of a 2-core head: one smaller actor, not none; a node with
        # less free than the freest holds none of its size.
        ({"n1": 0.5, "n2": 0.3}, ActorPool(1, 0.5)),
        ({"n1": MIN_ACTOR_CPUS, "n2": 0.0}, ActorPool(1, MIN_ACTOR_CPUS)),
    ],
)
def test_the_pool_takes_the_free_cpus_node_by_node(
    free: dict[str, float], expected: ActorPool
) -> None:
    assert actor_pool(free) == expected


def test_actors_per_node_are_counted_in_rays_units() -> None:
    # 0.3 / 0.1 is 2.9999999999999996 in floats: two actors, where Ray places three.
    assert actor_pool({"n1": 0.3, "n2": 0.6}, actor_cpus=0.1) == ActorPool(9, 0.1)


@pytest.mark.parametrize("free", [{"n1": 0.1}, {"n1": 0.2, "n2": 0.2}, {}])
def test_a_cluster_without_room_for_an_actor_on_one_node_is_refused(
    free: dict[str, float],
) -> None:
    with pytest.raises(RuntimeError, match=r"add a node \(`ml-assets ray-up --workers 1`\)"):
        actor_pool(free)


def test_complaint_scores_without_a_cluster_says_how_to_start_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray

    if ray.is_initialized():
        pytest.skip("this process is connected to a Ray cluster already")
    token = tmp_path / "token"
    # The resource exports the token's variables for Ray: given back after the test.
    for name, value in auth_env(token).items():
        monkeypatch.setenv(name, value)
    nowhere = RayCluster(
        address=f"127.0.0.1:{free_port()}",
        token_path=str(token),
        predictions_dir=str(tmp_path / "predictions"),
    )
    registry = ModelRegistry(
        tracking_uri=sqlite_tracking_uri(tmp_path),
        artifact_location=str(tmp_path / "artifacts"),
        experiment_name="scoring_test",
        model_name="scoring_test",
    )
    context = dg.build_asset_context(partition_key="2016-03-01")
    with pytest.raises(dg.Failure, match=r"No Ray cluster reachable .*`ml-assets ray-up`"):
        list(
            complaint_scores(
                context,
                complaint_features=pd.DataFrame(),
                model_registry=registry,
                ray_cluster=nowhere,
                warehouse=Warehouse(database=str(tmp_path / "warehouse.duckdb")),
            )
        )


@pytest.mark.services
def test_a_pool_that_cannot_start_fails_within_its_bound_saying_what_to_do(
    tmp_path: Path,
) -> None:
    import ray

    if ray.is_initialized():
        pytest.skip("this process is connected to a Ray cluster already")
    # Ray's session paths end in unix sockets (at most 107 bytes): a short temp dir of our own.
    ray_dir = Path(tempfile.mkdtemp(prefix="rb", dir="/tmp"))
    port = free_port()
    try:
        start_head(ray_dir, ray_dir / "auth_token", num_cpus=1, port=port, client_port=free_port())
        RayCluster(
            address=f"127.0.0.1:{port}",
            token_path=str(ray_dir / "auth_token"),
            predictions_dir=str(tmp_path),
        ).connect()
        (node,) = free_cpus_per_node()
        assert free_cpus_per_node() == {node: 1.0}
        config = ServingConfig(
            tracking_uri=sqlite_tracking_uri(tmp_path),
            model_name="never_loaded",
            model_version="1",
            decision_threshold=0.5,
            provenance={},
        )
        features = pd.DataFrame(
            {column: [None] for column in (COMPANY_COLUMN, *FEATURE_COLUMNS)}
            | {column: [0.0] for column in HISTORY_FEATURES}
        )
        # The node's CPUs as they were when the pool was sized, and taken since: its actor of
        # two CPUs never starts.
        with pytest.raises(RuntimeError, match=r"did not all start within 3 s.*ray-up --workers 1"):
            score_on_cluster(features, config, {node: 2.0}, actor_cpus=2.0, start_timeout_s=3)
    finally:
        ray.shutdown()
        stop_head(ray_dir)
        shutil.rmtree(ray_dir, ignore_errors=True)
