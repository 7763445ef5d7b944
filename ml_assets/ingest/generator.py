"""Seeded synthetic CFPB complaint exports (official CSV format), fitted to a real-data profile."""

from __future__ import annotations

import csv
import functools
import gzip
import io
import math
import multiprocessing
import os
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import IO, Any

import numpy as np

from ml_assets.ingest.cfpb_vocabulary import OFFICIAL_HEADER, PRODUCT_VOCABULARY, STATE_CODES
from ml_assets.ingest.landing import day_folder, write_atomically
from ml_assets.ingest.profile import load_profile
from ml_assets.privacy import (
    ACCOUNT,
    ADDRESS,
    CARD,
    EMAIL,
    PHONE,
    ROUTING,
    SSN,
    URL,
    aba_valid,
    luhn_valid,
)

LANDING_FILE_NAME = "synthetic.csv"
# Complaint ids: one block of IDS_PER_DAY numbers per day since ID_EPOCH, so days never collide.
ID_EPOCH = date(2000, 1, 1)
IDS_PER_DAY = 100_000
ID_OFFSET = 1_000_000
NARRATIVE_SHARE = 0.4
UNMASKED_PII_SHARE = 0.04
MAX_NARRATIVE_WORDS = 400  # the real tail goes to ~800 words; longer adds size, not signal
MIN_NARRATIVE_WORDS = 12
# Weekday volume, Monday first: the CFPB receives fewer complaints at weekends.
WEEKDAY_FACTORS: tuple[float, ...] = (1.06, 1.08, 1.05, 1.02, 0.98, 0.92, 0.9)
# Yearly growth of the complaint volume (log scale): the CFPB received about 200 complaints a day
# in 2012 and thousands a day in the 2020s, about 30 % more each year.
VOLUME_GROWTH_PER_YEAR = 0.30
# The dispute field of complaints received after the CFPB stopped collecting disputes.
UNLABELLED = "N/A"
# A complaint published before its outcome is known: the field is empty until a republication.
PENDING_LABEL = ""
LABEL_DELAY_STREAM = 1  # the seed stream of label delays, apart from the days' content

DEFECT_UNKNOWN_STATE = "unknown_state"
DEFECT_MALFORMED_DATE = "malformed_date"
DEFECT_MISSING_PRODUCT = "missing_product"
DEFECT_DUPLICATE_ID = "duplicate_id"
DEFECT_TRUNCATED = "truncated"
# Kinds that may hit any row; truncation only ever hits the file's last record.
ROW_DEFECT_KINDS: tuple[str, ...] = (
    DEFECT_UNKNOWN_STATE,
    DEFECT_MALFORMED_DATE,
    DEFECT_MISSING_PRODUCT,
    DEFECT_DUPLICATE_ID,
)
DEFECT_KINDS: tuple[str, ...] = (*ROW_DEFECT_KINDS, DEFECT_TRUNCATED)
UNKNOWN_STATES: tuple[str, ...] = ("ZZ", "XX", "QQ")
MALFORMED_DATES: tuple[str, ...] = ("{year}-13-45", "13/45/{year}", "yesterday")

# Phrases whose presence shifts the odds of a dispute: the text model's learnable signal.
DISPUTE_PHRASES: tuple[str, ...] = (
    "This still has not been resolved.",
    "No one responded to my letters.",
    "I was ignored every time I called.",
    "This is unacceptable.",
    "Their answer did not address my problem at all.",
    "Nobody has fixed this and I am still waiting.",
    "I do not accept their explanation.",
)
RESOLVED_PHRASES: tuple[str, ...] = (
    "They resolved it quickly.",
    "Thank you for your help.",
    "The representative was helpful and corrected the error.",
    "I appreciate how fast they responded.",
    "The problem was fixed after my call.",
)
# Mean number of phrases per narrative, by (disputed, phrase kind): signal, not a giveaway.
PHRASE_RATES: dict[tuple[bool, str], float] = {
    (True, "dispute"): 1.0,
    (True, "resolved"): 0.2,
    (False, "dispute"): 0.3,
    (False, "resolved"): 0.8,
}


