"""The HTTP API's request and response models (OpenAPI at /docs)."""

from __future__ import annotations

from datetime import UTC
from typing import Annotated, Any, Final, Literal

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


# How a challenger serves beside the champion: "shadow" scores every request off the response
# path; "split" answers a share of complaints (sticky by complaint id).
ChallengerMode = Literal["shadow", "split"]
# Who produced a logged prediction: the champion's answer, the challenger's answer (split), or the
# challenger's shadow score that no user saw.
Role = Literal["champion", "challenger", "shadow"]


class Prediction(BaseModel):
    """The answer for one complaint, and the model version that gave it."""

    model_config = ConfigDict(protected_namespaces=())

    complaint_id: str | None
    dispute_probability: float
    disputed: bool
    model_version: str | None = None


class PredictResponse(BaseModel):
    """Answers in request order; `model_version` is the champion's, each prediction names the
    version that answered it (a challenger's under a split)."""

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
    # Logs written before challengers served hold the champion's answers only.
    role: Role = "champion"

    @property
    def request_day(self) -> str:
        """The UTC day of the request (YYYY-MM-DD): the log's folder and partition."""
        return self.request_time.astimezone(UTC).date().isoformat()


class Health(BaseModel):
    """Liveness and whether a model is loaded."""

    status: str
    model_loaded: bool
    model_version: str | None = None
    challenger_version: str | None = None


class ChallengerInfo(BaseModel):
    """The challenger serving beside the champion, and how."""

    model_config = ConfigDict(protected_namespaces=())

    model_version: str
    mode: ChallengerMode
    share: float
    fallbacks: int = Field(
        description="complaints of this replica's the champion answered: the challenger was not ready"
    )
    shadow_failures: int = Field(description="this replica's shadow scorings that failed")
    shadow_skipped: int = Field(
        description="requests this replica did not shadow: too many shadow scorings in flight"
    )


class ModelInfo(BaseModel):
    """Provenance of the served model, and the challenger beside it (if any)."""

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
    challenger: ChallengerInfo | None = None


class ChallengerConfig(BaseModel):
    """A challenger version served beside the champion, and how."""

    model_config = ConfigDict(protected_namespaces=())

    model_version: str
    decision_threshold: float
    mode: ChallengerMode
    share: float = Field(
        default=0.1, ge=0.0, le=1.0, description="split: the share of complaints it answers"
    )


class ScorerConfig(BaseModel):
    """The challenger deployment's `user_config`: which version to load (None: none)."""

    model_config = ConfigDict(protected_namespaces=())

    tracking_uri: str
    model_name: str
    model_version: str | None = None


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
    challenger: ChallengerConfig | None = None

    def scorer_config(self) -> ScorerConfig:
        """What the challenger deployment loads: the challenger's version, or nothing."""
        version = self.challenger.model_version if self.challenger else None
        return ScorerConfig(
            tracking_uri=self.tracking_uri, model_name=self.model_name, model_version=version
        )
