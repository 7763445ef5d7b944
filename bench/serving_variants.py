"""Variants of the Serve app for measuring suggested changes, without editing the app.

`variant_deployment(...)` returns a Serve deployment that is `DisputeModelServer` (same handlers,
same `_score` batching, same request guard and feedback log: it subclasses the app's own class)
with:

- batch_wait_timeout_s / max_batch_size: other `@serve.batch` parameters, set through the
  batch handler's setters after `reconfigure`.
"""

# No `from __future__ import annotations`: FastAPI reads the route annotations below as objects.
from typing import Any, cast

from ml_assets.serving import app as served
from ml_assets.serving.schemas import Health, ModelInfo, PredictRequest, PredictResponse


def app_class() -> type:
    """The app's own class, under Serve's deployment and ingress wrappers."""
    from ray.serve import Deployment

    # serve.deployment's stubs type the decorated class as the class; it is a Deployment.
    deployment = cast(Deployment, served.DisputeModelServer)
    wrapper = deployment.func_or_class
    assert isinstance(wrapper, type), wrapper
    # The ingress wrapper subclasses the user class (the module name is bound to the Deployment).
    return next(c for c in wrapper.__mro__[1:] if c.__name__ == "DisputeModelServer")


def variant_deployment(
    batch_wait_timeout_s: float | None = None,
    max_batch_size: int | None = None,
) -> Any:
    """The app with other `@serve.batch` settings (None: the app's own)."""
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from ray import serve

    from ml_assets.serving.guard import RequestGuard

    base: Any = app_class()
    api = FastAPI(
        title=served.api.title, description=served.api.description, version=served.api.version
    )
    api.add_middleware(RequestGuard)
    api.exception_handler(RequestValidationError)(served.invalid_request)

    class DisputeModelVariant(base):
        def reconfigure(self, user_config: dict[str, Any]) -> None:
            super().reconfigure(user_config)
            if batch_wait_timeout_s is not None:
                self._score.set_batch_wait_timeout_s(batch_wait_timeout_s)
            if max_batch_size is not None:
                self._score.set_max_batch_size(max_batch_size)

        @api.post("/predict", response_model=PredictResponse)
        async def predict(self, body: PredictRequest, credentials: served.Credentials) -> Any:
            return await base.predict(self, body, credentials)

        @api.get("/model", response_model=ModelInfo)
        async def model_info(self, credentials: served.Credentials) -> Any:
            return await base.model_info(self, credentials)

        @api.get("/healthz", response_model=Health)
        async def healthz(self) -> Health:
            return await base.healthz(self)

    return serve.deployment(
        name="DisputeModelServer",
        max_ongoing_requests=served.MAX_ONGOING_REQUESTS,
        ray_actor_options={"num_cpus": served.REPLICA_CPUS},
        logging_config={"enable_access_log": False},
    )(serve.ingress(api)(DisputeModelVariant))