@dataclass(frozen=True)
class NarrativeSignal:
    """How many complaints carry a narrative, and how strongly its wording tracks the dispute.

    `strength` scales the log-ratio of each phrase kind's rate between disputed and undisputed
    complaints: 1 is the default world, 0 wording without signal, 2 a world in which a model
    learns the wording from a few thousand rows (the tests' fixtures).
    """

    share: float = NARRATIVE_SHARE
    strength: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise ValueError(f"narrative share must be in [0, 1], got {self.share}")
        if self.strength < 0:
            raise ValueError(f"narrative signal strength must be >= 0, got {self.strength}")

    def phrase_rate(self, disputed: bool, kind: str) -> float:
        """Mean phrases of a kind per narrative; the default strength keeps PHRASE_RATES exactly."""
        own, other = PHRASE_RATES[(disputed, kind)], PHRASE_RATES[(not disputed, kind)]
        return own * (own / other) ** ((self.strength - 1.0) / 2.0)


DEFAULT_SIGNAL = NarrativeSignal()

# Words of a changed narrative wording: none of them is in the profile's vocabularies, so a model
# trained before the change has never seen them.
DRIFT_WORDS: tuple[str, ...] = (
    "app", "wallet", "zelle", "splitpay", "bnpl", "chatbot", "autopay", "crypto", "token",
    "paylater", "subscription", "microloan", "fintech", "biometric", "geofence", "cashapp",
    "overdraft-protection", "instant-transfer", "pay-in-four", "checkout",
)  # fmt: skip


@dataclass(frozen=True)
class Drift:
    """What complaints look like from a day on, in the drift scenario: a product-mix shift, a new
    issue that is disputed far more often (a model trained before cannot know it), new wording."""

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


