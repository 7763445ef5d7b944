"""The HTTP API's request and response models (OpenAPI at /docs)."""

from __future__ import annotations

from datetime import UTC
from typing import Annotated, Any, Final

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, Strict

# A deployment's smoke requests carry complaint ids with this prefix: logged like any request
# (nothing is hidden), left out of live performance and skew, which are about users' traffic.
SMOKE_COMPLAINT_ID_PREFIX: Final = "deploy-smoke-"

# The request limits, in the schema (OpenAPI's maxItems / maxLength) and enforced by
# `guard.RequestGuard` while the body arrives, before it is parsed.
MAX_COMPLAINTS = 1000
MAX_TEXT_CHARS = 20_000
MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_ERROR_DETAILS = 20  # a 422 lists the first errors and counts them all

Text = Annotated[str, Field(max_length=MAX_TEXT_CHARS)]
# JSON true/false only: pydantic's lax mode would also take 0 and 1, which the schema refuses.
Flag = Annotated[bool, Strict()]


class Complaint(BaseModel):
    """One complaint's raw fields, snake_case as in the canonical schema; all optional."""

    model_config = ConfigDict(extra="forbid")

    complaint_id: Text | None = None
    date_received: Text | None = None
    product: Text | None = None
    sub_product: Text | None = None
    issue: Text | None = None
    sub_issue: Text | None = None
    consumer_complaint_narrative: Text | None = None
    company_public_response: Text | None = None
    company: Text | None = None
    state: Text | None = None
    zip_code: Text | None = None
    tags: Text | None = None
    consumer_consent_provided: Text | None = None
    submitted_via: Text | None = None
    date_sent_to_company: Text | None = None
    company_response: Text | None = None
    timely_response: Flag | Text | None = Field(default=None, description="true/false or Yes/No")
    consumer_disputed: Flag | Text | None = Field(default=None, description="ignored: the label")


class PredictRequest(BaseModel):
    """Complaints to score (1 to MAX_COMPLAINTS; a deployment may set a lower maximum)."""

    model_config = ConfigDict(extra="forbid")

    complaints: list[Complaint] = Field(min_length=1, max_length=MAX_COMPLAINTS)


class ErrorResponse(BaseModel):
    """The body of every error but a validation error: what went wrong and what to do."""

    detail: str


class ValidationErrorItem(BaseModel):
    """One invalid field: where (FastAPI's `loc`), what, and pydantic's error type."""

    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorResponse(BaseModel):
    """A 422: the first MAX_ERROR_DETAILS errors, and how many there were in all."""

    detail: list[ValidationErrorItem]
    error_count: int


class Prediction(BaseModel):
    """The answer for one complaint."""

    complaint_id: str | None
    dispute_probability: float
    disputed: bool


class PredictResponse(BaseModel):
    """Answers in request order, and the model version that gave them."""

    model_name: str
    model_version: str
    predictions: list[Prediction]


class LoggedPrediction(BaseModel):
    """One answered prediction as the endpoint logs it: a line of `predictions/DAY/*.jsonl`.

    The writer (the endpoint) and the reader (`served_predictions`) share this model, so a line
    is either exactly this or quarantined with pydantic's reason.
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    request_time: AwareDatetime
    model_name: str
    model_version: str
    # Optional: logs written before it was recorded fall back to the version's registered one.
    decision_threshold: float | None = None
    inputs: Complaint
    dispute_probability: float = Field(ge=0.0, le=1.0)
    disputed: bool

    @property
    def request_day(self) -> str:
        """The UTC day of the request (YYYY-MM-DD): the log's folder and partition."""
        return self.request_time.astimezone(UTC).date().isoformat()


class Health(BaseModel):
    """Liveness and whether a model is loaded."""

    status: str
    model_loaded: bool
    model_version: str | None = None


class ModelInfo(BaseModel):
    """Provenance of the served model."""

    model_config = ConfigDict(protected_namespaces=())

    model_name: str
    model_version: str
    alias: str
    mlflow_run_id: str
    dagster_run_id: str | None = None
    training_window: str | None = None
    data_versions: dict[str, str] = Field(default_factory=dict)
    code_versions: dict[str, str] = Field(default_factory=dict)
    evaluation: dict[str, Any] = Field(default_factory=dict)
    decision_threshold: float
    deployed_at: str


class ServingConfig(BaseModel):
    """The deployment's `user_config`: which version to serve and how."""

    model_config = ConfigDict(protected_namespaces=())

    tracking_uri: str
    model_name: str
    model_version: str
    decision_threshold: float
    provenance: dict[str, Any]
    predictions_dir: str | None = None
    max_complaints: int = Field(default=MAX_COMPLAINTS, ge=1, le=MAX_COMPLAINTS)
    # The SHA-256 of the bearer token /predict and /model require (None: open); the token itself
    # never enters the deployment's config, which Ray shows to anyone who can reach the cluster.
    api_token_sha256: str | None = None
