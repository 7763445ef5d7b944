"""The synthetic world's profile: figures of the real CFPB extracts (no rows), fitted and loaded."""

from __future__ import annotations

import functools
import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml_assets.ingest.cfpb_format import parse_cfpb_date, read_complaints_csv
from ml_assets.ingest.cfpb_vocabulary import FALSE_TOKENS, TRUE_TOKENS

PROFILE_VERSION = 1
# Package data, fitted on the real CFPB extracts (read the same way from a checkout or a wheel).
PACKAGED_PROFILE = files("ml_assets.synthetic") / "cfpb_profile.json"
NARRATIVE_PRODUCT_COLUMN = "Product"
NARRATIVE_TEXT_COLUMN = "Consumer complaint narrative"

# Pseudo-count pulling a category's dispute rate toward the overall rate (few rows: noisy rate).
DISPUTE_SMOOTHING = 30.0
TOP_COMPANIES_PER_PRODUCT = 15
TOP_COMPANIES_OVERALL = 40
TOP_SUB_ISSUES = 10
VOCABULARY_SIZE = 60
# A word must appear in this many narratives of a product: rarer words could be personal details.
MIN_WORD_DOCUMENTS = 3
QUANTILE_LEVELS: tuple[float, ...] = tuple(round(i / 20, 2) for i in range(21))
FLOAT_DIGITS = 5

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
_MASKED_ZIP = re.compile(r"^\d{3}XX$")
_FULL_ZIP = re.compile(r"^\d{5}$")
_STOPWORD_TEXT = """
    a about above after again against all also am an and any are aren't as at be because been
    before being below between both but by can can't cannot could couldn't did didn't do does
    doesn't doing don't down during each even ever every few for from further get got had hadn't
    has hasn't have haven't having he he'd he'll he's her here here's hers herself him himself his
    how how's however i i'd i'll i'm i've if in into is isn't it it's its itself just let's like
    made make many may me more most much must mustn't my myself no nor not now of off on once one
    only or other ought our ours ourselves out over own said same say says she she'd she'll she's
    should shouldn't since so some still such than that that's the their theirs them themselves
    then there there's these they they'd they'll they're they've this those though through thus to
    too under until up upon us very was wasn't we we'd we'll we're we've well were weren't what
    what's when when's where where's whether which while who who's whom why why's will with won't
    would wouldn't yet you you'd you'll you're you've your yours yourself yourselves also back
    would within without via per etc two three four five six seven eight nine ten first second
"""
_STOPWORDS: frozenset[str] = frozenset(_STOPWORD_TEXT.split())

Distribution = list[list[Any]]
# A fitted profile as JSON holds it: frequencies, rates and quantiles by name.
Profile = dict[str, Any]


def distribution(values: Iterable[object], top: int | None = None) -> Distribution:
    """Shares of each value as [value, share] pairs, most frequent first; missing values as null."""
    counts = Counter(None if _is_missing(v) else str(v) for v in values)
    total = sum(counts.values())
    if total == 0:
        return []
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], "" if kv[0] is None else kv[0]))
    return [[value, count / total] for value, count in ranked[:top]]


def _is_missing(value: object) -> bool:
    """Whether a cell is empty (None, NaN, pd.NA or blank text)."""
    if value is None or value is pd.NA:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def grouped_distribution(
    frame: pd.DataFrame, by: str, column: str, top: int | None = None
) -> dict[str, Distribution]:
    """A distribution of `column` for each non-missing value of `by`."""
    out: dict[str, Distribution] = {}
    for key, group in frame.groupby(by, dropna=True, sort=True):
        out[str(key)] = distribution(group[column].tolist(), top)
    return out


def to_flag(value: object) -> bool | None:
    """A Yes/No-style cell as a bool, or None when missing or unrecognised."""
    if _is_missing(value):
        return None
    token = str(value).strip().lower()
    if token in TRUE_TOKENS:
        return True
    if token in FALSE_TOKENS:
        return False
    return None


