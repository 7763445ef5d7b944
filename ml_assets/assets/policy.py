"""The `serving_policy` resource: how a challenger serves beside the champion, and how it
becomes the champion (the platform's settings; not an outside system, so not in resources/)."""

from __future__ import annotations

from typing import Any

import dagster as dg
from pydantic import Field

from ml_assets.settings import ChallengerServing, Settings


def _as_setting(name: str, **bounds: Any) -> Any:
    """A field with the default and description of the setting of the same name."""
    setting = Settings.model_fields[name]
    return Field(default=setting.default, description=setting.description, **bounds)


class ServingPolicy(dg.ConfigurableResource):
    """The platform's challenger settings (from `ML_ASSETS_CHALLENGER_*`; `deployed_model`'s
    run config can override the mode and the share for one deployment), and the prediction
    log's byte budget per day that every deployment carries to its replicas."""

    challenger_mode: ChallengerServing = _as_setting("challenger_mode")
    challenger_share: float = _as_setting("challenger_share", ge=0.0, le=1.0)
    promote_on_live_evidence: bool = _as_setting("promote_on_live_evidence")
    prediction_log_max_bytes_per_day: int = _as_setting("prediction_log_max_bytes_per_day", ge=1)
