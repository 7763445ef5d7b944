"""The Ray Tune search's best configuration against the default one, on a home's time split.

Reads the `training_dataset` table a project home holds (the real extracts' time split after
`ml-assets land-cfpb ../shared/data/cfpb/cfpb_export_2013_2017_labeled.csv`, `ml-assets
materialize` and `ml-assets train --window-days 2000 --evaluation-days 437 --split time`), starts
a Ray head of its own on 127.0.0.1 (a short temp dir, stopped at the end; or joins `--address`),
runs the pipeline's search (`ml_assets.model.search`, ASHA) on it, then trains the default and the
best configuration as the pipeline trains its model and scores both on validation and on the
held-out evaluation split, which the search never sees.

    .venv/bin/python bench/search.py [--home PATH] [--trials 8] [--max-epochs 8] [--smoke]

Prints a Markdown report and writes bench/results/search.md (`--smoke`: two trials of one epoch,
written to a temp folder); its last line is `written FILE`.
"""

from __future__ import annotations

import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ablation import hanley_mcneil_se, load_dataset
from ml_assets.model.features import LABEL
from ml_assets.model.network import ModelParams, predict_proba
from ml_assets.model.search import (
    DEFAULT_CONCURRENCY,
    DEFAULT_TRIALS,
    MAX_TRIAL_EPOCHS,
    SEARCH_METRIC,
    search_hyperparameters,
)
from ml_assets.model.training import EVALUATION, SPLIT_COLUMN, VALIDATION, train_dispute_model
from ml_assets.settings import load_settings
from resources.compat.ray import free_cpus_per_node
from resources.home import ProjectHome
from resources.local_services import free_port
from resources.ray_cluster import RayCluster, start_head, stop_head
from smoke import bench_parser, output_path, parse

SMOKE_SIZE = {"trials": 2, "max_epochs": 1, "epochs": 1}
HEAD_CPUS = 2  # this machine's cores


@dataclass(frozen=True)
class Scored:
    """A configuration trained as the pipeline trains it, and its AUCs."""

    validation_auc: float
    evaluation_auc: float
    epochs: int
    seconds: float


