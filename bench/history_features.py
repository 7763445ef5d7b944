"""The company history features on the real extracts' time split: AUC with and without them.

Reads a real CFPB export (`--export`, e.g. ../shared/data/cfpb/cfpb_export_2013_2017_labeled.csv),
validates it with each complaint ingested on the day it was received, logs its labels (each
arrived on its own day: the export publishes them with the complaint) and joins every
complaint's company history as of the day before its own, as `training_dataset` does. The
newest `--evaluation-days` are held out (the pipeline's time split). On the same rows:

- scikit-learn's logistic regression on the one-hot categoricals, without and with the history
  (counts logged, everything standardized): the baseline with the same features;
- the pipeline's Keras model (`train_dispute_model`), without and with the history input.

Each difference gets a paired bootstrap 95 % interval (scipy.stats.bootstrap over the evaluation
rows). Writes PREFIX.md and PREFIX.json (default bench/results/history_features; `--smoke`: a
temp folder); the last line is `history features: ...`.

    .venv/bin/python bench/history_features.py --export PATH [--evaluation-days 380] [--smoke]
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import bootstrap
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from ml_assets.columns import INGESTION_DATE_COLUMN
from ml_assets.ingest.cfpb_format import read_complaints_csv
from ml_assets.ingest.validation import split_valid_rejected
from ml_assets.model.features import CATEGORICAL_FEATURES, LABEL, to_features
from ml_assets.model.history import COUNT_FEATURES, HISTORY_FEATURES, with_history_from
from ml_assets.model.network import ModelParams, predict_proba
from ml_assets.model.training import (
    EVALUATION,
    SPLIT_COLUMN,
    TRAIN,
    VALIDATION,
    Window,
    split_dataset,
    train_dispute_model,
)
from smoke import bench_parser, output_path, parse

RATE_FEATURES = tuple(c for c in HISTORY_FEATURES if c not in COUNT_FEATURES)


def real_dataset(export: Path, evaluation_days: int) -> pd.DataFrame:
    """The export's labelled complaints with their history, split by time as the pipeline splits."""
    raw = read_complaints_csv(export.read_bytes(), export.name)
    raw[INGESTION_DATE_COLUMN] = pd.to_datetime(raw["date_received"])
    valid = split_valid_rejected(raw).valid.reset_index(drop=True)
    last = pd.to_datetime(valid[INGESTION_DATE_COLUMN]).max()
    features = with_history_from(valid, to_features(valid), (last + timedelta(days=1)).date())
    first = pd.to_datetime(features[INGESTION_DATE_COLUMN]).min()
    return split_dataset(features, Window(first, last), "time", evaluation_days)


def logistic_regression(dataset: pd.DataFrame, history: bool) -> np.ndarray:
    """Evaluation probabilities of a one-hot logistic regression fitted on train + validation."""
    fitted = dataset[dataset[SPLIT_COLUMN].isin([TRAIN, VALIDATION])]
    evaluation = dataset[dataset[SPLIT_COLUMN] == EVALUATION]
    parts: list[tuple[str, object, list[str]]] = [
        ("categories", OneHotEncoder(handle_unknown="ignore"), list(CATEGORICAL_FEATURES))
    ]
    if history:
        logged = make_pipeline(FunctionTransformer(np.log1p), StandardScaler())
        parts += [
            ("counts", logged, list(COUNT_FEATURES)),
            ("rates", StandardScaler(), list(RATE_FEATURES)),
        ]
    model = make_pipeline(
        ColumnTransformer(parts),
        LogisticRegression(max_iter=3000, class_weight="balanced"),
    )
    columns = [c for _, _, names in parts for c in names]
    model.fit(fitted[columns].astype({c: str for c in CATEGORICAL_FEATURES}), fitted[LABEL])
    return model.predict_proba(evaluation[columns].astype({c: str for c in CATEGORICAL_FEATURES}))[
        :, 1
    ]


def keras(dataset: pd.DataFrame, history: bool, seed: int, epochs: int | None) -> np.ndarray:
    """Evaluation probabilities of the pipeline's model, trained as the pipeline trains it."""
    params = ModelParams(seed=seed, use_history=history)
    if epochs is not None:
        params = params.model_copy(update={"epochs": epochs})
    trained = train_dispute_model(dataset, params)
    return predict_proba(trained.model, dataset[dataset[SPLIT_COLUMN] == EVALUATION])


def difference_interval(
    labels: np.ndarray, with_history: np.ndarray, without: np.ndarray, resamples: int, seed: int
) -> tuple[float, float]:
    """The paired bootstrap 95 % interval of AUC(with) - AUC(without) over the evaluation rows."""

    def difference(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
        return float(roc_auc_score(y, a) - roc_auc_score(y, b))

    result = bootstrap(
        (labels, with_history, without),
        difference,
        paired=True,
        vectorized=False,
        n_resamples=resamples,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--export", required=True, help="a real labelled CFPB export (CSV)")
    parser.add_argument("--evaluation-days", type=int, default=380, help="newest days held out")
    parser.add_argument("--epochs", type=int, default=None, help="Keras epochs (default: its own)")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--out", help="the results' path prefix")
    args = parse(parser, {"epochs": 1, "resamples": 30})
    dataset = real_dataset(Path(args.export), args.evaluation_days)
    labels = dataset.loc[dataset[SPLIT_COLUMN] == EVALUATION, LABEL].to_numpy().astype(int)
    splits = dataset[SPLIT_COLUMN].value_counts().to_dict()
    seed = ModelParams().seed
    probabilities = {
        ("logistic regression", False): logistic_regression(dataset, False),
        ("logistic regression", True): logistic_regression(dataset, True),
        ("Keras wide & deep", False): keras(dataset, False, seed, args.epochs),
        ("Keras wide & deep", True): keras(dataset, True, seed, args.epochs),
    }
    rows = []
    for model in ("logistic regression", "Keras wide & deep"):
        without = probabilities[(model, False)]
        with_history = probabilities[(model, True)]
        low, high = difference_interval(labels, with_history, without, args.resamples, seed)
        rows.append(
            {
                "model": model,
                "auc_without": round(float(roc_auc_score(labels, without)), 4),
                "auc_with": round(float(roc_auc_score(labels, with_history)), 4),
                "difference_low": round(low, 4),
                "difference_high": round(high, 4),
            }
        )
    out = output_path(args.out, "history_features", args.smoke)
    table = [
        "# Company history features on the real extracts' time split",
        "",
        f"Export `{Path(args.export).name}`; rows by split: {splits}; evaluation positives "
        f"{int(labels.sum())} of {len(labels)}.",
        "",
        "| model | AUC without history | AUC with history | 95 % interval of the difference |",
        "|---|---|---|---|",
        *(
            f"| {r['model']} | {r['auc_without']:.4f} | {r['auc_with']:.4f} | "
            f"{r['difference_low']:+.4f} .. {r['difference_high']:+.4f} |"
            for r in rows
        ),
    ]
    out.with_suffix(".md").write_text("\n".join(table) + "\n")
    out.with_suffix(".json").write_text(json.dumps({"splits": splits, "rows": rows}, indent=2))
    print("\n".join(table))
    lr, nn = rows
    print(
        f"history features: lr_auc_without={lr['auc_without']} lr_auc_with={lr['auc_with']} "
        f"keras_auc_without={nn['auc_without']} keras_auc_with={nn['auc_with']}"
    )


if __name__ == "__main__":
    main()
