"""One day's complaints drawn from the compiled profile, keyed by the official header's names."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

import numpy as np

from ml_assets.synthetic.drift import Drift
from ml_assets.synthetic.labels import dispute_labels
from ml_assets.synthetic.narratives import DEFAULT_SIGNAL, NarrativeSignal, narrative
from ml_assets.synthetic.samplers import (
    GENERIC_COMPANIES,
    Model,
    draw_conditional,
    sample_quantiles,
)

# Complaint ids: one block of IDS_PER_DAY numbers per day since ID_EPOCH, so days never collide.
ID_EPOCH = date(2000, 1, 1)
IDS_PER_DAY = 100_000
ID_OFFSET = 1_000_000


def format_date(value: date) -> str:
    """M/D/YYYY without leading zeros, as in the official CFPB export."""
    return f"{value.month}/{value.day}/{value.year}"


def complaint_id(day: date, index: int) -> str:
    """A numeric complaint id unique across days (one block of IDS_PER_DAY per day)."""
    return str(ID_OFFSET + (day.toordinal() - ID_EPOCH.toordinal()) * IDS_PER_DAY + index)


def day_rng(seed: int, day: date) -> np.random.Generator:
    """The generator of one day's content, independent of which other days are generated."""
    return np.random.default_rng([seed, day.toordinal()])


def zip_codes(rng: np.random.Generator, states: Sequence[str | None], model: Model) -> list[str]:
    """Plausible ZIP codes for states: a real ZIP3 prefix, random last digits, some masked."""
    prefixes = draw_conditional(rng, states, model.zip3, "XXX")
    tails = rng.integers(0, 100, size=len(states))
    masked = rng.random(len(states)) < model.masked_zip_share
    out: list[str] = []
    for prefix, tail, mask in zip(prefixes, tails, masked, strict=True):
        if prefix == "XXX":
            out.append("XXXXX")
        else:
            out.append(f"{prefix}XX" if mask else f"{prefix}{tail:02d}")
    return out


def sample_records(
    rng: np.random.Generator,
    day: date,
    rows: int,
    model: Model,
    signal: NarrativeSignal = DEFAULT_SIGNAL,
    drift: Drift | None = None,
) -> list[dict[str, str]]:
    """`rows` valid complaints received on `day`, keyed by official header name.

    From `drift`'s start on, the complaints are drifted.
    """
    if drift is not None and not drift.applies(day):
        drift = None
    if drift is not None:
        model = drift.shifted(model)
    products = model.products.draw(rng, rows)
    issues = draw_conditional(rng, products, model.issues, "Other")
    states = model.states.draw(rng, rows)
    responses = model.responses.draw(rng, rows)
    delays = np.rint(sample_quantiles(rng, model.delay, rows)).astype(int)
    extra_logits = None
    if drift is not None and drift.issue is not None:
        new_issue = rng.random(rows) < drift.issue_share
        issues = [
            drift.issue if new else issue for new, issue in zip(new_issue, issues, strict=True)
        ]
        extra_logits = np.where(new_issue, drift.issue_dispute_logit, 0.0)
    disputed = dispute_labels(rng, products, responses, model, extra_logits)
    label_missing = rng.random(rows) < model.label_missing_share
    has_narrative = rng.random(rows) < signal.share
    timely = rng.random(rows) < model.timely_rate
    columns: dict[str, Sequence[Any]] = {
        "Product": products,
        "Sub-product": draw_conditional(rng, products, model.sub_products, None),
        "Issue": issues,
        "Sub-issue": draw_conditional(rng, issues, model.sub_issues, None),
        "Company public response": model.public_responses.draw(rng, rows),
        "Company": draw_conditional(rng, products, model.companies, GENERIC_COMPANIES[0]),
        "State": states,
        "ZIP code": zip_codes(rng, states, model),
        "Tags": model.tags.draw(rng, rows),
        "Consumer consent provided?": model.consent_without_narrative.draw(rng, rows),
        "Submitted via": model.submitted_via.draw(rng, rows),
        "Company response to consumer": responses,
    }
    records: list[dict[str, str]] = []
    for i in range(rows):
        record = {name: values[i] or "" for name, values in columns.items()}
        record["Date received"] = format_date(day)
        record["Date sent to company"] = format_date(day + timedelta(days=int(delays[i])))
        record["Complaint ID"] = complaint_id(day, i)
        untimely = record["Company response to consumer"] == "Untimely response"
        record["Timely response?"] = "Yes" if timely[i] and not untimely else "No"
        record["Consumer disputed?"] = "" if label_missing[i] else ("Yes" if disputed[i] else "No")
        record["Consumer complaint narrative"] = ""
        if has_narrative[i]:
            product = products[i] or ""
            text = narrative(rng, product, issues[i], bool(disputed[i]), model, day.year, signal)
            record["Consumer complaint narrative"] = text
            # The CFPB only publishes a narrative the consumer consented to share.
            record["Consumer consent provided?"] = "Consent provided"
        records.append(record)
    return records