_OPENINGS: dict[str, tuple[str, ...]] = {
    "mortgage": (
        "I have a mortgage with {company} and on {date} they sent me a letter about my loan.",
        "My home loan was transferred to {company} on {date} and problems started right away.",
        "I applied for help with my mortgage in {month} and sent every document they asked for.",
    ),
    "debt": (
        "A collection agency called XXXX keeps contacting me about a debt of {amount}.",
        "On {date} I received a letter from {company} saying I owe {amount}.",
        "I am being contacted about a debt that I do not recognize.",
    ),
    "report": (
        "I found an account on my credit report that is not mine.",
        "On {date} I disputed incorrect information on my credit report with {company}.",
        "My credit report shows a late payment from XXXX that never happened.",
    ),
    "card": (
        "I have a card account with {company} ending in XXXX.",
        "On {date} I noticed a charge of {amount} on my card statement.",
        "I was charged a fee of {amount} on my card without any notice.",
    ),
    "bank": (
        "I have a checking account with {company} and on {date} my deposit of {amount} was held.",
        "My account at {company} was charged {amount} in overdraft fees.",
        "On {date} I went to the branch to ask about a withdrawal I did not make.",
    ),
    "student": (
        "My student loans are serviced by {company} and I have been paying since XXXX.",
        "I applied for an income driven repayment plan on {date}.",
        "My student loan payment went up to {amount} without explanation.",
    ),
    "loan": (
        "I took out a loan with {company} on {date} for {amount}.",
        "My loan payment of {amount} was taken from my account twice.",
        "I financed a purchase through {company} and the terms changed after signing.",
    ),
    "transfer": (
        "On {date} I sent {amount} through {company} and it never arrived.",
        "I made a transfer of {amount} to XXXX and the money was not delivered.",
        "My transfer with {company} was cancelled but I was not refunded {amount}.",
    ),
    "other": (
        "I used a service from {company} on {date} and was charged {amount}.",
        "I have a complaint about {company} regarding a payment of {amount}.",
    ),
}
# Product name fragments -> opening family, most specific first.
_FAMILIES: tuple[tuple[str, str], ...] = (
    ("mortgage", "mortgage"),
    ("debt collection", "debt"),
    ("credit report", "report"),
    ("student", "student"),
    ("credit card", "card"),
    ("prepaid", "card"),
    ("bank account", "bank"),
    ("checking", "bank"),
    ("money transfer", "transfer"),
    ("virtual currency", "transfer"),
    ("loan", "loan"),
)
_ISSUE_SENTENCES: tuple[str, ...] = (
    "My complaint is about {issue}.",
    "The problem is {issue}.",
    "This is about {issue}.",
)
_BODY_SENTENCES: tuple[str, ...] = (
    "I called about the {0} on {date} and again about the {1}.",
    "The {0} was never explained to me and the {1} kept changing.",
    "I sent copies of the {0} and the {1} to XXXX on {date}.",
    "They told me the {0} would be handled by the {1} department.",
    "My statement shows {amount} for the {0} that I do not recognize.",
    "I asked for the {0} in writing and they mentioned the {1}.",
    "I spoke to XXXX XXXX about the {0}, the {1} and the {2}.",
    "Since {date} I have had to deal with the {0} and the {1}.",
    "The {0} affected my {1} and my {2}.",
    "According to their letter the {0} was {amount}.",
)
# Sentences with personal data the CFPB would have masked: each {} takes a value of the kind named.
_PII_SENTENCES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("You can reach me at {} or {}.", (EMAIL, PHONE)),
    ("Please contact me at {}.", (PHONE,)),
    ("My email is {}.", (EMAIL,)),
    ("My social security number is {} and they still could not find my file.", (SSN,)),
    ("They charged my card {} twice.", (CARD,)),
    ("The card number {} was used without my permission.", (CARD,)),
    ("I sent the payment to routing number {} and account number {}.", (ROUTING, ACCOUNT)),
    ("The check shows {} at the bottom.", (ROUTING,)),
    ("My account number is {}.", (ACCOUNT,)),
    ("They keep calling about loan number {} every day.", (ACCOUNT,)),
    ("Their website {} says otherwise.", (URL,)),
    ("I filed it at {} as they told me.", (URL,)),
    ("I live at {} and never received the letter.", (ADDRESS,)),
    ("Please send the refund to {}.", (ADDRESS,)),
)
# The draws (integer ranges) the e-mail and phone sentence of earlier versions made: the PII
# branch still makes exactly these, so that the rest of a day's stream is unchanged, and seeds the
# PII's own generator with them.
_PII_STREAM_DRAWS: tuple[tuple[int, int], ...] = (
    (0, 6),
    (1, 99),
    (100, 1000),
    (1000, 10000),
    (0, 3),
)
_FAKE_NAMES: tuple[str, ...] = (
    "jane.doe",
    "john.smith",
    "maria.garcia",
    "sam.lee",
    "alex.jones",
    "pat.taylor",
)
_STREETS: tuple[str, ...] = (
    "Elm", "Oak", "Maple", "Main", "Cedar", "Pine", "Lake View", "North Washington", "Old Mill",
    "Martin Luther King Jr",
)  # fmt: skip
_STREET_SUFFIXES: tuple[str, ...] = (
    "Street", "St", "Avenue", "Ave", "Road", "Rd", "Boulevard", "Blvd", "Lane", "Ln", "Drive",
    "Dr", "Court", "Ct", "Way", "Place", "Pl",
)  # fmt: skip
# (prefix, length) of card numbers: Visa 16 and 13, Mastercard, Amex, Discover.
_CARD_LAYOUTS: tuple[tuple[str, int], ...] = (
    ("4", 16), ("4", 13), ("51", 16), ("55", 16), ("34", 15), ("37", 15), ("6011", 16), ("6011", 19),
)  # fmt: skip
_MONTHS: tuple[str, ...] = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_GENERIC_COMPANIES: tuple[str, ...] = (
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
        rest = [(v, 1.0 / len(_GENERIC_COMPANIES)) for v in _GENERIC_COMPANIES]
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


def compile_model(profile: dict[str, Any]) -> Model:
    """Samplers and dispute logits compiled from a profile (see ml_assets.ingest.profile)."""
    products = _required(
        categorical(profile["products"], lambda v: v in PRODUCT_VOCABULARY), "products"
    )
    zip3 = {s: d for s, pairs in profile["zip3_by_state"].items() if (d := categorical(pairs))}
    states = _required(
        categorical(profile["states"], lambda v: v in STATE_CODES and v in zip3), "states"
    )
    overall_companies = categorical(profile["companies"]["overall"], lambda v: v is not None)
    fallback = overall_companies or _required(
        categorical([(c, 1.0) for c in _GENERIC_COMPANIES]), "companies"
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


def format_date(value: date) -> str:
    """M/D/YYYY without leading zeros, as in the official CFPB export."""
    return f"{value.month}/{value.day}/{value.year}"


def complaint_id(day: date, index: int) -> str:
    """A numeric complaint id unique across days (one block of IDS_PER_DAY per day)."""
    return str(ID_OFFSET + (day.toordinal() - ID_EPOCH.toordinal()) * IDS_PER_DAY + index)


def rows_for_day(day: date, rows_per_day: int) -> int:
    """A day's row count: `rows_per_day` with a deterministic weekday effect, never 0 if asked."""
    if rows_per_day <= 0:
        return 0
    return max(1, round(rows_per_day * WEEKDAY_FACTORS[day.weekday()]))


def day_rng(seed: int, day: date) -> np.random.Generator:
    """The generator of one day's content, independent of which other days are generated."""
    return np.random.default_rng([seed, day.toordinal()])


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


def dispute_labels(
    rng: np.random.Generator,
    products: Sequence[str | None],
    responses: Sequence[str | None],
    model: Model,
    extra_logits: np.ndarray | None = None,
) -> np.ndarray:
    """Dispute outcomes drawn from the calibrated product x company-response logit model (plus
    per-row `extra_logits`: the drift scenario's new issue)."""
    logits = model.base_logit + np.array(
        [
            model.product_logits.get(str(p), 0.0) + model.response_logits.get(str(r), 0.0)
            for p, r in zip(products, responses, strict=True)
        ]
    )
    if extra_logits is not None:
        logits = logits + extra_logits
    return rng.random(len(products)) < 1 / (1 + np.exp(-logits))


def family(product: str) -> str:
    """The opening-template family of a product name."""
    lowered = product.lower()
    for fragment, name in _FAMILIES:
        if fragment in lowered:
            return name
    return "other"


def fill(rng: np.random.Generator, template: str, words: Sequence[str], year: int) -> str:
    """A template with its masked-PII slots (dates, amounts, company) and word slots filled."""
    return template.format(
        *words,
        date="XX/XX/XXXX" if rng.random() < 0.6 else f"XX/XX/{year}",
        amount="$XXXX" if rng.random() < 0.5 else f"${rng.integers(10, 999)}.00",
        company="XXXX",
        month=_MONTHS[int(rng.integers(0, 12))],
    )


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(0, len(options)))]


