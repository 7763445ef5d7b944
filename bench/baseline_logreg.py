"""Baseline: logistic regression on one-hot categoricals vs the Keras model, on the same split.

Reads the `training_dataset` table that `ml-assets train` materialized (so both models see exactly
the same train and evaluation rows), fits scikit-learn's LogisticRegression on the train split
(train + validation rows: the baseline has nothing to stop early on), scores the evaluation split,
and scores the same rows with a registered Keras model version (default: the champion).

    .venv/bin/python bench/baseline_logreg.py [--home PATH] [--version N] [--out FILE] [--smoke]

Prints a Markdown table and writes bench/results/baseline_<home name>.json (`--smoke`: to a temp
folder; the fit is already small); its last line is `written FILE`.
"""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import OneHotEncoder

from ml_assets.assets.keys import WAREHOUSE_SCHEMA
from ml_assets.definitions import local_resources
from ml_assets.model.features import CATEGORICAL_FEATURES, LABEL
from ml_assets.model.metrics import best_f1_threshold, binary_metrics
from ml_assets.model.network import predict_proba
from ml_assets.model.tracking import CHAMPION_ALIAS, load_keras_model
from ml_assets.model.training import EVALUATION, SPLIT_COLUMN, TRAIN, VALIDATION
from ml_assets.settings import load_settings
from resources.home import ProjectHome
from resources.mlflow_registry import ModelRegistry
from smoke import bench_parser, output_path, parse

REPORTED = (
    "roc_auc",
    "pr_auc",
    "log_loss",
    "brier",
    "accuracy",
    "baseline_accuracy",
    "precision",
    "recall",
)


def logistic_regression_scores(dataset: pd.DataFrame) -> tuple[np.ndarray, float]:
    """Evaluation-split probabilities of a one-hot logistic regression, and its F1 threshold."""
    train = dataset[dataset[SPLIT_COLUMN].isin([TRAIN, VALIDATION])]
    evaluation = dataset[dataset[SPLIT_COLUMN] == EVALUATION]
    columns = list(CATEGORICAL_FEATURES)
    encoder = OneHotEncoder(handle_unknown="ignore")
    model = LogisticRegression(max_iter=2000, class_weight="balanced", C=1.0)
    model.fit(encoder.fit_transform(train[columns].astype(str)), train[LABEL].to_numpy())
    train_probs = model.predict_proba(encoder.transform(train[columns].astype(str)))[:, 1]
    threshold = best_f1_threshold(train[LABEL].to_numpy(), train_probs)
    return model.predict_proba(encoder.transform(evaluation[columns].astype(str)))[:, 1], threshold


def main() -> None:
    """Compare the baseline and the Keras model on the evaluation split of a project home."""
    parser = bench_parser(__doc__)
    parser.add_argument("--home", help="project home (default: $ML_ASSETS_HOME or .ml_assets/)")
    parser.add_argument("--version", help="registered model version (default: the champion)")
    parser.add_argument("--out", help="the JSON (default bench/results/baseline_<home name>.json)")
    args = parse(parser, {})
    home = ProjectHome.at(args.home or load_settings().home)
    with duckdb.connect(str(home.warehouse), read_only=True) as conn:
        dataset = conn.execute(f"select * from {WAREHOUSE_SCHEMA}.training_dataset").fetchdf()
    evaluation = dataset[dataset[SPLIT_COLUMN] == EVALUATION]
    labels = evaluation[LABEL].to_numpy(dtype="float64")

    registry = local_resources(home)["model_registry"]
    assert isinstance(registry, ModelRegistry)
    version = (
        registry.get_version(args.version)
        if args.version
        else registry.version_for_alias(CHAMPION_ALIAS)
    )
    if version is None:
        raise SystemExit("no champion registered: run `ml-assets train` first or pass --version")
    keras_model = load_keras_model(version.version, registry.tracking_uri, registry.model_name)
    keras_probs = predict_proba(keras_model, evaluation)
    keras_threshold = float(version.tags.get("decision_threshold", 0.5))
    baseline_probs, baseline_threshold = logistic_regression_scores(dataset)

    results = {
        f"keras v{version.version}": binary_metrics(labels, keras_probs, keras_threshold).to_dict(),
        "logistic regression (one-hot)": binary_metrics(
            labels, baseline_probs, baseline_threshold
        ).to_dict(),
    }
    counts = dataset.groupby(SPLIT_COLUMN).size().to_dict()
    print(f"home {home.root}: rows per split {counts}, evaluation positives {int(labels.sum())}")
    print("| model | " + " | ".join(REPORTED) + " |")
    print("| --- |" + " ---: |" * len(REPORTED))
    for name, metrics in results.items():
        print(f"| {name} | " + " | ".join(f"{metrics[k]:.4f}" for k in REPORTED) + " |")
    out = output_path(args.out, f"baseline_{home.root.name}.json", args.smoke)
    out.write_text(json.dumps({"splits": counts, "results": results}, indent=1))
    print(f"written {out}")


if __name__ == "__main__":
    main()
