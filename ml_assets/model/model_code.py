"""The file MLflow stores with every registered version (models-from-code) and runs to load one.

It only binds the installed package's `DisputeModel`: the logic stays in `ml_assets.model`, and a
version holds no pickled code. `register_model` (tracking.py) logs this file.
"""

import mlflow.models

from ml_assets.model.pyfunc import DisputeModel

mlflow.models.set_model(DisputeModel())
