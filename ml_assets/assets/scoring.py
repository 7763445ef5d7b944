"""`complaint_scores`: the champion's score of every landed complaint, per ingestion day, computed
by Ray Data on the cluster and written here (the run stays DuckDB's single writer)."""

from collections.abc import Iterator

import dagster as dg
import pandas as pd

from ml_assets.assets.day_ranges import (
    DAILY_BACKFILL_POLICY,
    DayRecord,
    outputs_by_day,
    run_days,
)
from ml_assets.assets.history import with_history
from ml_assets.assets.keys import (
    CHAMPION_MODEL,
    COMPLAINT_FEATURES,
    COMPLAINT_SCORES,
    DUCKDB_POOL,
    MODEL_GROUP,
    PARTITIONED_TABLE,
)
from ml_assets.assets.serving import serving_config
from ml_assets.columns import INGESTION_DATE_COLUMN
from ml_assets.model.tracking import CHAMPION_ALIAS
from ml_assets.partitions import daily_partitions
from ml_assets.serving.batch import SCORE_COLUMNS, score_on_cluster
from ml_assets.serving.schemas import MAX_COMPLAINTS
from resources.compat.ray import free_cpus_per_node
from resources.mlflow_registry import ModelRegistry
from resources.ray_cluster import RayCluster
from resources.warehouse import Warehouse

SCORES_CODE_VERSION = "2"  # 2: with the history as of the day before each complaint's
# The table's columns: the complaint, its day and the version, then the scores.
TABLE_COLUMNS = ("complaint_id", INGESTION_DATE_COLUMN, "model_version", *SCORE_COLUMNS)


@dg.asset(
    partitions_def=daily_partitions,
    metadata=PARTITIONED_TABLE,
    group_name=MODEL_GROUP,
    code_version=SCORES_CODE_VERSION,
    pool=DUCKDB_POOL,
    backfill_policy=DAILY_BACKFILL_POLICY,
    kinds={"ray", "pandas", "duckdb"},
    ins={"complaint_features": dg.AssetIn(key=COMPLAINT_FEATURES)},
    # The registry's alias decides which version scores; champion_model is what moves it.
    deps=[CHAMPION_MODEL],
)
def complaint_scores(
    context: dg.AssetExecutionContext,
    complaint_features: pd.DataFrame,
    model_registry: ModelRegistry,
    ray_cluster: RayCluster,
    warehouse: Warehouse,
) -> Iterator[dg.Output[pd.DataFrame] | dg.AssetMaterialization]:
    """The champion's dispute probability and decision for each complaint of the day, scored as
    the endpoint scores it, by Ray Data actors over the cluster's nodes."""
    # Inside a Ray job (a run launched on the cluster) this joins that job's cluster: the job
    # sets RAY_ADDRESS, which the settings read for the resource's address too.
    ray_cluster.connect()
    champion = model_registry.version_for_alias(CHAMPION_ALIAS)
    if champion is None:
        raise dg.Failure(
            f"model {model_registry.model_name!r} has no '{CHAMPION_ALIAS}' alias: train and "
            "bless a model first (`ml-assets train`, or materialize champion_model)"
        )
    # The champion's serving config: its login, version and threshold as the replicas get them.
    config = serving_config(
        model_registry, champion.version, ray_cluster.predictions_dir, MAX_COMPLAINTS
    )
    # Each complaint with its history as of the day before its own (the store holds today's).
    features = with_history(warehouse, complaint_features)
    # Free CPUs node by node: an actor must fit on one node, the cluster's total over-promises.
    batch = score_on_cluster(features, config, free_cpus_per_node())
    scores = pd.concat(
        [complaint_features[["complaint_id", INGESTION_DATE_COLUMN]], batch.scores], axis=1
    )
    scores.insert(2, "model_version", config.model_version)
    scores = scores.loc[:, list(TABLE_COLUMNS)].astype({"model_version": "string"})
    run = {
        "version": config.model_version,
        "rows_per_s": round(batch.rows_per_s, 1),
        "nodes": batch.nodes,
        "actors": batch.actors,
    }
    groups = dict(iter(scores.groupby(INGESTION_DATE_COLUMN, sort=False)))
    days = run_days(context)
    by_day = {day: groups.get(pd.Timestamp(day), scores.iloc[0:0]) for day in days}
    records = {
        day: DayRecord(
            {
                **run,
                "rows": len(rows),
                "disputed": int(rows["disputed"].sum()),
            }
        )
        for day, rows in by_day.items()
    }
    yield from outputs_by_day(
        context, COMPLAINT_SCORES, scores, records, by_day, inputs=[COMPLAINT_FEATURES]
    )
