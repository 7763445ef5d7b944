"""Batch scoring on the Ray cluster: stored complaints scored by Ray Data actors exactly as the
endpoint scores them (imports Ray lazily).

Each actor loads the version as a Serve replica does (`app.load_predictor`) and turns every
stored row into the record a caller would send (`features_to_record`), then into what the endpoint
gives its model (`request_records`: the request model, and every free-text field scrubbed).
Only the scores come back to the caller, who writes them (DuckDB has a single writer).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd

from ml_assets.model.capacity import freest_node_cpus
from ml_assets.model.features import COMPANY_COLUMN, FEATURE_COLUMNS
from ml_assets.model.history import HISTORY_FEATURES
from ml_assets.serving.schemas import MAX_COMPLAINTS, ServingConfig

# A batch is one request's worth: the request model scrubs and validates it in one piece.
BATCH_ROWS: Final = MAX_COMPLAINTS
# CPUs an actor reserves: one core's TensorFlow each; less when no node has that much free (the
# Serve replicas hold most of a 2-core head), so that scoring runs beside them.
ACTOR_CPUS: Final = 1.0
# Below this no node has room for an actor: Ray Data would wait for one forever.
MIN_ACTOR_CPUS: Final = 0.25
# Ray counts a resource in ten-thousandths: actors per node are counted in those units, where
# float division would make 0.3 CPU free hold two actors of 0.1, not three.
RAY_RESOURCE_UNITS: Final = 10_000
# How long Ray Data waits for the pool's actors to start, model loads included, before it fails:
# a node's CPUs taken after the pool was sized would otherwise leave an actor pending forever.
ACTOR_START_S: Final = 300
BLOCKS_PER_ACTOR: Final = 4
ROW_COLUMN: Final = "row"  # the input's position: Ray Data does not keep the order
NODE_COLUMN: Final = "node_id"  # which node's actor scored a batch
SCORE_COLUMNS: Final = ("dispute_probability", "disputed")


@dataclass(frozen=True)
class BatchScores:
    """The scores of a batch scoring, in the input's order, and how the cluster ran it."""

    scores: pd.DataFrame  # SCORE_COLUMNS, indexed as the input
    nodes: int  # distinct Ray nodes whose actors scored
    actors: int
    seconds: float  # wall time, actors' start and model load included

    @property
    def rows_per_s(self) -> float:
        """Complaints scored per second of wall time."""
        return len(self.scores) / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class ActorPool:
    """How many scoring actors the cluster has room for, and the CPUs each reserves."""

    size: int
    cpus: float


