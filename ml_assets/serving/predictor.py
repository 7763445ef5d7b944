"""The serving path of a model: raw complaint dicts in, probabilities out, through a `tf.function`."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ml_assets.model.features import FEATURE_COLUMNS, records_to_arrays


def serving_function(model: Any) -> Callable[[dict[str, Any]], Any]:
    """The model as a `tf.function` with a fixed input signature: traced once, no retracing per
    batch size, and none of `model.predict`'s per-call setup (tens of ms)."""
    import tensorflow as tf

    signature = {
        name: tf.TensorSpec(shape=(None, 1), dtype=tf.string, name=name) for name in FEATURE_COLUMNS
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
    """A loaded model version ready to score raw complaint records."""

    def __init__(self, model: Any) -> None:
        self._predict = serving_function(model)

    def predict_inputs(self, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        """Probabilities for model input arrays (one string array per feature)."""
        import tensorflow as tf

        tensors = {name: tf.constant(arrays[name].reshape(-1, 1)) for name in FEATURE_COLUMNS}
        return np.asarray(self._predict(tensors)).reshape(-1).astype("float64")

    def predict_records(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Probabilities for raw complaint records (canonical snake_case fields)."""
        if not records:
            return np.zeros(0, dtype="float64")
        return self.predict_inputs(records_to_arrays(records))
