"""`live_promotion`: a challenger serving beside the champion becomes the champion, or is
retired, on the live evidence of the requests both versions scored."""

import dagster as dg
import pandas as pd

from ml_assets.assets.keys import (
    CHAMPION_METADATA,
    COMPLAINT_FEATURES,
    DECISION_METADATA,
    LIVE_PERFORMANCE,
    MODEL_GROUP,
    SERVED_PREDICTIONS,
    WAREHOUSE_SCHEMA,
)
from ml_assets.assets.monitoring import known_labels
from ml_assets.model.promotion import promote
from ml_assets.model.tracking import (
    BLESSED_TAG,
    CHALLENGER_ALIAS,
    CHAMPION_ALIAS,
    DEFAULT_DECISION_THRESHOLD,
    RETIRED_TAG,
    THRESHOLD_TAG,
)
from ml_assets.monitoring.live_promotion import LivePromotionPolicy, judge_live, paired_scores
from ml_assets.monitoring.served import users_traffic
from resources.mlflow_registry import ModelRegistry
from resources.warehouse import Warehouse

PROMOTION_CODE_VERSION = "1"


class LivePromotionConfig(dg.Config, LivePromotionPolicy):
    """When live evidence promotes a challenger (the fields and defaults of
    `LivePromotionPolicy`)."""


def _served(warehouse: Warehouse, versions: list[str]) -> pd.DataFrame:
    """Every logged prediction of these versions (users' requests, shadow scores included)."""
    table = SERVED_PREDICTIONS.path[-1]
    if not warehouse.has_table(WAREHOUSE_SCHEMA, table):
        return pd.DataFrame(
            columns=["complaint_id", "model_version", "request_time", "dispute_probability"]
        )
    with warehouse.connect() as conn:
        served = conn.execute(
            # `smoke` where the table has it (stored since it is logged): COLUMNS takes those
            # of the names that exist.
            "select columns('^(complaint_id|model_version|request_time|dispute_probability|smoke)$') "
            f"from {WAREHOUSE_SCHEMA}.{table} where model_version in (select unnest(?::varchar[]))",
            [versions],
        ).fetchdf()
    return users_traffic(served)


@dg.asset(
    group_name=MODEL_GROUP,
    code_version=PROMOTION_CODE_VERSION,
    # The labels it joins are complaint_features' (they land days after the requests).
    deps=[SERVED_PREDICTIONS, LIVE_PERFORMANCE, COMPLAINT_FEATURES],
    kinds={"mlflow"},
)
def live_promotion(
    config: LivePromotionConfig, warehouse: Warehouse, model_registry: ModelRegistry
) -> dg.MaterializeResult:
    """Promotes the challenger serving beside the champion when its live evidence holds up,
    retires it when it does not, or waits for more labels; every condition in words."""
    champion = model_registry.version_for_alias(CHAMPION_ALIAS)
    challenger = model_registry.version_for_alias(CHALLENGER_ALIAS)
    if (
        champion is None
        or challenger is None
        or challenger.version == champion.version
        or RETIRED_TAG in challenger.tags
    ):
        # The champion is recorded whatever the decision: the retraining policy reads the latest
        # record of champion_model and of this asset.
        return dg.MaterializeResult(
            metadata={
                DECISION_METADATA: "none",
                "outcome": "no challenger beside the champion",
                **({CHAMPION_METADATA: champion.version} if champion else {}),
            }
        )
    served = _served(warehouse, [champion.version, challenger.version])
    ids = served["complaint_id"].dropna().astype(str).unique().tolist()
    paired = paired_scores(
        served, known_labels(warehouse, ids), champion.version, challenger.version
    )
    verdict = judge_live(
        paired,
        challenger.tags.get(BLESSED_TAG) == "true",
        float(challenger.tags.get(THRESHOLD_TAG, DEFAULT_DECISION_THRESHOLD)),
        config,
    )
    now = champion.version
    if verdict.decision == "promote":
        change = promote(model_registry, challenger.version)
        now = change.champion
        outcome = f"challenger v{change.champion} is the champion, replacing v{change.previous}"
    elif verdict.decision == "retire":
        model_registry.set_version_tag(challenger.version, RETIRED_TAG, verdict.reason)
        outcome = (
            f"kept v{champion.version}; challenger v{challenger.version} retired: {verdict.reason}"
        )
    else:
        outcome = (
            f"kept v{champion.version}; challenger v{challenger.version} waits for live "
            f"evidence: {verdict.reason}"
        )
    comparison = verdict.comparison
    return dg.MaterializeResult(
        metadata={
            DECISION_METADATA: verdict.decision,
            # The champion after this decision (read by the retraining policy).
            CHAMPION_METADATA: now,
            "outcome": outcome,
            "conditions": dg.MetadataValue.md(verdict.to_markdown()),
            "paired_labelled_requests": verdict.paired,
            "challenger_version": challenger.version,
            "champion_version": champion.version,
            "challenger_live_auc": comparison.challenger_auc if comparison else None,
            "champion_live_auc": comparison.champion_auc if comparison else None,
        }
    )
