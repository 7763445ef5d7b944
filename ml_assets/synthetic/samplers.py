"""The fitted profile compiled into samplers: categorical draws, quantile tables, dispute logits."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ml_assets.ingest.cfpb_vocabulary import PRODUCT_VOCABULARY, STATE_CODES
from ml_assets.synthetic.profile import Profile

# Companies and narrative words for what the profile leaves empty (a product without companies).
GENERIC_COMPANIES: tuple[str, ...] = (
    "Example Financial Services, Inc.",
    "Sample National Bank",
    "Placeholder Lending LLC",
)
_GENERIC_WORDS: tuple[str, ...] = ("account", "payment", "letter", "balance", "fee", "company")


@dataclass(frozen=True, eq=False)
class Categorical:
    """A categorical distribution ready for vectorised sampling."""

    values: tuple[str | None, ...]
    probs: np.ndarray

    def draw(self, rng: np.random.Generator, n: int) -> list[str | None]:
        """`n` values drawn with replacement."""
        if n == 0:
            return []
        return [self.values[i] for i in rng.choice(len(self.values), size=n, p=self.probs)]


@dataclass(frozen=True, eq=False)
class Model:
    """A profile compiled into samplers and the dispute model's logits."""

    products: Categorical
    sub_products: dict[str, Categorical]
    issues: dict[str, Categorical]
    sub_issues: dict[str, Categorical]
    states: Categorical
    zip3: dict[str, Categorical]
    masked_zip_share: float
    companies: dict[str, Categorical]
    responses: Categorical
    submitted_via: Categorical
    timely_rate: float
    consent_without_narrative: Categorical
    public_responses: Categorical
    tags: Categorical
    delay: tuple[np.ndarray, np.ndarray]
    base_logit: float
    product_logits: dict[str, float]
    response_logits: dict[str, float]
    label_missing_share: float
    lengths: dict[str, tuple[np.ndarray, np.ndarray]]
    vocabulary: dict[str, Categorical]


def categorical(
    pairs: Iterable[Sequence[Any]], keep: Callable[[str | None], bool] | None = None
) -> Categorical | None:
    """A Categorical of [value, share] pairs (kept values only, renormalised), or None if empty."""
    kept = [(v, float(s)) for v, s in pairs if float(s) > 0 and (keep is None or keep(v))]
    total = sum(s for _, s in kept)
    if not kept or total <= 0:
        return None
    return Categorical(tuple(v for v, _ in kept), np.array([s / total for _, s in kept]))


def _required(dist: Categorical | None, what: str) -> Categorical:
    """`dist`, or a ValueError naming the profile part that left nothing to sample."""
    if dist is None:
        raise ValueError(f"the profile has no usable {what}")
    return dist


def company_mixture(entry: dict[str, Any], fallback: Categorical) -> Categorical:
    """A product's top companies, with the 'other' share spread over the fallback companies."""
    top = [(str(v), float(s)) for v, s in entry.get("top", []) if v is not None]
    other = max(float(entry.get("other_share", 0.0)), 0.0)
    named = {v for v, _ in top}
    rest = [(v, p) for v, p in zip(fallback.values, fallback.probs, strict=True) if v not in named]
    if not rest:
        rest = [(v, 1.0 / len(GENERIC_COMPANIES)) for v in GENERIC_COMPANIES]
    rest_total = sum(p for _, p in rest)
    pairs = top + [(v, other * p / rest_total) for v, p in rest]
    return _required(categorical(pairs), "companies")


def calibrated_base_logit(
    target: float,
    products: Categorical,
    responses: Categorical,
    lp: dict[str, float],
    lr: dict[str, float],
) -> float:
    """The intercept making the expected dispute rate over products x responses equal `target`."""
    shifts = np.add.outer(
        np.array([lp.get(str(v), 0.0) for v in products.values]),
        np.array([lr.get(str(v), 0.0) for v in responses.values]),
    )
    weights = np.outer(products.probs, responses.probs)
    low, high = -12.0, 12.0
    for _ in range(60):
        mid = (low + high) / 2
        rate = float((weights / (1 + np.exp(-(mid + shifts)))).sum())
        low, high = (mid, high) if rate < target else (low, mid)
    return (low + high) / 2