def combine_complaints(complaints: list[pd.DataFrame]) -> pd.DataFrame:
    """Canonical frames concatenated, keeping only rows that parsed cleanly."""
    frames = [f for f in complaints if len(f)]
    if not frames:
        raise ValueError("fit_profile needs at least one non-empty complaints frame")
    frame = pd.concat(frames, ignore_index=True).astype(object)
    # pandas fills object columns with the None given as `other`; pandas-stubs leave None out.
    frame = frame.where(frame.notna(), None)  # pyright: ignore[reportArgumentType]
    if "parse_error" in frame.columns:
        frame = frame[frame["parse_error"].isna()]
    return frame.reset_index(drop=True)


def zip_profile(frame: pd.DataFrame) -> tuple[dict[str, Distribution], dict[str, float]]:
    """ZIP3 prefixes per state, and the shares of masked, fully masked and missing ZIP codes."""
    zips = frame["zip_code"].map(lambda z: None if _is_missing(z) else str(z).strip())
    full = zips.map(lambda z: bool(z and _FULL_ZIP.match(z)))
    masked = zips.map(lambda z: bool(z and _MASKED_ZIP.match(z)))
    usable = frame.assign(zip3=zips.str[:3])[(full | masked) & frame["state"].notna()]
    by_state = grouped_distribution(usable, "state", "zip3")
    n = max(len(zips), 1)
    shares = {
        "masked_3digit_share": float(masked.sum()) / n,
        "fully_masked_share": float((zips == "XXXXX").sum()) / n,
        "missing_share": float(zips.isna().sum()) / n,
        "malformed_share": float((zips.notna() & ~full & ~masked & (zips != "XXXXX")).sum()) / n,
    }
    return by_state, shares


def company_profile(frame: pd.DataFrame) -> dict[str, Any]:
    """Top companies per product with the share left to other companies, and overall."""
    by_product: dict[str, Any] = {}
    for product, group in frame.groupby("product", sort=True):
        top = distribution(group["company"].dropna().tolist(), TOP_COMPANIES_PER_PRODUCT)
        by_product[str(product)] = {"top": top, "other_share": 1.0 - sum(s for _, s in top)}
    overall = distribution(frame["company"].dropna().tolist(), TOP_COMPANIES_OVERALL)
    return {"by_product": by_product, "overall": overall}


def delay_profile(frame: pd.DataFrame) -> dict[str, Any]:
    """Quantiles of the days between date received and date sent to company."""
    received = frame["date_received"].map(parse_cfpb_date)
    sent = frame["date_sent_to_company"].map(parse_cfpb_date)
    days = np.array([(s - r).days for r, s in zip(received, sent, strict=True) if r and s], float)
    if days.size == 0:
        return {"quantiles": [[q, 0.0] for q in QUANTILE_LEVELS], "negative_share": 0.0, "n": 0}
    clipped = np.clip(days, 0, None)
    # The top 1 % are outliers (months of delay) that would dominate a generated day's spread.
    levels = [*QUANTILE_LEVELS[:-1], 0.99]
    values = np.quantile(clipped, levels)
    return {
        "quantiles": [[q, float(v)] for q, v in zip(QUANTILE_LEVELS, values, strict=True)],
        "negative_share": float((days < 0).mean()),
        "mean": float(clipped.mean()),
        "n": int(days.size),
    }


def rate_table(labels: pd.Series, keys: pd.Series, overall: float) -> dict[str, dict[str, float]]:
    """Per-category dispute rate smoothed toward the overall rate, with its odds factor."""
    table: dict[str, dict[str, float]] = {}
    frame = pd.DataFrame({"key": keys, "label": labels}).dropna()
    for key, group in frame.groupby("key", sort=True):
        n = len(group)
        positives = float(group["label"].sum())
        smoothed = (positives + DISPUTE_SMOOTHING * overall) / (n + DISPUTE_SMOOTHING)
        table[str(key)] = {
            "n": n,
            "raw_rate": positives / n,
            "rate": smoothed,
            "odds_factor": _odds(smoothed) / _odds(overall),
        }
    return table


