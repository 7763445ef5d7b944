"""The Ray Serve app: the champion served by a FastAPI ingress, and a challenger beside it.

Model composition: the ingress (`DisputeModelServer`) scores the champion itself, so its answers
take no extra hop, and holds a deployment handle to `ChallengerScorer`, which scores the
challenger (in shadow, or for its share of a split). `serve run ml_assets.serving.app:app` works
too; the pipeline deploys it with `user_config`s (`ServingConfig`, `ScorerConfig`) naming the
versions and the mode, and changes them with in-place reconfigures.
"""

import asyncio
import functools
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from ray import serve
from ray.serve.handle import DeploymentHandle

from ml_assets.privacy import scrub_record
from ml_assets.serving.auth import token_matches
from ml_assets.serving.feedback import PredictionLog
from ml_assets.serving.guard import ComplaintBudget, RequestGuard
from ml_assets.serving.predictor import split_by_lengths
from ml_assets.serving.routing import to_challenger
from ml_assets.serving.schemas import (
    FREE_TEXT_FIELDS,
    MAX_ERROR_DETAILS,
    ChallengerInfo,
    ErrorResponse,
    Health,
    ModelInfo,
    Prediction,
    PredictRequest,
    PredictResponse,
    Role,
    ScorerConfig,
    ServingConfig,
    ValidationErrorItem,
    ValidationErrorResponse,
)
from ml_assets.serving.smoke import SMOKE_SIGNATURE_HEADER, is_smoke, load_key

logger = logging.getLogger(__name__)
# Complaints per model call: a request's list is scored in chunks of at most this many, and
# `@serve.batch` fills a batch up to it counting complaints, not requests.
BATCH_COMPLAINTS = 64
# Complaints a replica queues or scores at once (once parsed); requests beyond it wait.
MAX_ONGOING_COMPLAINTS = 4096
# Requests a replica accepts at once: many single-complaint requests must be in flight for
# batches to form, and MAX_ONGOING_COMPLAINTS bounds what large ones cost.
MAX_ONGOING_REQUESTS = 256
REPLICAS = 2
REPLICA_CPUS = 0.5
# One replica for the challenger: it answers a share of traffic, or scores off the response path.
CHALLENGER_CPUS = 0.5
# Shadow scorings a replica runs at once; beyond it a request is not shadowed (counted): under
# overload the champion's answers come first.
MAX_SHADOWS_IN_FLIGHT = 64

api = FastAPI(
    title="CFPB complaint dispute model",
    description="Probability that a consumer disputes a complaint, from its raw CFPB fields.",
    version="1",
    # Served by the deployment itself: the contract depends on whether it requires a token.
    openapi_url=None,
    docs_url=None,
    redoc_url=None,
)
api.add_middleware(RequestGuard)
bearer = HTTPBearer(auto_error=False, description="Needed when the server sets a token")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
# The deployer's, on its smoke requests: not part of the API's contract.
SmokeSignature = Annotated[
    str | None, Header(alias=SMOKE_SIGNATURE_HEADER, include_in_schema=False)
]


def _error(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        status_code=status, content=ErrorResponse(detail=detail).model_dump(), headers=headers
    )


def _documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses of the given error statuses, each with the body it really has."""
    described = {
        400: "The body is not JSON, or not one the limits can count (a duplicate key, content "
        "after the object, nesting deeper than a request)",
        401: "The server requires a bearer token, and none or a wrong one was sent",
        413: "The body is over MAX_BODY_BYTES, or the complaints over the deployment's maximum",
        422: "A field is invalid (the first errors, and their count)",
        503: "No model is loaded yet",
    }
    return {
        status: {
            "model": ValidationErrorResponse if status == 422 else ErrorResponse,
            "description": described[status],
        }
        for status in statuses
    }


@functools.cache
def contract(token_required: bool) -> dict[str, Any]:
    """The OpenAPI document: bearer security on /predict and /model only when a token is set."""
    schema = get_openapi(
        title=api.title, version=api.version, description=api.description, routes=api.routes
    )
    if not token_required:
        schema.get("components", {}).pop("securitySchemes", None)
        for operations in schema["paths"].values():
            for operation in operations.values():
                operation.pop("security", None)
                operation.get("responses", {}).pop("401", None)
    return schema


@api.exception_handler(RequestValidationError)
async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """400 for a body that is not JSON at all, 422 with FastAPI's `loc` otherwise (capped)."""
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return _error(400, "the body is not valid JSON")
    body = ValidationErrorResponse(
        detail=[
            ValidationErrorItem(
                loc=list(e.get("loc", ())), msg=str(e.get("msg")), type=str(e.get("type"))
            )
            for e in errors[:MAX_ERROR_DETAILS]
        ],
        error_count=len(errors),
    )
    return JSONResponse(status_code=422, content=body.model_dump())


