"""Variants of the Serve app for measuring suggested changes, without editing the app.

`variant_deployment(...)` returns a Serve deployment that is `DisputeModelServer` (same handlers,
same `_score` batching, same feedback log: it subclasses the app's own class) with:

- batch_wait_timeout_s / max_batch_size: other `@serve.batch` parameters, set through the
  batch handler's setters after `reconfigure`.
"""

# No `from __future__ import annotations`: FastAPI reads the route annotations below as objects.
from typing import Any

from ml_assets.serving.schemas import Health, ModelInfo, PredictRequest, PredictResponse


def variant_deployment(
    batch_wait_timeout_s: float | None = None,
    max_batch_size: int | None = None,
) -> Any:
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from ray import serve

    from ml_assets.serving import app as served

    # The user class under Serve's ingress wrapper (the module name is bound to the Deployment).
    base = next(
        c
        for c in served.DisputeModelServer.func_or_class.__mro__[1:]
        if c.__name__ == "DisputeModelServer"
    )
    api = FastAPI(
        title=served.api.title, description=served.api.description, version=served.api.version
    )
    api.add_middleware(served.BodySizeLimit)
    api.exception_handler(RequestValidationError)(served.invalid_request)

    class DisputeModelVariant(base):  # type: ignore[misc, valid-type]
        def reconfigure(self, user_config: dict[str, Any]) -> None:
            super().reconfigure(user_config)
            if batch_wait_timeout_s is not None:
                self._score.set_batch_wait_timeout_s(batch_wait_timeout_s)
            if max_batch_size is not None:
                self._score.set_max_batch_size(max_batch_size)

        @api.post("/predict", response_model=PredictResponse)
        async def predict(self, body: PredictRequest) -> Any:
            return await base.predict(self, body)

        @api.get("/model", response_model=ModelInfo)
        async def model_info(self) -> Any:
            return await base.model_info(self)

        @api.get("/healthz", response_model=Health)
        async def healthz(self) -> Health:
            return await base.healthz(self)

    return serve.deployment(
        name="DisputeModelServer",
        max_ongoing_requests=256,
        ray_actor_options={"num_cpus": 1},
        logging_config={"enable_access_log": False},
    )(serve.ingress(api)(DisputeModelVariant))