def _odds(p: float) -> float:
    """The odds p / (1 - p), bounded away from 0 and infinity."""
    p = min(max(p, 1e-6), 1 - 1e-6)
    return p / (1 - p)


def dispute_profile(frame: pd.DataFrame) -> dict[str, Any]:
    """Overall dispute rate, label-missing share and smoothed rates by product and response."""
    labels = frame["consumer_disputed"].map(to_flag).astype(object)
    labelled = labels.dropna()
    if labelled.empty:
        raise ValueError("fit_profile needs labelled complaints (consumer_disputed Yes/No)")
    numeric = labels.map(lambda v: None if v is None else float(v))
    overall = float(labelled.astype(float).mean())
    return {
        "overall_rate": overall,
        "n_labelled": len(labelled),
        "label_missing_share": float(labels.isna().mean()),
        "smoothing": DISPUTE_SMOOTHING,
        "by_product": rate_table(numeric, frame["product"], overall),
        "by_company_response": rate_table(numeric, frame["company_response"], overall),
        "by_submitted_via": rate_table(numeric, frame["submitted_via"], overall),
    }


def tokens(text: str) -> list[str]:
    """Lower-case words of a narrative without stopwords, masks (XXXX) and numbers."""
    words = _WORD.findall(text.lower())
    # "n't" is what is left of a contraction split apart in some exports.
    return [
        w
        for w in words
        if len(w) > 2 and w not in _STOPWORDS and "xx" not in w and not w.startswith("n'")
    ]


def quantiles(values: list[int]) -> list[list[float]]:
    """[level, value] pairs at QUANTILE_LEVELS."""
    if not values:
        return [[q, 0.0] for q in QUANTILE_LEVELS]
    points = np.quantile(np.asarray(values, float), QUANTILE_LEVELS)
    return [[q, float(v)] for q, v in zip(QUANTILE_LEVELS, points, strict=True)]


def vocabulary(documents: list[list[str]], overall: Counter[str], total: int) -> Distribution:
    """A product's top words by frequency, weighted toward words more frequent than overall."""
    counts: Counter[str] = Counter()
    doc_counts: Counter[str] = Counter()
    for words in documents:
        counts.update(words)
        doc_counts.update(set(words))
    size = sum(counts.values())
    if size == 0:
        return []
    scores: dict[str, float] = {}
    for word, count in counts.items():
        if doc_counts[word] < MIN_WORD_DOCUMENTS:
            continue
        share = count / size
        lift = share / ((overall[word] + 1) / (total + 1))
        # Frequency first, with a mild boost for distinctive words so products differ.
        scores[word] = share * math.sqrt(max(lift, 1e-9))
    ranked = sorted(scores, key=lambda w: (-scores[w], w))[:VOCABULARY_SIZE]
    chosen = sum(counts[w] for w in ranked)
    return [[w, counts[w] / chosen] for w in ranked]


def narrative_profile(narratives: pd.DataFrame) -> dict[str, Any]:
    """Narrative length quantiles (words) overall and per product, and per-product vocabulary."""
    frame = narratives[[NARRATIVE_PRODUCT_COLUMN, NARRATIVE_TEXT_COLUMN]].dropna()
    frame = frame[frame[NARRATIVE_TEXT_COLUMN].astype(str).str.strip() != ""]
    texts = frame[NARRATIVE_TEXT_COLUMN].astype(str).tolist()
    products = frame[NARRATIVE_PRODUCT_COLUMN].astype(str).tolist()
    lengths = [len(t.split()) for t in texts]
    docs = [tokens(t) for t in texts]
    overall: Counter[str] = Counter()
    for words in docs:
        overall.update(words)
    total = sum(overall.values())
    by_product_lengths: dict[str, list[int]] = {}
    by_product_docs: dict[str, list[list[str]]] = {}
    for product, length, words in zip(products, lengths, docs, strict=True):
        by_product_lengths.setdefault(product, []).append(length)
        by_product_docs.setdefault(product, []).append(words)
    return {
        "n": len(texts),
        "products": distribution(products),
        "length_words": {
            "overall": quantiles(lengths),
            "by_product": {p: quantiles(v) for p, v in sorted(by_product_lengths.items())},
        },
        "vocabulary": {
            p: vocabulary(d, overall, total) for p, d in sorted(by_product_docs.items())
        },
    }