def actor_pool(free_cpus: Mapping[str, float], actor_cpus: float = ACTOR_CPUS) -> ActorPool:
    """The actors that fit on the nodes' free CPUs (`free_cpus` by node): each reserves
    `actor_cpus`, or what the freest node has if that is less, and fits on one node."""
    largest = freest_node_cpus(free_cpus, MIN_ACTOR_CPUS, "a scoring actor")
    cpus = min(actor_cpus, largest)
    unit = round(cpus * RAY_RESOURCE_UNITS)
    size = sum(round(free * RAY_RESOURCE_UNITS) // unit for free in free_cpus.values())
    return ActorPool(size, cpus)


class EndpointScorer:
    """A Ray Data actor: the version's predictor, loaded once, scoring batches of stored rows."""

    def __init__(self, config: ServingConfig) -> None:
        import ray

        from ml_assets.serving.app import load_predictor

        self.config = config
        # Each row's history comes with it (as of the day before its own): no store is read.
        self.predictor = load_predictor(config, config.model_version, history_given=True)
        self.node_id = ray.get_runtime_context().get_node_id()

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        """The batch's probabilities and decisions, each with its row and the scoring node."""
        from ml_assets.serving.app import request_records
        from ml_assets.serving.deploy import features_to_record
        from ml_assets.serving.schemas import PredictRequest

        stored = batch[[COMPANY_COLUMN, *FEATURE_COLUMNS]].to_dict("records")
        # Validated as the endpoint validates a request body: a row it would refuse fails here.
        body = PredictRequest.model_validate(
            {"complaints": [features_to_record(r) for r in stored]}
        )
        # The history each row had as of the day before its own (the caller joined it).
        history = batch[list(HISTORY_FEATURES)].to_numpy("float32")
        probabilities = self.predictor.predict_records(request_records(body), history)
        return pd.DataFrame(
            {
                ROW_COLUMN: batch[ROW_COLUMN].to_numpy(),
                "dispute_probability": probabilities,
                "disputed": probabilities >= self.config.decision_threshold,
                NODE_COLUMN: self.node_id,
            }
        )


def score_on_cluster(
    features: pd.DataFrame,
    config: ServingConfig,
    free_cpus: Mapping[str, float],
    actor_cpus: float = ACTOR_CPUS,
    start_timeout_s: int = ACTOR_START_S,
) -> BatchScores:
    """Score stored feature rows (company, FEATURE_COLUMNS and HISTORY_FEATURES, as of the day
    before each row's) with `config`'s version on the connected Ray cluster: Ray Data
    `map_batches` over a pool of actors sized to its nodes' free CPUs (`free_cpus` by node id;
    the caller reads them, `resources.compat.ray.free_cpus_per_node`)."""
    import ray
    import ray.data
    from ray.exceptions import GetTimeoutError

    if not ray.is_initialized():
        raise RuntimeError("not connected to a Ray cluster: call ray.init (RayCluster.connect)")
    began = time.perf_counter()
    if features.empty:
        empty = pd.DataFrame({"dispute_probability": [], "disputed": []}, index=features.index)
        return BatchScores(empty.astype({"disputed": bool}), 0, 0, 0.0)
    pool = actor_pool(free_cpus, actor_cpus)
    # Blocks cut here, several per actor (one that starts late still gets some) and each one
    # request's worth at most. `from_blocks` describes them in this process: `from_pandas` and
    # `repartition` run Ray tasks of a whole CPU, which wait forever on a cluster whose free
    # CPUs are fractions (the Serve replicas') or held by the actors.
    inputs = features[[COMPANY_COLUMN, *FEATURE_COLUMNS, *HISTORY_FEATURES]].reset_index(drop=True)
    inputs[ROW_COLUMN] = range(len(inputs))
    blocks = max(BLOCKS_PER_ACTOR * pool.size, math.ceil(len(features) / BATCH_ROWS))
    bounds = np.linspace(0, len(inputs), min(blocks, len(inputs)) + 1).astype(int)
    parts = [
        inputs.iloc[start:end].reset_index(drop=True) for start, end in itertools.pairwise(bounds)
    ]
    # A dataset keeps a copy of the process's DataContext as it is when the dataset is made:
    # the bound on the actors' start is set for this one only.
    context = ray.data.DataContext.get_current()
    unbounded = context.wait_for_min_actors_s
    context.wait_for_min_actors_s = start_timeout_s
    try:
        dataset = ray.data.from_blocks(parts).map_batches(
            EndpointScorer,
            fn_constructor_args=(config,),
            batch_size=BATCH_ROWS,
            batch_format="pandas",
            compute=ray.data.ActorPoolStrategy(size=pool.size),
            num_cpus=pool.cpus,
        )
    finally:
        context.wait_for_min_actors_s = unbounded
    try:
        scored = dataset.to_pandas()
    except GetTimeoutError as exc:
        raise RuntimeError(
            f"{pool.size} scoring actors of {pool.cpus:g} CPUs did not all start within "
            f"{start_timeout_s} s: the cluster's nodes no longer have those CPUs free (other work "
            "took them) or an actor's model load hangs (see the Ray workers' logs); add a node "
            "(`ml-assets ray-up --workers 1`) or retry once the work that holds them is done"
        ) from exc
    seconds = time.perf_counter() - began
    ordered = scored.sort_values(ROW_COLUMN)
    if ordered[ROW_COLUMN].tolist() != list(range(len(features))):
        raise RuntimeError(f"{len(ordered)} scores came back for {len(features)} rows")
    scores = pd.DataFrame(
        {
            "dispute_probability": ordered["dispute_probability"].to_numpy(dtype="float64"),
            "disputed": ordered["disputed"].to_numpy(dtype=bool),
        },
        index=features.index,
    )
    return BatchScores(scores, int(ordered[NODE_COLUMN].nunique()), pool.size, seconds)