def _digit_string(rng: np.random.Generator, n: int) -> str:
    return "".join(str(d) for d in rng.integers(0, 10, size=n))


def _fake_email(rng: np.random.Generator) -> str:
    domain = _pick(rng, ("example.com", "example.org", "mail.example.net"))
    return f"{_pick(rng, _FAKE_NAMES)}{int(rng.integers(1, 99))}@{domain}"


def _fake_phone(rng: np.random.Generator) -> str:
    area, exchange = (int(n) for n in rng.integers(200, 1000, size=2))
    line = f"{int(rng.integers(0, 10000)):04d}"
    layout = _pick(
        rng, ("{}-{}-{}", "({}) {}-{}", "{}.{}.{}", "+1 {} {} {}", "{}{}{}", "1-{}-{}-{}")
    )
    return layout.format(area, exchange, line)


def _fake_ssn(rng: np.random.Generator) -> str:
    area = int(rng.integers(1, 900))
    area = 667 if area == 666 else area
    separator = _pick(rng, ("-", " "))
    group, serial = int(rng.integers(1, 100)), int(rng.integers(1, 10000))
    return f"{area:03d}{separator}{group:02d}{separator}{serial:04d}"


def _fake_card(rng: np.random.Generator) -> str:
    """A Luhn-valid card number (Visa, Mastercard, Amex or Discover), grouped or not."""
    prefix, length = _CARD_LAYOUTS[int(rng.integers(0, len(_CARD_LAYOUTS)))]
    body = prefix + _digit_string(rng, length - len(prefix) - 1)
    number = next(body + d for d in "0123456789" if luhn_valid(body + d))
    separator = _pick(rng, ("", " ", "-"))
    if length == 15:  # Amex prints 4-6-5
        return separator.join((number[:4], number[4:10], number[10:]))
    return separator.join(number[i : i + 4] for i in range(0, length, 4))


