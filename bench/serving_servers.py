"""The two Ray-free servers of bench/serving.py, as uvicorn app factories.

    python -m uvicorn --app-dir bench serving_servers:naive_app --factory ...
    python -m uvicorn --app-dir bench serving_servers:plain_app --factory ...

Both answer `POST /predict` with the serving app's own request and response models
(`PredictRequest` -> `PredictResponse`) and `GET /healthz`. The model version comes from the
environment: BENCH_TRACKING_URI, BENCH_MODEL_NAME, BENCH_MODEL_VERSION, BENCH_THRESHOLD, and for the
plain server BENCH_PREDICTIONS_DIR (the feedback log, as in the Serve app; empty: none) and
BENCH_PLAIN_MIDDLEWARE (1: the Serve app's body-size middleware and 4xx handler, as there).

- naive: the book's "simple model server": `model.predict` per request in a plain `def` endpoint.
- plain: a competent server without Ray: one process, the model's `tf.function` with a fixed
  signature called directly from an `async def` endpoint (no batching, no thread hop), and the
  same per-complaint work as the Serve app (records -> arrays, answers, feedback log).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from ml_assets.model.features import FEATURE_COLUMNS, records_to_arrays
from ml_assets.model.tracking import load_keras_model
from ml_assets.serving.feedback import PredictionLog
from ml_assets.serving.schemas import Health, Prediction, PredictRequest, PredictResponse


def _settings() -> tuple[str, str, str, float]:
    return (
        os.environ["BENCH_TRACKING_URI"],
        os.environ["BENCH_MODEL_NAME"],
        os.environ["BENCH_MODEL_VERSION"],
        float(os.environ.get("BENCH_THRESHOLD", "0.5")),
    )


def _response(
    name: str, version: str, threshold: float, records: list[dict[str, Any]], probabilities: Any
) -> PredictResponse:
    return PredictResponse(
        model_name=name,
        model_version=version,
        predictions=[
            Prediction(
                complaint_id=record.get("complaint_id"),
                dispute_probability=float(p),
                disputed=bool(p >= threshold),
            )
            for record, p in zip(records, probabilities, strict=True)
        ],
    )


def naive_app() -> FastAPI:
    """`model.predict` per request: Keras builds a data adapter and a step function every call."""
    import numpy as np
    import tensorflow as tf

    tracking_uri, name, version, threshold = _settings()
    model = load_keras_model(version, tracking_uri, name)
    api = FastAPI(title="naive model server")

    @api.get("/healthz", response_model=Health)
    def healthz() -> Health:
        return Health(status="ok", model_loaded=True, model_version=version)

    @api.post("/predict", response_model=PredictResponse)
    def predict(body: PredictRequest) -> Any:
        records = [c.model_dump(exclude_none=True) for c in body.complaints]
        arrays = records_to_arrays(records)
        inputs = {k: tf.constant(arrays[k].reshape(-1, 1)) for k in FEATURE_COLUMNS}
        probabilities = np.asarray(model.predict(inputs, verbose=0)).reshape(-1)
        return _response(name, version, threshold, records, probabilities)

    return api


def plain_app() -> FastAPI:
    """The `tf.function` called in the event loop: no Ray, no batching, one uvicorn worker."""
    from ml_assets.serving.predictor import Predictor

    tracking_uri, name, version, threshold = _settings()
    predictor = Predictor(load_keras_model(version, tracking_uri, name))
    predictor.predict_records([{}])  # trace before taking traffic, as the Serve app does
    folder = os.environ.get("BENCH_PREDICTIONS_DIR", "")
    feedback = PredictionLog(Path(folder)) if folder else None
    api = FastAPI(title="plain model server")
    if os.environ.get("BENCH_PLAIN_MIDDLEWARE", "1") == "1":
        from ml_assets.serving.app import BodySizeLimit, invalid_request

        api.add_middleware(BodySizeLimit)
        api.exception_handler(RequestValidationError)(invalid_request)

    @api.get("/healthz", response_model=Health)
    async def healthz() -> Health:
        return Health(status="ok", model_loaded=True, model_version=version)

    @api.post("/predict", response_model=PredictResponse)
    async def predict(body: PredictRequest) -> Any:
        records = [c.model_dump(exclude_none=True) for c in body.complaints]
        probabilities = predictor.predict_records(records)
        answer = _response(name, version, threshold, records, probabilities)
        if feedback is not None:
            now = datetime.now(UTC).isoformat(timespec="milliseconds")
            for record, prediction in zip(records, answer.predictions, strict=True):
                feedback.append(
                    {
                        "request_time": now,
                        "model_name": name,
                        "model_version": version,
                        "inputs": record,
                        "dispute_probability": prediction.dispute_probability,
                        "disputed": prediction.disputed,
                    }
                )
        return answer

    return api
