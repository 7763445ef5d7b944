"""Live performance: served predictions joined with late labels, scored as offline evaluation."""

import json
import math
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest

from ml_assets.assets.keys import WAREHOUSE_SCHEMA
from ml_assets.definitions import local_resources
from ml_assets.jobs import MONITORING_ASSETS
from ml_assets.model.features import LABEL
from ml_assets.model.metrics import binary_metrics
from ml_assets.monitoring.performance import (
    LABEL_COLUMN,
    LiveEvidencePolicy,
    join_labels,
    live_degradation,
    live_performance,
)
from ml_assets.monitoring.served import file_lines, parse_prediction_logs
from ml_assets.partitions import PARTITIONS_START_DATE
from ml_assets.serving.schemas import SMOKE_COMPLAINT_ID_PREFIX
from resources.home import ProjectHome

DAY = "2016-01-05"
SMOKE = SMOKE_COMPLAINT_ID_PREFIX


def _log(rows: list[tuple[str, str, float, float]]) -> pd.DataFrame:
    """Logged predictions (complaint id, version, probability, threshold), read as the asset does."""
    lines = [
        json.dumps(
            {
                "request_time": f"{DAY}T12:00:00+00:00",
                "model_name": "complaint_dispute_model",
                "model_version": version,
                "decision_threshold": threshold,
                "inputs": {"complaint_id": complaint},
                "dispute_probability": probability,
                "disputed": probability >= threshold,
            }
        )
        for complaint, version, probability, threshold in rows
    ]
    log = parse_prediction_logs(DAY, [("a.jsonl", file_lines("\n".join(lines).encode()))])
    assert log.quarantined.empty
    return log.predictions


def test_figures_per_version_match_a_hand_computation() -> None:
    served = _log(
        [
            ("c1", "3", 0.9, 0.5),
            ("c2", "3", 0.8, 0.5),
            ("c3", "3", 0.35, 0.5),
            ("c4", "3", 0.15, 0.5),
            ("c5", "3", 0.6, 0.5),  # its label has not arrived
            ("c6", "4", 0.4, 0.35),  # a new version, no label yet
        ]
    )
    labels = pd.DataFrame(
        {
            "complaint_id": ["c1", "c2", "c3", "c4", "c4", "c9", "c5"],
            LABEL_COLUMN: [1.0, 0.0, 1.0, 0.0, 0.0, 1.0, math.nan],
        }
    )
    table = live_performance(DAY, join_labels(served, labels)).set_index("model_version")
    v3, v4 = table.loc["3"], table.loc["4"]
    assert (v3["served"], v3["labelled"], v3["positives"]) == (5, 4, 2)
    # Pairs (positive, negative): (0.9, 0.8) right, (0.9, 0.15) right, (0.35, 0.8) wrong,
    # (0.35, 0.15) right: 3 of 4.
    assert v3["roc_auc"] == pytest.approx(0.75)
    # At 0.5: c1 and c2 answered disputed, c1 rightly; c3 missed.
    assert (v3["precision"], v3["recall"]) == (0.5, 0.5)
    assert v3["predicted_positive_rate"] == 0.5
    assert v3["mean_probability"] == pytest.approx(0.55)
    assert v3["positive_rate"] == 0.5
    # One row per bin of 0.1: |0.9 - 1|, |0.8 - 0|, |0.35 - 1|, |0.15 - 0| over 4 rows.
    assert v3["ece"] == pytest.approx((0.1 + 0.8 + 0.65 + 0.15) / 4)
    assert (v4["served"], v4["labelled"], v4["threshold"]) == (1, 0, 0.35)
    assert math.isnan(v4["roc_auc"]) and math.isnan(v4["ece"])


def test_the_same_rows_scored_offline_give_the_same_figures() -> None:
    rng = np.random.default_rng(3)
    ids = [f"c{i}" for i in range(400)]
    probabilities = rng.uniform(size=400).round(6)
    labels = (rng.uniform(size=400) < probabilities).astype(float)
    threshold = 0.42
    offline = binary_metrics(labels, probabilities, threshold)  # as model_evaluation scores

    served = _log([(c, "7", float(p), threshold) for c, p in zip(ids, probabilities, strict=True)])
    late = pd.DataFrame({"complaint_id": ids[::-1], LABEL_COLUMN: labels[::-1]})
    (live,) = live_performance(DAY, join_labels(served, late)).to_dict("records")
    for name in ("roc_auc", "pr_auc", "ece", "mean_probability", "precision", "recall"):
        assert live[name] == pytest.approx(getattr(offline, name), abs=1e-12), name
    assert live["labelled"] == offline.count == 400
    assert live["positives"] == offline.positives