def _fake_routing(rng: np.random.Generator) -> str:
    """A routing number with a valid ABA prefix (01-12 or 21-32) and checksum."""
    district = int(rng.integers(1, 13)) + 20 * int(rng.integers(0, 2))
    body = f"{district:02d}{_digit_string(rng, 6)}"
    return next(body + d for d in "0123456789" if aba_valid(body + d))


def _fake_account(rng: np.random.Generator) -> str:
    return str(int(rng.integers(1, 10))) + _digit_string(rng, int(rng.integers(7, 17)))


def _fake_url(rng: np.random.Generator) -> str:
    site = _pick(rng, ("example-bank", "sample-lending", "placeholder-pay", "demo-servicer"))
    layout = _pick(
        rng,
        (
            "https://www.{}.com/account/{}",
            "http://{}.example.org/login?id={}",
            "www.{}.com",
            "https://{}.com/help/{}",
        ),
    )
    return layout.format(site, int(rng.integers(100, 100000)))


def _fake_address(rng: np.random.Generator) -> str:
    if rng.random() < 0.2:
        return f"{_pick(rng, ('PO Box', 'P.O. Box'))} {int(rng.integers(1, 10000))}"
    street = f"{int(rng.integers(1, 20000))} {_pick(rng, _STREETS)} {_pick(rng, _STREET_SUFFIXES)}"
    unit = _pick(
        rng, ("", "", f", Apt {int(rng.integers(1, 40))}B", f" Suite {int(rng.integers(100, 999))}")
    )
    return street + unit


_FAKE_PII: dict[str, Callable[[np.random.Generator], str]] = {
    EMAIL: _fake_email,
    PHONE: _fake_phone,
    SSN: _fake_ssn,
    CARD: _fake_card,
    ROUTING: _fake_routing,
    ACCOUNT: _fake_account,
    URL: _fake_url,
    ADDRESS: _fake_address,
}


def unmasked_pii(rng: np.random.Generator) -> tuple[str, tuple[tuple[str, str], ...]]:
    """A sentence with personal data the CFPB would have masked, and the (kind, value) pairs of
    the data it holds: the ground truth of the PII scrubber."""
    own = np.random.default_rng([int(rng.integers(low, high)) for low, high in _PII_STREAM_DRAWS])
    template, kinds = _PII_SENTENCES[int(own.integers(0, len(_PII_SENTENCES)))]
    values = tuple((kind, _FAKE_PII[kind](own)) for kind in kinds)
    return template.format(*(value for _, value in values)), values


def tone_phrases(
    rng: np.random.Generator, disputed: bool, signal: NarrativeSignal = DEFAULT_SIGNAL
) -> list[str]:
    """Dispute and resolution phrases for a narrative, more of the former when disputed."""
    phrases: list[str] = []
    for kind, pool in (("dispute", DISPUTE_PHRASES), ("resolved", RESOLVED_PHRASES)):
        count = min(int(rng.poisson(signal.phrase_rate(disputed, kind))), 3)
        phrases += [pool[i] for i in rng.choice(len(pool), size=count, replace=False)]
    return phrases


