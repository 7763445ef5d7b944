"""The Ray Serve app: one deployment serving the champion behind a FastAPI ingress.

`serve run ml_assets.serving.app:app` works too; the pipeline deploys it with a `user_config`
(`ServingConfig`) naming the model version, and moves versions with in-place reconfigures.
"""

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from ray import serve

from ml_assets.serving.feedback import PredictionLog
from ml_assets.serving.predictor import split_by_lengths
from ml_assets.serving.schemas import (
    Health,
    ModelInfo,
    Prediction,
    PredictRequest,
    PredictResponse,
    ServingConfig,
)

logger = logging.getLogger(__name__)
MAX_BODY_BYTES = 8 * 1024 * 1024


api = FastAPI(
    title="CFPB complaint dispute model",
    description="Probability that a consumer disputes a complaint, from its raw CFPB fields.",
    version="1",
)


class BodySizeLimit:
    """Refuse bodies over the limit (413) from their Content-Length, before reading them."""

    # A plain ASGI middleware: `@api.middleware("http")` would wrap every request in Starlette's
    # BaseHTTPMiddleware (task group, memory stream, response wrapper), which bench/serving.py
    # measured at about a third of the replica's CPU per single-complaint request.
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"content-length":
                    if value.isdigit() and int(value) > MAX_BODY_BYTES:
                        answer = JSONResponse(
                            status_code=413, content={"detail": f"body over {MAX_BODY_BYTES} bytes"}
                        )
                        await answer(scope, receive, send)
                        return
                    break
        await self.app(scope, receive, send)


api.add_middleware(BodySizeLimit)


@api.exception_handler(RequestValidationError)
async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """400 for a body that is not JSON at all, 422 naming the field otherwise."""
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return JSONResponse(status_code=400, content={"detail": "the body is not valid JSON"})
    detail = [
        {
            "field": ".".join(str(p) for p in e.get("loc", ())[1:]),
            "message": e.get("msg"),
            "type": e.get("type"),
        }
        for e in errors
    ]
    return JSONResponse(status_code=422, content={"detail": detail})


@serve.deployment(
    # Batches can only form when many requests are in flight at once at the replica.
    max_ongoing_requests=256,
    ray_actor_options={"num_cpus": 1},
    logging_config={"enable_access_log": False},
)
@serve.ingress(api)
class DisputeModelServer:
    """Serves one registered model version; `reconfigure` swaps versions without a restart."""

    def __init__(self) -> None:
        self.config: ServingConfig | None = None
        self.predictor: Any = None
        self.feedback: PredictionLog | None = None
        self.deployed_at = ""

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Load the configured version (if it changed), then switch to it in one assignment."""
        from ml_assets.model.tracking import load_keras_model
        from ml_assets.serving.predictor import Predictor

        config = ServingConfig(**user_config)
        if self.config is None or config.model_version != self.config.model_version:
            model = load_keras_model(config.model_version, config.tracking_uri, config.model_name)
            predictor = Predictor(model)
            predictor.predict_records([{}])  # trace the tf.function before taking traffic
            self.predictor = predictor
            self.deployed_at = datetime.now(UTC).isoformat(timespec="seconds")
        if config.predictions_dir and (
            self.feedback is None or str(self.feedback.folder) != config.predictions_dir
        ):
            self.feedback = PredictionLog(Path(config.predictions_dir))
        self.config = config
        logger.info("serving %s version %s", config.model_name, config.model_version)

    # No waiting for a batch to fill: under load the requests that queued while the previous
    # batch ran form the next one anyway, and a lone request is not held back (measured in
    # bench/serving.py: 142 -> 520 req/s at 1 client, p99 at 64 clients 57 -> 41 ms).
    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.0)
    async def _score(self, batches: list[list[dict[str, Any]]]) -> list[np.ndarray]:
        flat = [record for batch in batches for record in batch]
        probabilities = self.predictor.predict_records(flat)
        return split_by_lengths(probabilities, [len(b) for b in batches])

    @api.post("/predict", response_model=PredictResponse)
    async def predict(self, body: PredictRequest) -> Any:
        """Dispute probabilities for 1 to `max_complaints` complaints."""
        config, predictor = self.config, self.predictor
        if config is None or predictor is None:
            return JSONResponse(status_code=503, content={"detail": "no model loaded yet"})
        if len(body.complaints) > config.max_complaints:
            return JSONResponse(
                status_code=413,
                content={
                    "detail": f"complaints: {len(body.complaints)} given, at most {config.max_complaints} per request"
                },
            )
        records = [c.model_dump(exclude_none=True) for c in body.complaints]
        probabilities = await self._score(records)
        predictions = [
            Prediction(
                complaint_id=record.get("complaint_id"),
                dispute_probability=float(p),
                disputed=bool(p >= config.decision_threshold),
            )
            for record, p in zip(records, probabilities, strict=True)
        ]
        self._log(records, predictions, config)
        return PredictResponse(
            model_name=config.model_name,
            model_version=config.model_version,
            predictions=predictions,
        )

    def _log(
        self, records: list[dict[str, Any]], predictions: list[Prediction], config: ServingConfig
    ) -> None:
        if self.feedback is None:
            return
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        for record, prediction in zip(records, predictions, strict=True):
            # The fields of `LoggedPrediction`, which `served_predictions` reads them with.
            self.feedback.append(
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

    @api.get("/model", response_model=ModelInfo)
    async def model_info(self) -> Any:
        """Provenance of the served model: versions, lineage, evaluation, threshold."""
        if self.config is None:
            return JSONResponse(status_code=503, content={"detail": "no model loaded yet"})
        return ModelInfo(
            model_name=self.config.model_name,
            model_version=self.config.model_version,
            decision_threshold=self.config.decision_threshold,
            deployed_at=self.deployed_at,
            **self.config.provenance,
        )

    @api.get("/healthz", response_model=Health)
    async def healthz(self) -> Health:
        """Liveness, and whether a model is loaded."""
        version = self.config.model_version if self.config else None
        return Health(status="ok", model_loaded=self.predictor is not None, model_version=version)


app = DisputeModelServer.bind()