def quantile_table(pairs: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    """Levels and values of a [level, value] quantile list, for inverse-CDF sampling."""
    levels = np.array([float(q) for q, _ in pairs])
    values = np.maximum.accumulate(np.array([float(v) for _, v in pairs]))
    return levels, values


def compile_model(profile: Profile) -> Model:
    """Samplers and dispute logits compiled from a profile (see ml_assets.synthetic.profile)."""
    products = _required(
        categorical(profile["products"], lambda v: v in PRODUCT_VOCABULARY), "products"
    )
    zip3 = {s: d for s, pairs in profile["zip3_by_state"].items() if (d := categorical(pairs))}
    states = _required(
        categorical(profile["states"], lambda v: v in STATE_CODES and v in zip3), "states"
    )
    overall_companies = categorical(profile["companies"]["overall"], lambda v: v is not None)
    fallback = overall_companies or _required(
        categorical([(c, 1.0) for c in GENERIC_COMPANIES]), "companies"
    )
    responses = _required(
        categorical(profile["company_responses"], lambda v: v is not None), "responses"
    )
    dispute = profile["dispute"]
    lp = {k: math.log(v["odds_factor"]) for k, v in dispute["by_product"].items()}
    lr = {k: math.log(v["odds_factor"]) for k, v in dispute["by_company_response"].items()}
    narratives = profile.get("narratives") or {}
    length_profile = narratives.get("length_words") or {}
    lengths = {p: quantile_table(q) for p, q in length_profile.get("by_product", {}).items()}
    lengths[""] = quantile_table(length_profile.get("overall", [[0.0, 60.0], [1.0, 250.0]]))
    vocabulary = {
        p: d
        for p, pairs in (narratives.get("vocabulary") or {}).items()
        if (d := categorical(pairs))
    }
    vocabulary[""] = _required(categorical([(w, 1.0) for w in _GENERIC_WORDS]), "words")
    return Model(
        products=products,
        sub_products=_conditional(profile["sub_products"]),
        issues=_conditional(profile["issues"], lambda v: v is not None),
        sub_issues=_conditional(profile["sub_issues"]),
        states=states,
        zip3=zip3,
        masked_zip_share=float(profile["zip_codes"]["masked_3digit_share"]),
        companies={
            p: company_mixture(e, fallback) for p, e in profile["companies"]["by_product"].items()
        },
        responses=responses,
        submitted_via=_required(
            categorical(profile["submitted_via"], lambda v: v is not None), "submitted_via"
        ),
        timely_rate=float(profile["timely_rate"]),
        consent_without_narrative=_required(
            categorical(profile["consumer_consent_provided"], lambda v: v != "Consent provided"),
            "consent values",
        ),
        public_responses=_required(categorical(profile["company_public_response"]), "responses"),
        tags=_required(categorical(profile["tags"]), "tags"),
        delay=quantile_table(profile["days_to_company"]["quantiles"]),
        base_logit=calibrated_base_logit(
            float(dispute["overall_rate"]), products, responses, lp, lr
        ),
        product_logits=lp,
        response_logits=lr,
        label_missing_share=float(dispute["label_missing_share"]),
        lengths=lengths,
        vocabulary=vocabulary,
    )


def _conditional(
    table: dict[str, Any], keep: Callable[[str | None], bool] | None = None
) -> dict[str, Categorical]:
    """A Categorical per key of a {key: [[value, share], ...]} table, skipping empty ones."""
    return {k: d for k, pairs in table.items() if (d := categorical(pairs, keep))}


def draw_conditional(
    rng: np.random.Generator,
    keys: Sequence[str | None],
    table: dict[str, Categorical],
    default: str | None,
) -> list[str | None]:
    """A value per row drawn from the distribution of its key (`default` for unknown keys)."""
    out: list[str | None] = [default] * len(keys)
    by_key: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        by_key.setdefault(str(key), []).append(i)
    for key in sorted(by_key):
        dist = table.get(key)
        if dist is None:
            continue
        rows = by_key[key]
        for i, value in zip(rows, dist.draw(rng, len(rows)), strict=True):
            out[i] = value
    return out


def sample_quantiles(
    rng: np.random.Generator, table: tuple[np.ndarray, np.ndarray], n: int
) -> np.ndarray:
    """`n` draws by inverse-CDF interpolation of a quantile table."""
    levels, values = table
    return np.interp(rng.random(n), levels, values)