def fit_profile(complaints: list[pd.DataFrame], narratives: pd.DataFrame | None) -> Profile:
    """A JSON-able profile (frequencies, rates, quantiles) of canonical complaint frames."""
    frame = combine_complaints(complaints)
    timely = frame["timely_response"].map(to_flag).dropna()
    zip3_by_state, zip_shares = zip_profile(frame)
    return {
        "version": PROFILE_VERSION,
        "n_complaints": len(frame),
        "products": distribution(frame["product"]),
        "sub_products": grouped_distribution(frame, "product", "sub_product"),
        "issues": grouped_distribution(frame, "product", "issue"),
        "sub_issues": grouped_distribution(frame, "issue", "sub_issue", TOP_SUB_ISSUES),
        "states": distribution(frame["state"].dropna()),
        "state_missing_share": float(frame["state"].isna().mean()),
        "zip3_by_state": zip3_by_state,
        "zip_codes": zip_shares,
        "companies": company_profile(frame),
        "company_responses": distribution(frame["company_response"]),
        "submitted_via": distribution(frame["submitted_via"]),
        "timely_rate": float(timely.astype(float).mean()) if len(timely) else 1.0,
        "consumer_consent_provided": distribution(frame["consumer_consent_provided"]),
        "company_public_response": distribution(frame["company_public_response"]),
        "tags": distribution(frame["tags"]),
        "days_to_company": delay_profile(frame),
        "dispute": dispute_profile(frame),
        "narratives": narrative_profile(narratives) if narratives is not None else None,
    }


def rounded(value: Any, digits: int = FLOAT_DIGITS) -> Any:
    """`value` with every float rounded to `digits` decimals, recursively."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(v, digits) for v in value]
    return value


def read_narratives(path: Path) -> pd.DataFrame:
    """The narratives-by-product file (blank first header) as Product and narrative columns."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    missing = {NARRATIVE_PRODUCT_COLUMN, NARRATIVE_TEXT_COLUMN} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: lacks columns {sorted(missing)}")
    return frame[[NARRATIVE_PRODUCT_COLUMN, NARRATIVE_TEXT_COLUMN]]


def fit_profile_files(
    complaint_paths: list[Path], narratives_path: Path | None, out: Path
) -> Profile:
    """Fit the profile on CFPB files and write it as compact, sorted JSON to `out`."""
    frames = [read_complaints_csv(p.read_bytes(), p.name) for p in complaint_paths]
    narratives = read_narratives(narratives_path) if narratives_path is not None else None
    profile = rounded(fit_profile(frames, narratives))
    profile["sources"] = sorted(p.name for p in complaint_paths) + (
        [narratives_path.name] if narratives_path is not None else []
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(profile, sort_keys=True, indent=1) + "\n", encoding="utf-8")
    return profile


def load_profile(path: Path | None = None) -> Profile:
    """The profile at `path`, or the packaged default fitted on real CFPB extracts."""
    source = path if path is not None else PACKAGED_PROFILE
    return json.loads(source.read_text(encoding="utf-8"))


@functools.cache
def default_profile() -> Profile:
    """The packaged profile, read once per process (callers must not change it)."""
    return load_profile()
