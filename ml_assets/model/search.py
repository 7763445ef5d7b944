"""A hyperparameter search for the dispute model with Ray Tune: ASHA early stopping, trials on the
connected Ray cluster, every trial an MLflow run nested under the search's run."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from unittest import mock

import numpy as np
import pandas as pd

from ml_assets.model.capacity import freest_node_cpus
from ml_assets.model.features import FEATURE_COLUMNS, LABEL
from ml_assets.model.history import HISTORY_FEATURES
from ml_assets.model.network import ModelParams, build_model, fit_model
from ml_assets.model.training import fitting_splits

if TYPE_CHECKING:
    from ray.tune import Result, ResultGrid

SEARCH_METRIC: Final = "val_auc"  # Keras's name of the validation AUC, which early stopping reads
SEARCH_MODE: Final = "max"
EPOCH_ATTR: Final = "training_iteration"  # Tune counts one per report: one per epoch here
# A small space over the network's capacity and its optimiser; the default configuration is
# always among the trials (evaluated first), so the best trial's validation AUC is never below it.
SEARCH_SPACE: Final[Mapping[str, Sequence[float | int]]] = {
    "learning_rate": (1e-3, 3e-3, 1e-2),
    "zip3_embedding_dim": (4, 8, 16),
    "text_embedding_dim": (8, 16, 32),
    "hidden_units": (16, 32, 64),
    "dropout": (0.0, 0.2, 0.5),
}
DEFAULT_TRIALS: Final = 8
# Epochs of a trial at most (ASHA's max_t), which bounds the search's time: ASHA's rungs sit at
# epochs 1, 2 and 4, and only trials that stay in the upper half reach 8. The final model trains
# with the configuration's own epochs (and its early stopping).
MAX_TRIAL_EPOCHS: Final = 8
# Two concurrent trials of one CPU each: this machine's two cores.
DEFAULT_CONCURRENCY: Final = 2
CPUS_PER_TRIAL: Final = 1
# ASHA keeps the best half at each rung (epochs 1, 2, 4, ...): with 6-8 trials a rate of 4 would
# leave a single rung above the grace period.
REDUCTION_FACTOR: Final = 2
GRACE_EPOCHS: Final = 1
SEARCH_NAME: Final = "dispute_model_search"
# Ray's MLflow logger takes an experiment by name only, and reads this variable first: set to the
# parent run's experiment while the search runs, whatever the process had in it.
MLFLOW_EXPERIMENT_ID_ENV: Final = "MLFLOW_EXPERIMENT_ID"


@dataclass(frozen=True)
class TrialData:
    """The train and validation splits a trial needs (shipped once through Ray's object store)."""

    train_inputs: pd.DataFrame
    train_labels: np.ndarray
    validation_inputs: pd.DataFrame
    validation_labels: np.ndarray


@dataclass(frozen=True)
class TrialTracking:
    """Where the trials' MLflow runs go: nested under `parent_run_id`, in its experiment."""

    tracking_uri: str
    experiment_id: str  # the parent run's
    parent_run_id: str


@dataclass(frozen=True)
class SearchResult:
    """The best configuration and every trial (its searched values, epochs and val AUCs)."""

    best_params: ModelParams
    best_config: dict[str, Any]
    best_val_auc: float
    default_val_auc: float  # the default configuration's trial (the first one)
    best_is_default: bool
    trials: pd.DataFrame
    seconds: float


def trial_data(dataset: pd.DataFrame) -> TrialData:
    """The train and validation splits of a training dataset (the evaluation split stays out)."""
    train, validation = fitting_splits(dataset)
    # Every input a trial's model may take: its params decide which it reads.
    columns = [c for c in (*FEATURE_COLUMNS, *HISTORY_FEATURES) if c in dataset.columns]
    return TrialData(
        train[columns].reset_index(drop=True),
        train[LABEL].to_numpy(),
        validation[columns].reset_index(drop=True),
        validation[LABEL].to_numpy(),
    )


def trial_params(base: ModelParams, config: Mapping[str, Any]) -> ModelParams:
    """`base` with a trial's searched values, validated as ModelParams."""
    return ModelParams.model_validate({**base.as_dict(), **config})


def run_trial(config: dict[str, Any], base: ModelParams, data: TrialData) -> None:
    """One trial (in a Ray worker): fit on train, report the validation AUC after every epoch."""
    import keras
    from ray import tune

    class ReportToTune(keras.callbacks.Callback):
        """Each epoch's validation AUC to Tune, whose scheduler may stop the trial there."""

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            # Every validation figure, so that the trial's MLflow run has them all.
            figures = {k: float(v) for k, v in (logs or {}).items() if k.startswith("val_")}
            tune.report({**figures, "epoch": epoch + 1})

    params = trial_params(base, config)
    model = build_model(data.train_inputs, params)
    fit_model(
        model,
        data.train_inputs,
        data.train_labels,
        data.validation_inputs,
        data.validation_labels,
        params,
        callbacks=[ReportToTune()],
    )


def room_for_a_trial(free_cpus: Mapping[str, float]) -> None:
    """Refuse a cluster where no node has a trial's CPUs free (`free_cpus` by node id): Tune
    would leave every trial pending, waiting forever."""
    freest_node_cpus(free_cpus, CPUS_PER_TRIAL, "a search trial")


def search_hyperparameters(
    dataset: pd.DataFrame,
    base: ModelParams,
    tracking: TrialTracking | None,
    free_cpus: Mapping[str, float],
    space: Mapping[str, Sequence[float | int]] = SEARCH_SPACE,
    trials: int = DEFAULT_TRIALS,
    max_epochs: int = MAX_TRIAL_EPOCHS,
    concurrency: int = DEFAULT_CONCURRENCY,
    storage_path: str | None = None,
) -> SearchResult:
    """Search `space` around `base` on the connected Ray cluster, ASHA stopping weak trials.

    The first trial is `base` itself; the others draw each field from `space` (seeded by
    `base.seed`). Trials run at most min(`max_epochs`, `base.epochs`) epochs. `free_cpus`: each
    node's free CPUs (the caller reads them, `resources.compat.ray.free_cpus_per_node`); a trial
    must fit on one. `storage_path`: where Tune keeps its trial folders, a path every node can
    write (default: a temp folder).
    """
    import ray
    from ray import tune
    from ray.air.integrations.mlflow import MLflowLoggerCallback
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import BasicVariantGenerator

    if not ray.is_initialized():
        # Tune would start a private local Ray instead, beside the Dagster process: the search
        # belongs on the project's cluster.
        raise RuntimeError(
            "the search runs on a Ray cluster: connect to one first (RayCluster.connect, or "
            "ray.init(address=...)); start the local one with `ml-assets ray-up`"
        )
    unknown = set(space) - set(ModelParams.model_fields)
    if unknown:
        raise ValueError(f"not ModelParams fields: {sorted(unknown)}; search those it has")
    room_for_a_trial(free_cpus)
    epochs = min(max_epochs, base.epochs)
    # ModelParams's own patience applies, as in the final training; ASHA decides beyond it.
    capped = base.model_copy(update={"epochs": epochs})
    default = {name: getattr(base, name) for name in space}
    scheduler = ASHAScheduler(
        time_attr=EPOCH_ATTR,
        max_t=epochs,
        grace_period=min(GRACE_EPOCHS, epochs),
        reduction_factor=REDUCTION_FACTOR,
    )
    callbacks = []
    if tracking is not None:
        # Ray's own MLflow logger, on the driver: a run per trial with its config as params and
        # each report as a step, ended when the trial ends (also when ASHA stops it). The
        # parent tag nests them; the driver's login serves, no credential reaches a worker.
        callbacks.append(
            MLflowLoggerCallback(
                tracking.tracking_uri, tags={"mlflow.parentRunId": tracking.parent_run_id}
            )
        )
    # Restored when the search ends (a mock's patch.dict: the standard library's way to set a
    # mapping's keys for a while).
    experiment = {MLFLOW_EXPERIMENT_ID_ENV: tracking.experiment_id} if tracking else {}
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, base=capped, data=trial_data(dataset)),
        {"cpu": CPUS_PER_TRIAL},
    )
    began = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="tune_") as scratch,
        mock.patch.dict(os.environ, experiment),
    ):
        tuner = tune.Tuner(
            trainable,
            param_space={name: tune.choice(list(values)) for name, values in space.items()},
            tune_config=tune.TuneConfig(
                metric=SEARCH_METRIC,
                mode=SEARCH_MODE,
                scheduler=scheduler,
                # The generator bounds the concurrency itself (Tune ignores max_concurrent_trials
                # for it); the CPUs per trial bound it too.
                search_alg=BasicVariantGenerator(
                    points_to_evaluate=[default], max_concurrent=concurrency, random_state=base.seed
                ),
                num_samples=trials,
            ),
            run_config=tune.RunConfig(
                name=SEARCH_NAME,
                storage_path=storage_path or scratch,
                callbacks=callbacks,
                verbose=0,
            ),
        )
        results = tuner.fit()
        # The errors first: a trial that failed before its first report has no row to show.
        if results.errors:
            raise RuntimeError(
                f"{len(results.errors)} of {len(results)} trials failed, the first with: "
                f"{results.errors[0]!r}; see the Ray workers' logs of the cluster"
            )
        table = trial_table(results, list(space))
    best_index = int(table[SEARCH_METRIC].to_numpy().argmax())  # the first of equals: the default
    best = table.iloc[best_index]
    # Plain Python numbers: pandas hands back numpy scalars, which MLflow and Dagster print oddly.
    best_config = {name: np.asarray(best[name]).item() for name in space}
    return SearchResult(
        best_params=trial_params(base, best_config),
        best_config=best_config,
        best_val_auc=float(best[SEARCH_METRIC]),
        default_val_auc=float(table[SEARCH_METRIC].iloc[0]),
        best_is_default=best_index == 0,
        trials=table,
        seconds=time.monotonic() - began,
    )


def trial_table(results: ResultGrid | Sequence[Result], fields: Sequence[str]) -> pd.DataFrame:
    """A row per trial, in the order they started: searched values, epochs run, best val AUC."""
    rows = []
    for result in results:
        history = result.metrics_dataframe
        if history is None or SEARCH_METRIC not in history:
            # A trial that failed before its first epoch: the caller refused `results.errors`.
            continue
        config = result.config or {}
        rows.append(
            {
                "trial_id": str(result.metrics.get("trial_id", "")) if result.metrics else "",
                **{name: config[name] for name in fields},
                "epochs": len(history),
                SEARCH_METRIC: float(history[SEARCH_METRIC].max()),
                "last_val_auc": float(history[SEARCH_METRIC].iloc[-1]),
            }
        )
    if not rows:
        raise RuntimeError(
            f"no trial reported {SEARCH_METRIC!r}: the trials ended before their first epoch; "
            "see the Ray workers' logs of the cluster"
        )
    return pd.DataFrame(rows).sort_values("trial_id", kind="stable").reset_index(drop=True)
