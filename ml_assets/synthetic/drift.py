"""The drift scenario: from a day on, another product mix, a new issue, new narrative wording."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date

import numpy as np

from ml_assets.synthetic.samplers import Categorical, Model

# Words of a changed narrative wording: none of them is in the profile's vocabularies, so a model
# trained before the change has never seen them.
DRIFT_WORDS: tuple[str, ...] = (
    "app", "wallet", "zelle", "splitpay", "bnpl", "chatbot", "autopay", "crypto", "token",
    "paylater", "subscription", "microloan", "fintech", "biometric", "geofence", "cashapp",
    "overdraft-protection", "instant-transfer", "pay-in-four", "checkout",
)  # fmt: skip


@dataclass(frozen=True)
class Drift:
    """What complaints look like from a day on, in the drift scenario.

    A product-mix shift, a new issue that is disputed far more often (a model trained before
    cannot know it), and new wording.
    """

    start: date
    product: str | None = "Student loan"
    product_share: float = 0.5  # of all complaints, on top of the usual mix
    issue: str | None = "Problem with a buy now, pay later plan"
    issue_share: float = 0.3  # of complaints, whatever their product
    issue_dispute_logit: float = 2.5
    wording_share: float | None = 0.7  # of narrative body words drawn from DRIFT_WORDS

    def __post_init__(self) -> None:
        for name in ("product_share", "issue_share", "wording_share"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"drift {name} must be in [0, 1], got {value}")

    def applies(self, day: date) -> bool:
        """Whether complaints of `day` are drifted."""
        return day >= self.start

    def shifted(self, model: Model) -> Model:
        """The model's samplers after the change: more of one product, new narrative words."""
        products, vocabulary = model.products, model.vocabulary
        if self.product is not None:
            products = _mixed(model.products, self.product, self.product_share)
        if self.wording_share is not None:
            words = Categorical(DRIFT_WORDS, np.full(len(DRIFT_WORDS), 1 / len(DRIFT_WORDS)))
            vocabulary = {
                key: _blend(dist, words, self.wording_share) for key, dist in vocabulary.items()
            }
        return replace(model, products=products, vocabulary=vocabulary)


def _mixed(dist: Categorical, value: str, share: float) -> Categorical:
    """`dist` with `share` of its mass moved to `value` (added when absent)."""
    values = dist.values if value in dist.values else (*dist.values, value)
    probs = np.append(dist.probs, 0.0) if len(values) > len(dist.values) else dist.probs.copy()
    probs = probs * (1 - share)
    probs[values.index(value)] += share
    return Categorical(values, probs / probs.sum())


def _blend(dist: Categorical, other: Categorical, share: float) -> Categorical:
    """A mixture: `share` of draws from `other`, the rest from `dist`."""
    values = (*dist.values, *other.values)
    probs = np.concatenate([dist.probs * (1 - share), other.probs * share])
    return Categorical(values, probs / probs.sum())