def test_one_version_served_with_two_thresholds_is_an_error() -> None:
    served = _log([("c1", "3", 0.9, 0.5), ("c2", "3", 0.8, 0.4)])
    labels = pd.DataFrame({"complaint_id": ["c1"], LABEL_COLUMN: [1.0]})
    with pytest.raises(ValueError, match="version 3 served with 2 thresholds"):
        live_performance(DAY, join_labels(served, labels))


def _features(home: ProjectHome, labels: dict[str, float | None]) -> None:
    """The warehouse's features table holding only what live_performance reads: ids and labels."""
    home.root.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(home.warehouse)) as conn:
        conn.execute(f"create schema if not exists {WAREHOUSE_SCHEMA}")
        conn.execute(
            f"create or replace table {WAREHOUSE_SCHEMA}.complaint_features "
            f"(complaint_id varchar, {LABEL} double, ingestion_date timestamp)"
        )
        conn.executemany(
            f"insert into {WAREHOUSE_SCHEMA}.complaint_features values (?, ?, ?)",
            [(c, label, DAY) for c, label in labels.items()],
        )


def test_the_asset_scores_each_day_logs_to_the_served_run_and_follows_late_labels(
    tmp_path: Path,
) -> None:
    home = ProjectHome(tmp_path / "home")
    resources = local_resources(home)
    registry = resources["model_registry"]
    client = registry.client()
    mlflow_run = client.create_run(registry.experiment_id())
    client.create_registered_model(registry.model_name)
    version = client.create_model_version(
        registry.model_name, "file:///nowhere", mlflow_run.info.run_id
    )
    # The last is a deployment's smoke request (an evaluation row, signed): logged, not users'
    # traffic.
    rows = [("c1", 0.9), ("c2", 0.8), ("c3", 0.35), ("c4", 0.15), (f"{SMOKE}7", 0.99)]
    folder = home.predictions / DAY
    folder.mkdir(parents=True)
    (folder / "replica.jsonl").write_text(
        "\n".join(
            json.dumps(
                {
                    "request_time": f"{DAY}T12:00:00+00:00",
                    "model_name": registry.model_name,
                    "model_version": str(version.version),
                    "decision_threshold": 0.5,
                    "inputs": {"complaint_id": c},
                    "dispute_probability": p,
                    "disputed": p >= 0.5,
                    "smoke": c.startswith(SMOKE),
                }
            )
            for c, p in rows
        )
        + "\n"
    )
    _features(home, {"c1": 1.0, "c2": 0.0, "c3": None, "c4": None, f"{SMOKE}7": 0.0})

    with dg.instance_for_test() as instance:

        def ingest() -> dict:
            result = dg.materialize(
                MONITORING_ASSETS, partition_key=DAY, resources=resources, instance=instance
            )
            (event,) = [
                e
                for e in result.get_asset_materialization_events()
                if e.asset_key == dg.AssetKey("live_performance")
            ]
            return event.materialization.metadata

        first = ingest()
        assert first["labelled"].value == 2
        assert "model_version |   served |   labelled" in first["by_version"].value
        assert first["over_time"].value.startswith("![live performance over time](data:image/png")
        _features(home, {"c1": 1.0, "c2": 0.0, "c3": 1.0, "c4": 0.0, f"{SMOKE}7": 0.0})
        assert ingest()["labelled"].value == 4

    with duckdb.connect(str(home.warehouse), read_only=True) as conn:
        ((labelled, auc),) = conn.execute(
            f"select labelled, roc_auc from {WAREHOUSE_SCHEMA}.live_performance"
        ).fetchall()
    # The day replaced, with every label, and without the smoke request (0.99 for a 0 would
    # have made it 5 labelled and an AUC of 0.5).
    assert (labelled, auc) == (4, 0.75)
    history = client.get_metric_history(mlflow_run.info.run_id, "live_labelled")
    day_step = (pd.Timestamp(DAY) - pd.Timestamp(PARTITIONS_START_DATE)).days
    assert [(m.step, m.value) for m in history] == [(day_step, 2.0), (day_step, 4.0)]
    assert client.get_metric_history(mlflow_run.info.run_id, "live_roc_auc")[-1].value == 0.75


@pytest.mark.parametrize(
    ("labelled", "live", "offline", "expected"),
    [
        (200, 0.52, None, "live ROC AUC 0.520 below the floor 0.55 (200 labelled)"),
        (199, 0.30, None, ""),  # too few labels to judge
        (500, 0.66, 0.72, "live ROC AUC 0.660 more than 0.05 below the offline 0.720"),
        (500, 0.68, 0.72, ""),  # within the margin
        (500, math.nan, 0.72, ""),  # one class only: no AUC
    ],
)
def test_live_degradation_names_the_floor_or_the_margin(
    labelled: int, live: float, offline: float | None, expected: str
) -> None:
    policy = LiveEvidencePolicy(auc_floor=0.55, margin=0.05, min_labelled=200)
    reason = live_degradation(labelled, live, offline, policy)
    assert reason.startswith(expected) if expected else reason == ""