def request_records(body: PredictRequest) -> list[dict[str, Any]]:
    """The complaints as the model and the log see them: every field a caller types masked by
    the same scrubber as ingestion (logged inputs then replay to the features the model saw)."""
    return [
        scrub_record(c.model_dump(exclude_none=True), FREE_TEXT_FIELDS) for c in body.complaints
    ]


def _complaint_count(batches: list[list[dict[str, Any]]]) -> int:
    return sum(len(b) for b in batches)


def load_predictor(
    config: ScorerConfig | ServingConfig, version: str, history_given: bool = False
) -> Any:
    """A registered version's predictor, its tf.function traced before it takes traffic
    (`history_given`: its callers give each complaint's history, no online store is read)."""
    from ml_assets.model.tracking import load_keras_model, log_in_to_registry
    from ml_assets.serving.predictor import Predictor

    if config.registry_login is not None:
        log_in_to_registry(config.registry_login.username, config.registry_login.password_file)
    tracking_uri, model_name = config.tracking_uri, config.model_name
    model = load_keras_model(version, tracking_uri, model_name)
    predictor = Predictor(model, config.feature_store, history_given)
    predictor.warm_up()
    return predictor


class BatchedScoring:
    """Scores complaints with `self.predictor`, in batches formed across requests."""

    predictor: Any = None

    # No waiting for a batch to fill: under load the requests that queued while the previous
    # batch ran form the next one anyway, and a lone request is not held back (measured in
    # bench/serving.py: 142 -> 520 req/s at 1 client, p99 at 64 clients 57 -> 41 ms).
    @serve.batch(
        max_batch_size=BATCH_COMPLAINTS,
        batch_wait_timeout_s=0.0,
        batch_size_fn=_complaint_count,
    )
    async def _score(self, batches: list[list[dict[str, Any]]]) -> list[np.ndarray]:
        flat = [record for batch in batches for record in batch]
        probabilities = self.predictor.predict_records(flat)
        return split_by_lengths(probabilities, [len(b) for b in batches])

    async def _probabilities(self, records: list[dict[str, Any]]) -> np.ndarray:
        """The records' probabilities, scored in chunks of at most BATCH_COMPLAINTS."""
        chunks = [
            records[i : i + BATCH_COMPLAINTS] for i in range(0, len(records), BATCH_COMPLAINTS)
        ]
        parts = await asyncio.gather(*(self._score(chunk) for chunk in chunks))
        return np.concatenate(parts) if parts else np.zeros(0)


@dataclass(frozen=True)
class _Answer:
    """A complaint's probability, and the version, threshold and role that gave it."""

    probability: float
    version: str
    threshold: float
    role: Role

    def prediction(self, complaint_id: str | None) -> Prediction:
        """The answer as the API returns it."""
        return Prediction(
            complaint_id=complaint_id,
            dispute_probability=self.probability,
            disputed=self.probability >= self.threshold,
            model_version=self.version,
        )


class ChallengerNotLoaded(RuntimeError):
    """The challenger deployment holds no model (none configured, or still loading)."""


@serve.deployment(
    num_replicas=1,
    max_ongoing_requests=MAX_ONGOING_REQUESTS,
    ray_actor_options={"num_cpus": CHALLENGER_CPUS},
    logging_config={"enable_access_log": False},
)
class ChallengerScorer(BatchedScoring):
    """Scores complaints with the challenger; `reconfigure` loads another version, or none."""

    def __init__(self) -> None:
        self.version: str | None = None

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Load the configured version (if it changed), then switch to it."""
        config = ScorerConfig(**user_config)
        if config.model_version is None:
            self.predictor, self.version = None, None
        elif config.model_version != self.version:
            predictor = load_predictor(config, config.model_version)
            self.predictor, self.version = predictor, config.model_version
        logger.info("challenger: %s", self.version or "none")

    async def score(self, records: list[dict[str, Any]]) -> tuple[str, list[float]]:
        """The version that scored, and the records' dispute probabilities."""
        version = self.version
        if version is None or self.predictor is None:
            raise ChallengerNotLoaded("no challenger loaded")
        return version, (await self._probabilities(records)).tolist()


