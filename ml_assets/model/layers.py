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
