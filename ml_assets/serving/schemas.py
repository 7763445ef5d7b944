"""The HTTP API's request and response models (OpenAPI at /docs)."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

DEFAULT_MAX_COMPLAINTS = 1000


class Complaint(BaseModel):
    """One complaint's raw fields, snake_case as in the canonical schema; all optional."""

    model_config = ConfigDict(extra="forbid", str_max_length=20_000)

    complaint_id: str | None = None
    date_received: str | None = None
    product: str | None = None
    sub_product: str | None = None
    issue: str | None = None
    sub_issue: str | None = None
    consumer_complaint_narrative: str | None = None
    company_public_response: str | None = None
    company: str | None = None
    state: str | None = None
    zip_code: str | None = None
    tags: str | None = None
    consumer_consent_provided: str | None = None
    submitted_via: str | None = None
    date_sent_to_company: str | None = None
    company_response: str | None = None
    timely_response: bool | str | None = Field(default=None, description="true/false or Yes/No")
    consumer_disputed: bool | str | None = Field(default=None, description="ignored: the label")


class PredictRequest(BaseModel):
    """Complaints to score (at least one; the server sets the maximum)."""

    model_config = ConfigDict(extra="forbid")

    complaints: list[Complaint] = Field(min_length=1)


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
    max_complaints: int = DEFAULT_MAX_COMPLAINTS
