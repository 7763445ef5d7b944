"""The two Ray-free servers of bench/serving.py, each run as a process of its own:

    python bench/serving_servers.py --kind naive|plain --spec SPEC.json --port N

SPEC is the version's `ServingConfig` (the Serve app's `user_config`) as JSON. Both answer
`POST /predict` with the serving app's request and response models (`PredictRequest` ->
`PredictResponse`) and `GET /healthz`, on 127.0.0.1, from one uvicorn worker.

- naive: the book's "simple model server": `model.predict` per request in a plain `def` endpoint.
- plain: a competent server without Ray: the model's `tf.function` with a fixed signature
  called directly from an `async def` endpoint (no batching, no thread hop), and the Serve app's
  own work per request: its request guard and 4xx answers, the complaint limit, the scrubbing of
  free text, the answers, the feedback log (when the spec names a predictions_dir).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ml_assets.model.features import FEATURE_COLUMNS, records_to_arrays
from ml_assets.model.network import HISTORY_INPUT, model_input_names
from ml_assets.model.tracking import load_keras_model
from ml_assets.serving.schemas import (
    ErrorResponse,
    Health,
    Prediction,
    PredictRequest,
    PredictResponse,
    ServingConfig,
)

KINDS = ("naive", "plain")


def _response(
    config: ServingConfig, records: list[dict[str, Any]], probabilities: Any
) -> PredictResponse:
    return PredictResponse(
        model_name=config.model_name,
        model_version=config.model_version,
        predictions=[
            Prediction(
                complaint_id=record.get("complaint_id"),
                dispute_probability=float(p),
                disputed=bool(p >= config.decision_threshold),
            )
            for record, p in zip(records, probabilities, strict=True)
        ],
    )


def naive_app(config: ServingConfig) -> FastAPI:
    """`model.predict` per request: Keras builds a data adapter and a step function every call."""
    import numpy as np
    import tensorflow as tf

    model = load_keras_model(config.model_version, config.tracking_uri, config.model_name)
    from ml_assets.serving.predictor import Predictor

    # Its online-store lookup only (the naive server calls the model itself).
    takes_history = HISTORY_INPUT in model_input_names(model)
    store = Predictor(model, config.feature_store) if takes_history else None
    api = FastAPI(title="naive model server")

    @api.get("/healthz", response_model=Health)
    def healthz() -> Health:
        return Health(status="ok", model_loaded=True, model_version=config.model_version)

    @api.post("/predict", response_model=PredictResponse)
    def predict(body: PredictRequest) -> Any:
        records = [c.model_dump(exclude_none=True) for c in body.complaints]
        arrays = records_to_arrays(records)
        inputs = {k: tf.constant(arrays[k].reshape(-1, 1)) for k in FEATURE_COLUMNS}
        if store is not None:
            # The same lookup the Serve app makes (a model that takes company history).
            inputs[HISTORY_INPUT] = tf.constant(store.history(records))
        # Keras annotates `verbose` as str, but documents 0 as silent.
        output = model.predict(inputs, verbose=0)  # pyright: ignore[reportArgumentType]
        probabilities = np.asarray(output).reshape(-1)
        return _response(config, records, probabilities)

    return api


def plain_app(config: ServingConfig) -> FastAPI:
    """The `tf.function` called in the event loop: no Ray, no batching, one uvicorn worker."""
    from ml_assets.privacy import scrub_record
    from ml_assets.serving.app import FREE_TEXT_FIELDS, invalid_request
    from ml_assets.serving.feedback import PredictionLog
    from ml_assets.serving.guard import RequestGuard
    from ml_assets.serving.predictor import Predictor

    model = load_keras_model(config.model_version, config.tracking_uri, config.model_name)
    predictor = Predictor(model, config.feature_store)
    predictor.warm_up()  # trace before taking traffic, as the Serve app does
    folder = config.predictions_dir
    feedback = (
        PredictionLog(Path(folder), config.prediction_log_max_bytes_per_day) if folder else None
    )
    api = FastAPI(title="plain model server")
    api.add_middleware(RequestGuard)
    api.exception_handler(RequestValidationError)(invalid_request)

    @api.get("/healthz", response_model=Health)
    async def healthz() -> Health:
        return Health(status="ok", model_loaded=True, model_version=config.model_version)

    @api.post("/predict", response_model=PredictResponse)
    async def predict(body: PredictRequest) -> Any:
        if len(body.complaints) > config.max_complaints:
            detail = f"complaints: {len(body.complaints)} given, at most {config.max_complaints}"
            return JSONResponse(status_code=413, content=ErrorResponse(detail=detail).model_dump())
        records = [
            scrub_record(c.model_dump(exclude_none=True), FREE_TEXT_FIELDS) for c in body.complaints
        ]
        answer = _response(config, records, predictor.predict_records(records))
        if feedback is not None:
            now = datetime.now(UTC).isoformat(timespec="milliseconds")
            for record, prediction in zip(records, answer.predictions, strict=True):
                feedback.append(
                    {
                        "request_time": now,
                        "model_name": config.model_name,
                        "model_version": config.model_version,
                        "decision_threshold": config.decision_threshold,
                        "inputs": record,
                        "dispute_probability": prediction.dispute_probability,
                        "disputed": prediction.disputed,
                    }
                )
        return answer

    return api


def main() -> None:
    """Serve one app on 127.0.0.1 until SIGTERM."""
    import uvicorn

    parser = argparse.ArgumentParser(description="a Ray-free server of bench/serving.py")
    parser.add_argument("--kind", choices=KINDS, required=True)
    parser.add_argument("--spec", type=Path, required=True, help="the ServingConfig as JSON")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    config = ServingConfig.model_validate_json(args.spec.read_text())
    app = naive_app(config) if args.kind == "naive" else plain_app(config)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=60,
    )


if __name__ == "__main__":
    main()
