"""The `serving_policy` resource: how a challenger serves beside the champion, and how it
becomes the champion (the platform's settings; not an outside system, so not in resources/)."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from ml_assets.settings import ChallengerServing


class ServingPolicy(dg.ConfigurableResource):
    """The platform's challenger settings (from `ML_ASSETS_CHALLENGER_*`); `deployed_model`'s
    run config can override the mode and the share for one deployment."""

    challenger_mode: ChallengerServing = Field(
        default="off",
        description="how the latest trained model (alias `challenger`, when it is not the "
        "champion) serves beside the champion: shadow scores every request off the response "
        "path, split answers challenger_share of complaints (sticky by complaint id)",
    )
    challenger_share: float = Field(
        default=0.1, ge=0.0, le=1.0, description="split: the challenger's share of complaints"
    )
    promote_on_live_evidence: bool = Field(
        default=False,
        description="a blessed challenger becomes the champion only when `live_promotion` "
        "finds its live evidence good enough (False: at once, when blessed)",
    )
