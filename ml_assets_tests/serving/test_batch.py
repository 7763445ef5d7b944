"""Batch scoring's pool sizing, and complaint_scores' refusal without a cluster (no Ray started).

The scoring itself, and its parity with the endpoint, run on a real head in
ml_assets_tests/e2e/test_serving.py."""

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from ml_assets.assets.scoring import complaint_scores
from ml_assets.serving.batch import ACTOR_CPUS, MIN_ACTOR_CPUS, ActorPool, actor_pool
from resources.local_services import free_port
from resources.mlflow_registry import ModelRegistry, sqlite_tracking_uri
from resources.ray_cluster import RayCluster, auth_env


@pytest.mark.parametrize(
    ("free", "expected"),
    [
        (4.0, ActorPool(4, ACTOR_CPUS)),
        (2.5, ActorPool(2, ACTOR_CPUS)),
        # Beside the Serve replicas of a 2-core head: one smaller actor, not none.
        (0.5, ActorPool(1, 0.5)),
        (MIN_ACTOR_CPUS, ActorPool(1, MIN_ACTOR_CPUS)),
    ],
)
def test_the_pool_takes_the_free_cpus(free: float, expected: ActorPool) -> None:
    assert actor_pool(free) == expected


def test_a_cluster_without_room_for_an_actor_is_refused() -> None:
    with pytest.raises(RuntimeError, match=r"add a node \(`ml-assets ray-up --workers 1`\)"):
        actor_pool(MIN_ACTOR_CPUS / 2)


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
            )
        )
