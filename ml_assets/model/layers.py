"""Custom Keras layers of the dispute model (imports Keras: import this module lazily)."""

from __future__ import annotations

from typing import Any

import keras


@keras.saving.register_keras_serializable(package="ml_assets")
class MaskedMeanPooling(keras.layers.Layer):
    """Mean of token embeddings over non-padding tokens; zeros for an empty text."""

    def call(self, embeddings: Any, tokens: Any) -> Any:
        mask = keras.ops.expand_dims(
            keras.ops.cast(keras.ops.not_equal(tokens, 0), embeddings.dtype), -1
        )
        total = keras.ops.sum(embeddings * mask, axis=1)
        # Keras' own masked average divides by zero for an empty narrative (most real rows).
        count = keras.ops.maximum(keras.ops.sum(mask, axis=1), 1.0)
        return keras.ops.divide(total, count)


@keras.saving.register_keras_serializable(package="ml_assets")
class LogCounts(keras.layers.Layer):
    """log(1 + x) of the columns marked as counts, the rest (rates in [0, 1]) as they are: a
    company's complaint count spans five orders of magnitude, which normalization alone keeps."""

    def __init__(self, count_columns: list[bool], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.count_columns = list(count_columns)

    def call(self, values: Any) -> Any:
        mask = keras.ops.convert_to_tensor(self.count_columns, dtype="bool")
        logged = keras.ops.log1p(keras.ops.maximum(values, 0.0))
        return keras.ops.where(mask, logged, values)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "count_columns": self.count_columns}
