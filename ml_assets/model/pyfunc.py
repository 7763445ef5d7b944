"""The MLflow pyfunc flavour of the dispute model: a DataFrame of raw complaint fields in, probabilities out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc.model import PythonModel

from ml_assets.model.features import to_model_inputs
from ml_assets.model.history import HISTORY_FEATURES
from ml_assets.model.network import load_model, predict_proba

KERAS_ARTIFACT = "keras_model"
# The models-from-code file beside this module: what a registered version stores instead of a
# pickled DisputeModel, and what `mlflow.pyfunc.load_model` runs to rebuild one.
MODEL_CODE_FILE = "model_code.py"


class DisputeModel(PythonModel):
    """Maps raw canonical fields to model inputs, then runs the Keras model (MLflow's own Keras
    pyfunc cannot take string columns)."""

    def load_context(self, context: Any) -> None:
        self.model = load_model(Path(context.artifacts[KERAS_ARTIFACT]))

    # MLflow's abstract `predict` has no return annotation, so pyright reads it as returning None.
    def predict(  # pyright: ignore[reportIncompatibleMethodOverride]
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        complaints = pd.DataFrame(model_input)
        inputs = to_model_inputs(complaints)
        # A model that takes company history reads it from the given columns (join_history, or
        # the online store's lookup): the raw fields cannot tell it.
        history = [c for c in HISTORY_FEATURES if c in complaints.columns]
        return predict_proba(self.model, pd.concat([inputs, complaints[history]], axis=1))