def narrative(
    rng: np.random.Generator,
    product: str,
    issue: str | None,
    disputed: bool,
    model: Model,
    year: int,
    signal: NarrativeSignal = DEFAULT_SIGNAL,
) -> str:
    """A complaint narrative from templates, the product's vocabulary and tone phrases."""
    target = float(sample_quantiles(rng, model.lengths.get(product, model.lengths[""]), 1)[0])
    target = int(min(max(target, MIN_NARRATIVE_WORDS), MAX_NARRATIVE_WORDS))
    openings = _OPENINGS[family(product)]
    sentences = [fill(rng, openings[int(rng.integers(0, len(openings)))], (), year)]
    if issue:
        template = _ISSUE_SENTENCES[int(rng.integers(0, len(_ISSUE_SENTENCES)))]
        sentences.append(template.format(issue=issue.lower()))
    vocab = model.vocabulary.get(product, model.vocabulary[""])
    count = sum(len(s.split()) for s in sentences)
    body_count = max(1, (target - count) // 12)
    picks = rng.integers(0, len(_BODY_SENTENCES), size=body_count)
    words = vocab.draw(rng, body_count * 3)
    for k, pick in enumerate(picks):
        sentence = fill(
            rng, _BODY_SENTENCES[int(pick)], [str(w) for w in words[3 * k : 3 * k + 3]], year
        )
        sentences.append(sentence)
    for phrase in tone_phrases(rng, disputed, signal):
        sentences.insert(int(rng.integers(1, len(sentences) + 1)), phrase)
    if rng.random() < UNMASKED_PII_SHARE:
        sentences.append(unmasked_pii(rng)[0])
    return " ".join(sentences)


def sample_records(
    rng: np.random.Generator,
    day: date,
    rows: int,
    model: Model,
    signal: NarrativeSignal = DEFAULT_SIGNAL,
    drift: Drift | None = None,
) -> list[dict[str, str]]:
    """`rows` valid complaints received on `day`, keyed by official header name (drifted from
    `drift`'s start on)."""
    drifted = drift is not None and drift.applies(day)
    if drifted:
        model = drift.shifted(model)
    products = model.products.draw(rng, rows)
    issues = draw_conditional(rng, products, model.issues, "Other")
    states = model.states.draw(rng, rows)
    responses = model.responses.draw(rng, rows)
    delays = np.rint(sample_quantiles(rng, model.delay, rows)).astype(int)
    extra_logits = None
    if drifted and drift.issue is not None:
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
        "Company": draw_conditional(rng, products, model.companies, _GENERIC_COMPANIES[0]),
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


def apply_defects(
    rng: np.random.Generator, records: list[dict[str, str]], defect_rate: float, day: date
) -> bool:
    """Corrupt about `defect_rate` of the rows in place; True when the last record is to be cut."""
    rows = len(records)
    if defect_rate <= 0 or rows == 0:
        return False
    expected = defect_rate * rows
    share = len(ROW_DEFECT_KINDS) / len(DEFECT_KINDS)
    # Row 0 is left alone so that a duplicated id always has an earlier row to copy.
    count = min(int(rng.binomial(rows - 1, min(defect_rate * share, 1.0))), rows - 1)
    targets = np.sort(rng.choice(np.arange(1, rows), size=count, replace=False)) if count else []
    kinds = rng.integers(0, len(ROW_DEFECT_KINDS), size=count)
    for row, kind in zip(targets, kinds, strict=True):
        corrupt(rng, records, int(row), ROW_DEFECT_KINDS[int(kind)], day)
    return bool(rng.random() < min(1.0, expected / len(DEFECT_KINDS)))


def corrupt(
    rng: np.random.Generator, records: list[dict[str, str]], row: int, kind: str, day: date
) -> None:
    """Apply one defect kind to records[row] in place."""
    record = records[row]
    if kind == DEFECT_UNKNOWN_STATE:
        record["State"] = UNKNOWN_STATES[int(rng.integers(0, len(UNKNOWN_STATES)))]
    elif kind == DEFECT_MALFORMED_DATE:
        template = MALFORMED_DATES[int(rng.integers(0, len(MALFORMED_DATES)))]
        record["Date received"] = template.format(year=day.year)
    elif kind == DEFECT_MISSING_PRODUCT:
        record["Product"] = ""
    elif kind == DEFECT_DUPLICATE_ID:
        record["Complaint ID"] = records[int(rng.integers(0, row))]["Complaint ID"]
    else:
        raise ValueError(f"unknown defect kind {kind!r}")


def csv_line(fields: Sequence[str]) -> str:
    """One CSV line (QUOTE_MINIMAL, '\\n' line end)."""
    buffer = io.StringIO()
    csv.writer(buffer, quoting=csv.QUOTE_MINIMAL, lineterminator="\n").writerow(fields)
    return buffer.getvalue()


def truncated(rng: np.random.Generator, line: str) -> str:
    """A record cut mid-way, as in an interrupted download: no line end, its last fields lost."""
    # Cutting before the last comma (the separator of the numeric complaint id) drops a field.
    last_comma = line.rstrip("\n").rfind(",")
    start = max(1, min(len(line) // 5, last_comma - 1))
    return line[: int(rng.integers(start, max(start + 1, last_comma)))]


def _check_day(day: date, rows: int, defect_rate: float) -> None:
    if not 0 <= rows < IDS_PER_DAY:
        raise ValueError(f"rows must be in [0, {IDS_PER_DAY}), got {rows} on {day.isoformat()}")
    if not 0.0 <= defect_rate <= 1.0:
        raise ValueError(f"defect_rate must be in [0, 1], got {defect_rate}")
    if day < ID_EPOCH:
        raise ValueError(f"day must be on or after {ID_EPOCH.isoformat()}, got {day.isoformat()}")


def day_lines(
    day: date,
    rows: int,
    seed: int,
    defect_rate: float,
    model: Model,
    signal: NarrativeSignal,
    label: bool = True,
    last_of_file: bool = True,
    unlabelled: str = UNLABELLED,
    drift: Drift | None = None,
) -> list[str]:
    """One day's CSV records (no header).

    Without `label` the dispute field reads `unlabelled`: "N/A", as in the real database after
    April 2017, or PENDING_LABEL before a day's labels are published. A truncation defect only
    cuts the day's last record when it is the last of the file: a cut mid-file would merge two
    records.
    """
    _check_day(day, rows, defect_rate)
    rng = day_rng(seed, day)
    records = sample_records(rng, day, rows, model, signal, drift)
    cut_last = apply_defects(rng, records, defect_rate, day)
    if not label:
        for record in records:
            record["Consumer disputed?"] = unlabelled
    lines = [csv_line([r[name] for name in OFFICIAL_HEADER]) for r in records]
    if cut_last and lines and last_of_file:
        lines[-1] = truncated(rng, lines[-1])
    return lines


def generate_day(
    day: date,
    rows: int,
    seed: int,
    defect_rate: float = 0.0,
    profile: dict | None = None,
    signal: NarrativeSignal = DEFAULT_SIGNAL,
    labelled: bool = True,
    drift: Drift | None = None,
) -> str:
    """The CSV text of one day's landing file in the official CFPB export format (without
    `labelled`, as first published: every dispute field still empty)."""
    _check_day(day, rows, defect_rate)
    model = compile_model(profile if profile is not None else _default_profile())
    return csv_line(OFFICIAL_HEADER) + "".join(
        day_lines(
            day,
            rows,
            seed,
            defect_rate,
            model,
            signal,
            labelled,
            unlabelled=PENDING_LABEL,
            drift=drift,
        )
    )


@functools.cache
def _default_profile() -> dict:
    """The packaged profile, read once per process."""
    return load_profile()


def generate_landing(
    landing_root: Path,
    start: date,
    days: int,
    rows_per_day: int,
    seed: int,
    defect_rate: float = 0.0,
    profile: dict | None = None,
    signal: NarrativeSignal = DEFAULT_SIGNAL,
    label_delay_days: tuple[int, int] | None = None,
    as_of: date | None = None,
    drift: Drift | None = None,
) -> list[Path]:
    """Write `days` daily synthetic files from `start` under landing_root; returns their paths.

    With `label_delay_days`, a day's dispute labels are published that many days after it (drawn
    per day): a day whose labels are not out by `as_of` is written without them. Writing the
    same days again later lands the days whose labels came out since as changed files.
    """
    if label_delay_days is not None and as_of is None:
        raise ValueError("label_delay_days needs as_of, the day the landing happens")
    chosen = profile if profile is not None else _default_profile()
    paths: list[Path] = []
    for offset in range(days):
        day = start + timedelta(days=offset)
        labelled = labels_published(day, as_of or day, seed, label_delay_days)
        text = generate_day(
            day,
            rows_for_day(day, rows_per_day),
            seed,
            defect_rate,
            chosen,
            signal,
            labelled,
            drift,
        )
        path = day_folder(landing_root, day) / LANDING_FILE_NAME
        write_atomically(path, text.encode("utf-8"))
        paths.append(path)
    return paths


def rows_by_day(start: date, end: date, rows: int) -> list[tuple[date, int]]:
    """`rows` complaints spread over [start, end], growing over the years, fewer at weekends.

    The counts add up to exactly `rows` (cumulative rounding of the days' weights).
    """
    days = (end - start).days + 1
    if days < 1:
        raise ValueError(f"the export's end {end} is before its start {start}")
    offsets = np.arange(days)
    weekdays = (start.weekday() + offsets) % 7
    weights = (
        np.exp(VOLUME_GROWTH_PER_YEAR * offsets / 365.25) * np.array(WEEKDAY_FACTORS)[weekdays]
    )
    cumulative = np.floor(np.cumsum(weights) / weights.sum() * rows + 1e-9).astype(np.int64)
    counts = np.diff(cumulative, prepend=0)
    return [(start + timedelta(days=int(i)), int(n)) for i, n in zip(offsets, counts, strict=True)]


@dataclass(frozen=True)
class ExportSummary:
    """What `generate_export` wrote."""

    path: Path
    rows: int
    days: int
    first_day: date
    last_day: date
    busiest_day_rows: int
    labelled_until: date | None


@contextmanager
def _export_text(path: Path, name: str) -> Iterator[IO[str]]:
    """A text stream into `path` for the export `name`: plain CSV, `.zip` (one CSV inside, as the
    CFPB ships it) or `.gz`, by the suffix of `name`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if name.endswith(".zip"):
        member = name.removesuffix(".zip")
        member = member if member.endswith(".csv") else f"{member}.csv"
        with (
            zipfile.ZipFile(
                path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1
            ) as archive,
            archive.open(member, "w", force_zip64=True) as raw,
            io.TextIOWrapper(raw, encoding="utf-8", newline="") as text,
        ):
            yield text
    elif name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8", newline="", compresslevel=1) as text:
            yield text
    else:
        with path.open("w", encoding="utf-8", newline="") as text:
            yield text


# State of an export's worker processes: the compiled model and options (set once per worker).
_WORKER: dict[str, Any] = {}


def _init_export_worker(options: dict[str, Any]) -> None:
    _WORKER.update(options, model=compile_model(options["profile"]))


def _export_days(plan: list[tuple[date, int, bool, bool]]) -> str:
    """The CSV text of consecutive days of an export (worker side)."""
    w = _WORKER
    return "".join(
        "".join(
            day_lines(day, n, w["seed"], w["defect_rate"], w["model"], w["signal"], label, last)
        )
        for day, n, label, last in plan
    )


def generate_export(
    path: Path,
    rows: int,
    start: date,
    end: date,
    seed: int,
    defect_rate: float = 0.0,
    profile: dict | None = None,
    signal: NarrativeSignal = DEFAULT_SIGNAL,
    labels_until: date | None = None,
    workers: int = 1,
) -> ExportSummary:
    """One file in the official export format with `rows` complaints received from start to end.

    Streams a few days at a time, so memory does not grow with `rows`; `workers` processes
    generate days in parallel (each day has its own seed, so the bytes do not depend on them).
    Each day's records are those `generate_day` writes for that day's row count, except that only
    the export's last record can be truncated. Days after `labels_until` carry no dispute label
    ("N/A").
    """
    chosen = profile if profile is not None else _default_profile()
    plan = rows_by_day(start, end, rows)
    busiest = max(n for _, n in plan)
    if busiest >= IDS_PER_DAY:
        raise ValueError(
            f"{rows} rows over {start}..{end} put {busiest} on one day, more than the generator's "
            f"{IDS_PER_DAY - 1}: ask for fewer rows or a longer period"
        )
    tasks = [
        (day, n, labels_until is None or day <= labels_until, i == len(plan) - 1)
        for i, (day, n) in enumerate(plan)
    ]
    # Chunks of about 20,000 rows: few enough tasks, little text held per task.
    chunks: list[list[tuple[date, int, bool, bool]]] = [[]]
    chunk_rows = 0
    for task in tasks:
        if chunk_rows >= 20_000:
            chunks.append([])
            chunk_rows = 0
        chunks[-1].append(task)
        chunk_rows += task[1]
    options = {"profile": chosen, "seed": seed, "defect_rate": defect_rate, "signal": signal}
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with _export_text(tmp, path.name) as out:
            out.write(csv_line(OFFICIAL_HEADER))
            if workers <= 1:
                _init_export_worker(options)
                texts: Iterable[str] = map(_export_days, chunks)
                out.writelines(texts)
            else:
                # Spawned, not forked: the caller may have threads (a Dagster step, a test run).
                with ProcessPoolExecutor(
                    workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_init_export_worker,
                    initargs=(options,),
                ) as pool:
                    out.writelines(pool.map(_export_days, chunks))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return ExportSummary(path, rows, len(plan), start, end, busiest, labels_until)
