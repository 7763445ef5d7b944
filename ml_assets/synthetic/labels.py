"""Dispute labels: the outcome of each complaint, and when a day's labels are published."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, timedelta

import numpy as np

from ml_assets.synthetic.samplers import Model

# The dispute field of complaints received after the CFPB stopped collecting disputes.
UNLABELLED = "N/A"
# A complaint published before its outcome is known: the field is empty until a republication.
PENDING_LABEL = ""
LABEL_DELAY_STREAM = 1  # the seed stream of label delays, apart from the days' content


def dispute_labels(
    rng: np.random.Generator,
    products: Sequence[str | None],
    responses: Sequence[str | None],
    model: Model,
    extra_logits: np.ndarray | None = None,
) -> np.ndarray:
    """Dispute outcomes drawn from the calibrated product x company-response logit model.

    `extra_logits` adds to each row's logit: the drift scenario's new issue.
    """
    logits = model.base_logit + np.array(
        [
            model.product_logits.get(str(p), 0.0) + model.response_logits.get(str(r), 0.0)
            for p, r in zip(products, responses, strict=True)
        ]
    )
    if extra_logits is not None:
        logits = logits + extra_logits
    return rng.random(len(products)) < 1 / (1 + np.exp(-logits))


def label_delay(seed: int, day: date, delay_days: tuple[int, int]) -> int:
    """Days after `day` until its complaints' labels are published (seeded, within the range)."""
    low, high = delay_days
    rng = np.random.default_rng([seed, day.toordinal(), LABEL_DELAY_STREAM])
    return int(rng.integers(low, high + 1))


def labels_published(day: date, as_of: date, seed: int, delay_days: tuple[int, int] | None) -> bool:
    """Whether a day's labels are out by `as_of` (the platform's today); always without delays."""
    return delay_days is None or day + timedelta(days=label_delay(seed, day, delay_days)) < as_of


def pending_label_days(
    days: Iterable[date], as_of: date, seed: int, delay_days: tuple[int, int] | None
) -> list[date]:
    """The days whose labels are not published by `as_of`."""
    return [day for day in days if not labels_published(day, as_of, seed, delay_days)]
