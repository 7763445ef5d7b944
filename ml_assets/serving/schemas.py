"""The HTTP API's request and response models (OpenAPI at /docs)."""

from __future__ import annotations

from datetime import UTC
from typing import Annotated, Any, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, Strict

from ml_assets.settings import Settings

# A deployment's smoke requests carry complaint ids with this prefix, for a reader of the logs.
# The prefix hides nothing (anyone can send it): what marks a smoke request, kept on the champion
# and out of live performance and skew, is the deployer's signature (`smoke.py`).
SMOKE_COMPLAINT_ID_PREFIX: Final = "deploy-smoke-"

# The request limits, in the schema (OpenAPI's maxItems / maxLength) and enforced by
# `guard.RequestGuard` while the body arrives, before it is parsed.
MAX_COMPLAINTS = 1000
MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_ERROR_DETAILS = 20  # a 422 lists the first errors and counts them all
# Characters per field: about 3x the longest values of the real CFPB extracts
# (../shared/data/cfpb: dates 10, state 2, ZIP code 5, consent 20, channel 11; product 23, issue
# and sub-issue 40, company 53, public response 95, and the CFPB's 2017 taxonomy's longest
# product, 76; narratives 4,058), so that a real complaint never meets them, and every logged
# line stays bounded (MAX_LOGGED_LINE_BYTES).
MAX_CODE_CHARS = 64  # ids, dates, state, ZIP code, flags, consent, channel
MAX_LABEL_CHARS = 256  # categories, companies and their responses, tags
MAX_TEXT_CHARS = 20_000  # the narrative

Code = Annotated[str, Field(max_length=MAX_CODE_CHARS)]
Label = Annotated[str, Field(max_length=MAX_LABEL_CHARS)]
Text = Annotated[str, Field(max_length=MAX_TEXT_CHARS)]
# A complaint's id is the key its late label joins on, so it is never scrubbed (CFPB's ids are
# 7-digit numbers, which the scrubber rightly takes for local phone numbers): it is held to an
# identifier's characters instead, which leave no room for sentences, e-mail or street addresses
# (a number or a one-token name still fits: docs/data-protection.md says so).
Identifier = Annotated[
    str, Field(max_length=MAX_CODE_CHARS, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
]
# JSON true/false only: pydantic's lax mode would also take 0 and 1, which the schema refuses.
Flag = Annotated[bool, Strict()]
_LOG_BUDGET = Settings.model_fields["prediction_log_max_bytes_per_day"]


class Complaint(BaseModel):
    """One complaint's raw fields, snake_case as in the canonical schema; all optional."""

    model_config = ConfigDict(extra="forbid")

    complaint_id: Identifier | None = None
    date_received: Code | None = None
    product: Label | None = None
    sub_product: Label | None = None
    issue: Label | None = None
    sub_issue: Label | None = None
    consumer_complaint_narrative: Text | None = None
    company_public_response: Label | None = None
    company: Label | None = None
    state: Code | None = None
    zip_code: Code | None = None
    tags: Label | None = None
    consumer_consent_provided: Code | None = None
    submitted_via: Code | None = None
    date_sent_to_company: Code | None = None
    company_response: Label | None = None
    timely_response: Flag | Code | None = Field(default=None, description="true/false or Yes/No")
    consumer_disputed: Flag | Code | None = Field(default=None, description="ignored: the label")


# Every other field a caller types can hold text (even a flag, sent as "Yes"): all are scrubbed
# before the model and the log, and again when a log is read.
FREE_TEXT_FIELDS: Final[tuple[str, ...]] = tuple(
    name for name in Complaint.model_fields if name != "complaint_id"
)
# A logged line's bound: every character of every field at its longest JSON escape (12 bytes: a
# surrogate pair's two \uXXXX), and room for the rest of the record. The prediction logs' reader
# keeps no more of a line than this.
MAX_LOGGED_LINE_BYTES: Final = (
    12 * (MAX_TEXT_CHARS + 9 * MAX_LABEL_CHARS + 8 * MAX_CODE_CHARS) + 4096
)


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
    # A deployment's smoke request, verified by its signature. Logs written before it was
    # recorded are users' traffic, `deploy-smoke-` ids included (that prefix hid anyone's).
    smoke: bool = False

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


class PredictionLogInfo(BaseModel):
    """This replica's prediction log writer: the day's byte budget, and what it did not log."""

    day: str = Field(description="the UTC day of the figures (YYYY-MM-DD)")
    budget_bytes: int = Field(description="the bytes a day's logs may take, all replicas' files")
    written_bytes_today: int = Field(description="the bytes of the day's logs, all replicas'")
    dropped_records: int = Field(
        description="answers this replica did not log since its writer started: over a day's "
        "budget, its queue full, or a write failed"
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
    # The day of the company history the served answers read (the online feature store).
    feature_snapshot_date: str | None = None
    challenger: ChallengerInfo | None = None
    prediction_log: PredictionLogInfo | None = None


class ChallengerConfig(BaseModel):
    """A challenger version served beside the champion, and how."""

    model_config = ConfigDict(protected_namespaces=())

    model_version: str
    decision_threshold: float
    mode: ChallengerMode
    share: float = Field(
        default=0.1, ge=0.0, le=1.0, description="split: the share of complaints it answers"
    )


class RegistryLogin(BaseModel):
    """How a replica logs in to an authenticated MLflow server: a user, and a file holding its
    password (the password itself never enters the config, which Ray shows to the cluster)."""

    username: str
    password_file: str


class SmokeKey(BaseModel):
    """The key that signs a deployer's smoke requests: a file only its owner reads (the key never
    enters the config, which Ray shows to the cluster), and the key's SHA-256, so that a new key
    is a config change, which the replicas reload."""

    file: str
    sha256: str


class ScorerConfig(BaseModel):
    """The challenger deployment's `user_config`: which version to load (None: none)."""

    model_config = ConfigDict(protected_namespaces=())

    tracking_uri: str
    model_name: str
    model_version: str | None = None
    registry_login: RegistryLogin | None = None
    feature_store: str | None = None  # the online store's file (models that take history)


class ServingConfig(BaseModel):
    """The deployment's `user_config`: which version to serve and how."""

    model_config = ConfigDict(protected_namespaces=())

    tracking_uri: str
    model_name: str
    model_version: str
    decision_threshold: float
    registry_login: RegistryLogin | None = None
    provenance: dict[str, Any]
    predictions_dir: str | None = None
    max_complaints: int = Field(default=MAX_COMPLAINTS, ge=1, le=MAX_COMPLAINTS)
    # The SHA-256 of the bearer token /predict and /model require (None: open); the token itself
    # never enters the deployment's config, which Ray shows to anyone who can reach the cluster.
    api_token_sha256: str | None = None
    prediction_log_max_bytes_per_day: int = Field(
        default=_LOG_BUDGET.default, ge=1, description=_LOG_BUDGET.description
    )
    # None: no request is marked as a deployment's smoke request.
    smoke_key: SmokeKey | None = None
    challenger: ChallengerConfig | None = None
    feature_store: str | None = None  # the online store's file (models that take history)

    def scorer_config(self) -> ScorerConfig:
        """What the challenger deployment loads: the challenger's version, or nothing."""
        version = self.challenger.model_version if self.challenger else None
        return ScorerConfig(
            tracking_uri=self.tracking_uri,
            model_name=self.model_name,
            model_version=version,
            registry_login=self.registry_login,
            feature_store=self.feature_store,
        )
