"""The serving path of a model: raw complaint dicts in, probabilities out, through a `tf.function`."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from ml_assets.model.features import COMPANY_COLUMN, records_to_arrays
from ml_assets.model.history import HISTORY_FEATURES
from ml_assets.model.network import HISTORY_INPUT, model_input_names
from ml_assets.model.online_store import OnlineStore


def serving_function(model: Any) -> Callable[[dict[str, Any]], Any]:
    """The model as a `tf.function` with a fixed input signature: traced once, no retracing per
    batch size, and none of `model.predict`'s per-call setup (tens of ms)."""
    import tensorflow as tf

    signature = {
        name: tf.TensorSpec(shape=(None, len(HISTORY_FEATURES)), dtype=tf.float32, name=name)
        if name == HISTORY_INPUT
        else tf.TensorSpec(shape=(None, 1), dtype=tf.string, name=name)
        for name in model_input_names(model)
    }

    @tf.function(input_signature=[signature])
    def predict(inputs: dict[str, Any]) -> Any:
        return model(inputs, training=False)

    return predict


def split_by_lengths(values: np.ndarray, lengths: Sequence[int]) -> list[np.ndarray]:
    """Consecutive slices of `values` with the given lengths (a batch's answers, per request)."""
    if len(values) != sum(lengths):
        raise ValueError(f"{len(values)} values for {sum(lengths)} requested")
    bounds = np.cumsum([0, *lengths])
    return [values[start:end] for start, end in itertools.pairwise(bounds)]


class Predictor:
    """A loaded model version ready to score raw complaint records; a model that takes the
    company history looks it up in the online store at `store_path`, or is given it
    (`history_given`: batch scoring of past days, whose history the store no longer holds)."""

    def __init__(
        self, model: Any, store_path: str | None = None, history_given: bool = False
    ) -> None:
        self._predict = serving_function(model)
        self._inputs = model_input_names(model)
        self.takes_history = HISTORY_INPUT in self._inputs
        self._store: OnlineStore | None = None
        if self.takes_history and not history_given:
            if not store_path:
                raise ValueError(
                    "this model version takes the company history features: deploy it with the "
                    "online feature store's path (ray_cluster.feature_store)"
                )
            self._store = OnlineStore.open(Path(store_path))

    @property
    def snapshot_date(self) -> date | None:
        """The day of the history snapshot it serves (None: it reads no store)."""
        return self._newest_store().snapshot_date if self._store else None

    def _newest_store(self) -> OnlineStore:
        """The store, reloaded if feature_store replaced its file since it was read."""
        if self._store is None:
            raise ValueError(
                "this predictor reads no online store: the model takes no company history, or "
                "its history is given with the records"
            )
        if self._store.replaced():
            self._store = OnlineStore.open(self._store.path)
        return self._store

    def history(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The records' history features from the newest snapshot (reloaded once replaced)."""
        looked_up = self._newest_store().lookup_array(
            [r.get(COMPANY_COLUMN) for r in records], [r.get("product") for r in records]
        )
        return looked_up.astype("float32")

    def input_arrays(
        self, records: Sequence[Mapping[str, Any]], history: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """The model's input arrays for raw complaint records: their fields mapped, and their
        history from the store, or `history` (n, 72) when given."""
        arrays = records_to_arrays(records)
        if self.takes_history:
            given = history is not None
            arrays[HISTORY_INPUT] = history.astype("float32") if given else self.history(records)
        return arrays

    def predict_inputs(self, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        """Probabilities for model input arrays (strings (n,), the history float32 (n, 72))."""
        import tensorflow as tf

        tensors = {
            name: tf.constant(arrays[name])
            if name == HISTORY_INPUT
            else tf.constant(arrays[name].reshape(-1, 1))
            for name in self._inputs
        }
        return np.asarray(self._predict(tensors)).reshape(-1).astype("float64")

    def predict_records(
        self, records: Sequence[Mapping[str, Any]], history: np.ndarray | None = None
    ) -> np.ndarray:
        """Probabilities for raw complaint records (canonical snake_case fields), with their
        history from the online store, or `history` (n, 72) when given."""
        if not records:
            return np.zeros(0, dtype="float64")
        return self.predict_inputs(self.input_arrays(records, history))

    def warm_up(self) -> None:
        """Trace the tf.function on one empty complaint before traffic."""
        given = np.zeros((1, len(HISTORY_FEATURES)), "float32") if self._store is None else None
        self.predict_records([{}], given if self.takes_history else None)