@contextmanager
def ray_cluster(address: str | None, token_path: str | None) -> Iterator[str]:
    """Connected to the cluster at `address`, or to a head started here and stopped after."""
    if address:
        if not token_path:
            raise SystemExit("--address needs --token (the cluster's token file)")
        RayCluster(address=address, token_path=token_path, predictions_dir="").connect()
        yield address
        return
    # Ray's session paths end in unix sockets (at most 107 bytes): a short temp dir.
    ray_dir = Path(tempfile.mkdtemp(prefix="r", dir="/tmp"))
    port = free_port()
    try:
        start_head(ray_dir, ray_dir / "auth_token", HEAD_CPUS, port=port, client_port=free_port())
        address = f"127.0.0.1:{port}"
        RayCluster(
            address=address, token_path=str(ray_dir / "auth_token"), predictions_dir=""
        ).connect()
        yield address
    finally:
        import ray

        ray.shutdown()
        stop_head(ray_dir)
        shutil.rmtree(ray_dir, ignore_errors=True)


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """scikit-learn's ROC AUC."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels.astype(int), scores))


def train_and_score(dataset: pd.DataFrame, params: ModelParams) -> Scored:
    """Train as the pipeline does (early stopping, calibration) and score both splits."""
    began = time.perf_counter()
    trained = train_dispute_model(dataset, params)
    seconds = time.perf_counter() - began

    def auc(split: str) -> float:
        rows = dataset[dataset[SPLIT_COLUMN] == split]
        return roc_auc(rows[LABEL].to_numpy(), predict_proba(trained.model, rows))

    epochs = len(trained.history.get("loss", []))
    return Scored(auc(VALIDATION), auc(EVALUATION), epochs, seconds)


def report(
    dataset: pd.DataFrame,
    title: str,
    found_table: pd.DataFrame,
    best_config: dict[str, object],
    search_seconds: float,
    default: Scored,
    best: Scored,
    best_is_default: bool,
) -> list[str]:
    """The Markdown report: the splits, the trials, and default against best."""
    counts = {
        str(split): (len(rows), int(rows[LABEL].sum()))
        for split, rows in dataset.groupby(SPLIT_COLUMN)
    }
    rows, positives = counts[VALIDATION]
    se = hanley_mcneil_se(default.validation_auc, positives, rows - positives)
    table = found_table.rename(columns={SEARCH_METRIC: "best val AUC (trial)"})
    return [
        f"# Hyperparameter search (Ray Tune, ASHA) on {title}",
        "",
        f"`bench/search.py {shlex.join(sys.argv[1:])}`",
        "",
        f"Rows (positives) per split: {', '.join(f'{k} {n} ({p})' for k, (n, p) in counts.items())}.",
        f"{len(found_table)} trials (the first is the default configuration), "
        f"{found_table['epochs'].sum()} epochs in all, in {search_seconds:.0f} s on a "
        f"{HEAD_CPUS}-CPU Ray head (head start not counted). Trials train on train and are "
        "judged on validation; the evaluation split is never seen by the search.",
        f"A validation AUC near {default.validation_auc:.2f} on {positives} positives and "
        f"{rows - positives} negatives has a sampling standard error of ±{se:.3f} (Hanley & "
        "McNeil), and the best of several trials on the same rows is biased upwards: the "
        "evaluation column is the unbiased comparison.",
        "",
        "## Trials",
        "",
        table.to_markdown(index=False, floatfmt=".4f"),
        "",
        "## Default against the search's best, each trained as the pipeline trains it",
        "",
        "| configuration | validation AUC | evaluation AUC | epochs | seconds |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| default | {default.validation_auc:.4f} | {default.evaluation_auc:.4f} | "
        f"{default.epochs} | {default.seconds:.1f} |",
        f"| search's best {best_config}{' (the default)' if best_is_default else ''} | "
        f"{best.validation_auc:.4f} | {best.evaluation_auc:.4f} | {best.epochs} | "
        f"{best.seconds:.1f} |",
        "",
        f"search: best val AUC {found_table[SEARCH_METRIC].max():.4f} vs default "
        f"{found_table[SEARCH_METRIC].iloc[0]:.4f} (trials); final models: validation "
        f"{best.validation_auc:.4f} vs {default.validation_auc:.4f}, evaluation "
        f"{best.evaluation_auc:.4f} vs {default.evaluation_auc:.4f}; search {search_seconds:.0f} s",
    ]


def main() -> None:
    """Search, train both configurations, print and write the report."""
    parser = bench_parser(__doc__)
    parser.add_argument("--home", help="project home (default: $ML_ASSETS_HOME or .ml_assets/)")
    parser.add_argument("--trials", type=int, default=DEFAULT_TRIALS, help="trials of the search")
    parser.add_argument("--max-epochs", type=int, default=MAX_TRIAL_EPOCHS, help="per trial")
    parser.add_argument("--epochs", type=int, help="epochs of the final models (default: own)")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    parser.add_argument("--address", help="an existing Ray cluster (default: a head of its own)")
    parser.add_argument("--token", help="that cluster's token file")
    parser.add_argument("--out", help="the Markdown report (default bench/results/search.md)")
    args = parse(parser, SMOKE_SIZE)
    dataset = load_dataset(args.home)
    base = ModelParams() if args.epochs is None else ModelParams(epochs=args.epochs)
    with ray_cluster(args.address, args.token):
        found = search_hyperparameters(
            dataset,
            base,
            None,
            free_cpus_per_node(),
            trials=args.trials,
            max_epochs=args.max_epochs,
            concurrency=args.concurrency,
        )
    print(found.trials.to_string(), flush=True)
    default = train_and_score(dataset, base)
    best = default if found.best_is_default else train_and_score(dataset, found.best_params)
    title = ProjectHome.at(args.home or load_settings().home).root.name
    lines = report(
        dataset,
        title,
        found.trials,
        found.best_config,
        found.seconds,
        default,
        best,
        found.best_is_default,
    )
    print("\n".join(lines))
    out = output_path(args.out, "search.md", args.smoke)
    out.write_text("\n".join(lines) + "\n")
    print(f"written {out}")


if __name__ == "__main__":
    main()
