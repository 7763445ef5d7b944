"""The platform's settings: every environment variable it reads, with its default, in one place.

`load_settings()` reads them; nothing else in the package reads the environment. The docs'
configuration page is generated from this class (docs/hooks.py), so it cannot drift from it.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "ML_ASSETS_"
# Ports of the local platform (each used by the CLI, the demo and the resources alike).
UI_PORT = 3000
MLFLOW_PORT = 5000
SERVE_PORT = 8000
RAY_GCS_PORT = 6379
# Not 5432 (a system PostgreSQL's), nor in Linux's ephemeral range (32768-60999), where an
# outgoing connection may hold it for a while.
POSTGRES_PORT = 15432
# How a challenger serves beside the champion: not at all, in shadow, or answering a share.
ChallengerServing = Literal["off", "shadow", "split"]


# Fields a blank variable sets to None (shells and CI templates leave variables set but empty).
OPTIONAL_FIELDS = (
    "today",
    "intraday_ingest_s",
    "retrain_cron",
    "api_token",
    "failure_webhook_url",
    "ray_address",
)
SECRET_FIELDS = frozenset({"api_token", "failure_webhook_url"})


class SettingsError(ValueError):
    """A variable whose value cannot be used; the message names it and the fix."""


class Settings(BaseSettings):
    """What the environment sets (ML_ASSETS_<FIELD>, unless an alias says otherwise)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    home: Path = Field(
        default_factory=lambda: Path.home() / ".ml_assets",
        description="The project home: landing zone, warehouse, MLflow store, Dagster "
        "instance, prediction logs and logs (`make` sets it to `.ml_assets/` in the checkout).",
    )
    env: Literal["local"] = Field(
        default="local",
        description="The resource set `ml_assets/definitions.py` builds (one machine: `local`).",
    )
    today: date | None = Field(
        default=None,
        description="Pins the platform's today (YYYY-MM-DD, UTC): a replay of a past period or a "
        "test's fixed world. Unset: the real date.",
    )
    sensor_interval_s: int = Field(
        default=30, ge=1, description="Seconds between ticks of every sensor."
    )
    sensors: bool = Field(
        default=True,
        description="The code location has its sensors (landing files, automation, run "
        "failures, serving). `ml-assets materialize` sets it false in the Dagster it starts for "
        "its backfill alone, so that nothing but the backfill runs there.",
    )
    intraday_ingest_s: int | None = Field(
        default=None,
        ge=0,
        description="Set: today's prediction logs so far are ingested this often (seconds). "
        "Unset: complete days only.",
    )
    retrain_min_partitions: int = Field(
        default=7,
        ge=1,
        description="New labelled feature days that retrain the model: a week of new evidence "
        "is worth a training run.",
    )
    retrain_cron: str | None = Field(
        default="0 4 * * 1",
        description="Calendar retraining (cron, UTC; weekly on Monday 04:00: a model never gets "
        "older than a week). Set but empty: the model retrains on evidence only.",
    )
    retrain_settle_days: int = Field(
        default=0,
        ge=0,
        description="Evidence of the last days waits this long for their labels before it "
        "retrains (0: act at once).",
    )
    prediction_retention_days: int = Field(
        default=30,
        ge=1,
        description="Prediction-log files are deleted once this many days old and fully "
        "ingested into the warehouse.",
    )
    # 512 MiB: some 300,000 answers of 1.7 KB (a line whose narrative has the real extracts'
    # mean length, 1,035 characters) a day; with 30 days of retention, at most 15 GiB of logs.
    prediction_log_max_bytes_per_day: int = Field(
        default=512 * 1024 * 1024,
        ge=1,
        description="Bytes a day's prediction logs may take, all replicas' files together "
        "(the disk they hold is at most this times the retention days, more only while days "
        "wait to be ingested). Past it the day's further answers are not logged: each replica "
        "warns once a day and counts them (`/model`'s `prediction_log.dropped_records`).",
    )
    serve_host: str = Field(
        default="127.0.0.1",
        description="Where the Ray Serve endpoint binds; beyond loopback it needs a token.",
    )
    serve_port: int = Field(default=SERVE_PORT, description="The Ray Serve endpoint's port.")
    challenger_mode: ChallengerServing = Field(
        default="off",
        description="How the latest trained model serves beside the champion when it is not "
        "the champion: `shadow` (scores every request, answers none), `split` (answers "
        "`challenger_share` of complaints) or `off`.",
    )
    challenger_share: float = Field(
        default=0.1, ge=0.0, le=1.0, description="A split's share of complaints (0.1: 90/10)."
    )
    promote_on_live_evidence: bool = Field(
        default=False,
        description="A blessed challenger becomes the champion only on live evidence "
        "(`live_promotion`), serving beside it meanwhile. False: at once, when blessed.",
    )
    api_token: SecretStr | None = Field(
        default=None,
        description="Set: /predict and /model require `Authorization: Bearer <token>` "
        "(the deployment keeps only its SHA-256; clients of the CLI send it).",
    )
    failure_webhook_url: SecretStr | None = Field(
        default=None,
        description="Set: a failed run is also POSTed to this URL (next to the log file). A "
        "secret: the notifier reads it when it posts; the UI and error messages show the "
        "variable's name, never the URL.",
    )
    postgres_port: int = Field(
        default=POSTGRES_PORT,
        description="The port (on 127.0.0.1) `ml-assets up --storage postgres` gives the home's "
        "PostgreSQL server; the home remembers it, later commands use the remembered one.",
    )
    ray_address: str | None = Field(
        default=None,
        validation_alias=AliasChoices("RAY_ADDRESS"),
        description=f"Ray's own variable: the cluster to serve on. Unset: the project's local "
        f"head at 127.0.0.1:{RAY_GCS_PORT}.",
    )

    @field_validator(*OPTIONAL_FIELDS, mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        """A variable set to blanks means None (for the retraining cron: no calendar trigger)."""
        return None if isinstance(value, str) and not value.strip() else value

    @classmethod
    def env_name(cls, field: str) -> str:
        """The environment variable that sets a field."""
        alias = cls.model_fields[field].validation_alias
        if isinstance(alias, AliasChoices):
            return str(alias.choices[0])
        return f"{ENV_PREFIX}{field.upper()}"

    @property
    def ray_gcs_address(self) -> str:
        """The Ray cluster to serve on: RAY_ADDRESS, else the project's local head."""
        return self.ray_address or f"127.0.0.1:{RAY_GCS_PORT}"

    def token(self) -> str | None:
        """The endpoint's bearer token in clear, for clients (None: the endpoint is open)."""
        return self.api_token.get_secret_value().strip() if self.api_token else None


def load_settings() -> Settings:
    """The settings from the environment, or an error naming each variable that is wrong."""
    try:
        return Settings()
    except ValidationError as error:
        problems = []
        for item in error.errors():
            field = str(item["loc"][0]) if item["loc"] else ""
            name = Settings.env_name(field) if field in Settings.model_fields else field
            shown = "<secret>" if field in SECRET_FIELDS else repr(item.get("input"))
            problems.append(f"{name}={shown}: {item['msg']}")
        raise SettingsError(
            "; ".join(problems) + " (fix the variable, or unset it to use its default)"
        ) from None