@serve.deployment(
    # Two, so that one replica's death is not a blackout: the other answers while Serve restarts
    # it. Half a CPU each fits both beside the proxy on a 2-core head (they are scheduled by
    # these reservations; TensorFlow itself uses what is free).
    num_replicas=REPLICAS,
    # Batches can only form when many requests are in flight at once at the replica.
    max_ongoing_requests=MAX_ONGOING_REQUESTS,
    ray_actor_options={"num_cpus": REPLICA_CPUS},
    logging_config={"enable_access_log": False},
)
@serve.ingress(api)
class DisputeModelServer(BatchedScoring):
    """Serves the champion, and a challenger through `ChallengerScorer`'s handle; `reconfigure`
    swaps versions and modes without a restart."""

    def __init__(self, challenger: DeploymentHandle | None = None) -> None:
        self.config: ServingConfig | None = None
        self.feedback: PredictionLog | None = None
        self.smoke_key: bytes | None = None
        self.deployed_at = ""
        self.budget = ComplaintBudget(MAX_ONGOING_COMPLAINTS)
        self.challenger = challenger
        # The champion before this one stays loaded: a rollback is then a switch, not a load.
        self._recent: dict[str, Any] = {}
        self.fallbacks = self.shadow_failures = self.shadow_skipped = 0
        self._shadows: set[asyncio.Task[None]] = set()

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Load the configured version (if it changed), then switch to it in one assignment."""
        config = ServingConfig(**user_config)
        smoke_key = load_key(config.smoke_key) if config.smoke_key else None
        if self.config is None or config.model_version != self.config.model_version:
            if self.config is not None:
                self._recent = {self.config.model_version: self.predictor}
            self.predictor = self._recent.pop(config.model_version, None) or load_predictor(
                config, config.model_version
            )
            self.deployed_at = datetime.now(UTC).isoformat(timespec="seconds")
        if config.predictions_dir and (
            self.feedback is None
            or str(self.feedback.folder) != config.predictions_dir
            or self.feedback.max_bytes_per_day != config.prediction_log_max_bytes_per_day
        ):
            if self.feedback is not None:
                self.feedback.close()
            self.feedback = PredictionLog(
                Path(config.predictions_dir), config.prediction_log_max_bytes_per_day
            )
        self.smoke_key = smoke_key
        self.config = config
        logger.info("serving %s version %s", config.model_name, config.model_version)

    def _refusal(self, credentials: HTTPAuthorizationCredentials | None) -> JSONResponse | None:
        """503 before a model is loaded; 401 when a token is set and not presented."""
        config = self.config
        if config is None or self.predictor is None:
            return _error(503, "no model loaded yet")
        expected = config.api_token_sha256
        given = credentials.credentials if credentials else None
        if expected is not None and not token_matches(given, expected):
            return _error(
                401,
                "send 'Authorization: Bearer <token>' with the server's token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return None

    @api.post(
        "/predict", response_model=PredictResponse, responses=_documented(400, 401, 413, 422, 503)
    )
    async def predict(
        self,
        body: PredictRequest,
        credentials: Credentials,
        smoke_signature: SmokeSignature = None,
    ) -> Any:
        """Dispute probabilities for 1 to `max_complaints` complaints."""
        refusal = self._refusal(credentials)
        if refusal is not None:
            return refusal
        config = self.config
        assert config is not None  # _refusal answered otherwise
        if len(body.complaints) > config.max_complaints:
            return _error(
                413,
                f"complaints: {len(body.complaints)} given, at most {config.max_complaints} "
                "per request",
            )
        records = request_records(body)
        # A deployment's smoke request checks the champion: it is neither split nor shadowed, and
        # monitoring leaves it out. Only the deployer's signature makes one, never an id.
        smoke = is_smoke(self.smoke_key, body, smoke_signature)
        challenger = config.challenger if self.challenger is not None and not smoke else None
        share = challenger.share if challenger is not None and challenger.mode == "split" else 0.0
        routed = to_challenger([c.complaint_id for c in body.complaints], share)
        async with self.budget.hold(len(records)):
            answers = await self._answers(records, routed, config)
        predictions = [
            answer.prediction(complaint.complaint_id)
            for complaint, answer in zip(body.complaints, answers, strict=True)
        ]
        self._log(records, predictions, answers, config, smoke)
        if challenger is not None and challenger.mode == "shadow":
            self._shadow(records, config)
        return PredictResponse(
            model_name=config.model_name,
            model_version=config.model_version,
            predictions=predictions,
        )

    async def _answers(
        self, records: list[dict[str, Any]], routed: list[bool], config: ServingConfig
    ) -> list[_Answer]:
        """Every record's answer: the challenger's for those routed to it (when it answers with
        the configured version), the champion's for the rest."""
        theirs = [i for i, to_it in enumerate(routed) if to_it]
        challenged = config.challenger
        scored: dict[int, _Answer] = {}
        if theirs and challenged is not None:
            found = await self._ask_challenger(
                [records[i] for i in theirs], challenged.model_version
            )
            if found is None:
                self.fallbacks += len(theirs)
            else:
                for i, p in zip(theirs, found, strict=True):
                    scored[i] = _Answer(
                        p, challenged.model_version, challenged.decision_threshold, "challenger"
                    )
        ours = [i for i in range(len(records)) if i not in scored]
        if ours:
            probabilities = await self._probabilities([records[i] for i in ours])
            for i, p in zip(ours, probabilities, strict=True):
                scored[i] = _Answer(
                    float(p), config.model_version, config.decision_threshold, "champion"
                )
        return [scored[i] for i in range(len(records))]

    async def _ask_challenger(
        self, records: list[dict[str, Any]], version: str
    ) -> list[float] | None:
        """The challenger's probabilities, or None when it cannot give this version's."""
        assert self.challenger is not None
        try:
            answered, probabilities = await self.challenger.score.remote(records)
        # Whatever went wrong in the challenger's deployment (not loaded yet during a mode
        # change, its replica restarting), a user's request must not fail for it: the champion
        # answers, and /model counts how often.
        except Exception:
            logger.warning("the challenger did not answer; the champion does", exc_info=True)
            return None
        return probabilities if answered == version else None

    def _shadow(self, records: list[dict[str, Any]], config: ServingConfig) -> None:
        """Score the records with the challenger after the response, and log its answers."""
        if len(self._shadows) >= MAX_SHADOWS_IN_FLIGHT:
            self.shadow_skipped += 1
            return
        task = asyncio.get_running_loop().create_task(self._shadow_scoring(records, config))
        self._shadows.add(task)
        task.add_done_callback(self._shadows.discard)

    async def _shadow_scoring(self, records: list[dict[str, Any]], config: ServingConfig) -> None:
        challenger = config.challenger
        assert challenger is not None
        found = await self._ask_challenger(records, challenger.model_version)
        if found is None:
            self.shadow_failures += 1
            return
        answers = [
            _Answer(p, challenger.model_version, challenger.decision_threshold, "shadow")
            for p in found
        ]
        predictions = [
            a.prediction(r.get("complaint_id")) for r, a in zip(records, answers, strict=True)
        ]
        self._log(records, predictions, answers, config, smoke=False)

    def _log(
        self,
        records: list[dict[str, Any]],
        predictions: list[Prediction],
        answers: list[_Answer],
        config: ServingConfig,
        smoke: bool,
    ) -> None:
        if self.feedback is None:
            return
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        for record, prediction, answer in zip(records, predictions, answers, strict=True):
            # The fields of `LoggedPrediction`, which `served_predictions` reads them with.
            self.feedback.append(
                {
                    "request_time": now,
                    "model_name": config.model_name,
                    "model_version": answer.version,
                    "decision_threshold": answer.threshold,
                    "inputs": record,
                    "dispute_probability": prediction.dispute_probability,
                    "disputed": prediction.disputed,
                    "role": answer.role,
                    "smoke": smoke,
                }
            )

    @api.get("/model", response_model=ModelInfo, responses=_documented(401, 503))
    async def model_info(self, credentials: Credentials) -> Any:
        """Provenance of the served model: versions, lineage, evaluation, threshold."""
        refusal = self._refusal(credentials)
        if refusal is not None or self.config is None:
            return refusal
        return ModelInfo(
            model_name=self.config.model_name,
            model_version=self.config.model_version,
            decision_threshold=self.config.decision_threshold,
            deployed_at=self.deployed_at,
            feature_snapshot_date=snapshot.isoformat()
            if (snapshot := self.predictor.snapshot_date)
            else None,
            challenger=self._challenger_info(),
            prediction_log=(
                self.feedback.info(datetime.now(UTC).date().isoformat()) if self.feedback else None
            ),
            **self.config.provenance,
        )

    def _challenger_info(self) -> ChallengerInfo | None:
        challenger = self.config.challenger if self.config else None
        if challenger is None or self.challenger is None:
            return None
        return ChallengerInfo(
            model_version=challenger.model_version,
            mode=challenger.mode,
            share=challenger.share if challenger.mode == "split" else 0.0,
            fallbacks=self.fallbacks,
            shadow_failures=self.shadow_failures,
            shadow_skipped=self.shadow_skipped,
        )

    @api.get("/openapi.json", include_in_schema=False)
    async def openapi(self) -> dict[str, Any]:
        """The API's contract as this deployment enforces it."""
        return contract(bool(self.config and self.config.api_token_sha256))

    @api.get("/docs", include_in_schema=False)
    async def docs(self) -> HTMLResponse:
        """Swagger UI over /openapi.json."""
        return get_swagger_ui_html(openapi_url="/openapi.json", title=api.title)

    @api.get("/healthz", response_model=Health)
    async def healthz(self) -> Health:
        """Liveness, and whether a model is loaded."""
        version = self.config.model_version if self.config else None
        challenger = self._challenger_info()
        return Health(
            status="ok",
            model_loaded=self.predictor is not None,
            model_version=version,
            challenger_version=challenger.model_version if challenger else None,
        )


app = DisputeModelServer.bind(ChallengerScorer.bind())
