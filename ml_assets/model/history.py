"""Point-in-time company history: a company's complaints, responses and arrived labels as of a day.

Three steps, each a pure function:
1. `log_label_arrivals`: every validated complaint with the day its label *arrived* (a label
   published with its day arrived on that day; a late one on the day it was landed again).
2. `day_contributions`: what one ingestion day adds to the history, per company, company x
   product and overall, split by the day its labels arrived. A day's contributions never depend
   on another day's, so the days of a backfill can be computed in any order, side by side.
3. `history_snapshots`: the contributions summed over trailing windows as of the end of a day,
   counting only labels arrived by then, and turned into features smoothed toward the overall
   rates. A complaint ingested on day D is given the snapshot as of D - 1 (`as_of_day`).

The offline join (`join_history`) and the online store (ml_assets/model/online_store.py) both
read the snapshots these functions compute; a test holds the two together.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date
from typing import Final

import duckdb
import pandas as pd

from ml_assets.columns import INGESTION_DATE_COLUMN, LABEL_COLUMN
from ml_assets.model.features import MISSING_TOKEN

# Trailing windows (days, the snapshot's day included) and the longest one a snapshot reads.
HISTORY_WINDOWS: Final = (30, 90, 365)
LOOKBACK_DAYS: Final = max(HISTORY_WINDOWS)
COMPANY_LEVEL: Final = "company"
COMPANY_PRODUCT_LEVEL: Final = "company_product"
LEVELS: Final = (COMPANY_LEVEL, COMPANY_PRODUCT_LEVEL)
# Every complaint, whatever its company: the rates a company's own are smoothed toward, and what
# a company never seen is given.
OVERALL_LEVEL: Final = "overall"
OVERALL_KEY: Final = ""
# The CFPB's responses to consumers (the six of today's exports and the two of 2012's).
RESPONSES: Final = (
    "Closed with explanation",
    "Closed with non-monetary relief",
    "Closed with monetary relief",
    "Closed",
    "Untimely response",
    "In progress",
    "Closed with relief",
    "Closed without relief",
)
# A company's rate weighs its own n events against this many at the overall rate: a company with
# 20 labelled complaints sits halfway between its own dispute rate and everyone's.
SMOOTHING_WEIGHT: Final = 20.0
# The rate of a yes/no nobody has seen yet (no complaint at all before the day).
UNINFORMED_RATE: Final = 0.5

# The label log's columns (one row per validated complaint).
ARRIVED_ON: Final = "label_arrived_on"
COMPANY: Final = "company"
PRODUCT: Final = "product"
TIMELY: Final = "timely"
RESPONSE: Final = "company_response"
DISPUTED: Final = "disputed"
LOG_COLUMNS: Final = (
    "complaint_id",
    INGESTION_DATE_COLUMN,
    COMPANY,
    PRODUCT,
    TIMELY,
    RESPONSE,
    DISPUTED,
    ARRIVED_ON,
)

LEVEL: Final = "level"
KEY: Final = "key"
KEY_SEPARATOR: Final = "\x1f"  # between company and product: in neither
AS_OF: Final = "as_of"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


# What a day contributes, summed per window: counts of complaints and of the events rates are of.
RESPONSE_COUNTS: Final = tuple(f"responded_{_slug(r)}" for r in RESPONSES)
CONTRIBUTION_COUNTS: Final = ("complaints", "timely", *RESPONSE_COUNTS, "labelled", "disputed")
CONTRIBUTION_COLUMNS: Final = (LEVEL, KEY, INGESTION_DATE_COLUMN, ARRIVED_ON, *CONTRIBUTION_COUNTS)
# Rates: (events, out of) — dispute rates among labelled complaints, the rest among all.
RATES: Final = {
    "dispute_rate": ("disputed", "labelled"),
    "timely_share": ("timely", "complaints"),
    **{f"{c.removeprefix('responded_')}_share": (c, "complaints") for c in RESPONSE_COUNTS},
}
MEASURES: Final = ("complaints", "labelled", *RATES)
COUNT_MEASURES: Final = ("complaints", "labelled")


def feature_name(level: str, measure: str, window: int) -> str:
    """A history feature's column name: company_dispute_rate_90d."""
    return f"{level}_{measure}_{window}d"


# One snapshot row's measures, window by window (the order of a level's features).
SNAPSHOT_COLUMNS: Final = tuple(f"{m}_{w}d" for w in HISTORY_WINDOWS for m in MEASURES)
HISTORY_FEATURES: Final = tuple(f"{level}_{c}" for level in LEVELS for c in SNAPSHOT_COLUMNS)
# The counts among them (models take their log: they span five orders of magnitude).
COUNT_FEATURES: Final = tuple(
    feature_name(level, m, w) for level in LEVELS for w in HISTORY_WINDOWS for m in COUNT_MEASURES
)


def as_of_day(ingestion_date: pd.Series) -> pd.Series:
    """The snapshot day a complaint ingested on D is given: D - 1 (it never sees its own day)."""
    return pd.to_datetime(ingestion_date).dt.normalize() - pd.Timedelta(days=1)


def _tokens(values: pd.Series) -> pd.Series:
    return values.astype("string").str.strip().fillna(MISSING_TOKEN).replace("", MISSING_TOKEN)


def level_keys(companies: pd.Series, products: pd.Series, level: str) -> pd.Series:
    """The store key of each complaint at a level (missing values are the missing token)."""
    company = _tokens(companies)
    if level == COMPANY_LEVEL:
        return company.astype(object)
    return (company + KEY_SEPARATOR + _tokens(products)).astype(object)


def key_token(value: object) -> str:
    """One value as `level_keys` keys it, for a single request (no pandas on the serving path)."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return MISSING_TOKEN
    return str(value).strip() or MISSING_TOKEN


def pair_key(company: str, product: str) -> str:
    """The company x product key of two tokens."""
    return f"{company}{KEY_SEPARATOR}{product}"


def log_label_arrivals(validated: pd.DataFrame, logged: pd.DataFrame, today: date) -> pd.DataFrame:
    """The label log of validated complaints, given what was logged of their days before.

    A label already logged keeps its arrival. On a day's first logging its labels arrived that
    day (the export published them with it: nothing tells later); on a later one, a new or
    changed label arrived `today`, the day it was landed again. A complaint already logged keeps
    the company, product and response it was first logged with: a response changed later would
    otherwise rewrite the history of the days before the change.
    """
    day = pd.to_datetime(validated[INGESTION_DATE_COLUMN]).dt.normalize().astype("datetime64[ns]")
    log = pd.DataFrame(
        {
            "complaint_id": validated["complaint_id"].astype("string"),
            INGESTION_DATE_COLUMN: day,
            COMPANY: validated[COMPANY].astype("string"),
            PRODUCT: validated[PRODUCT].astype("string"),
            TIMELY: validated["timely_response"].astype("boolean"),
            RESPONSE: validated[RESPONSE].astype("string"),
            DISPUTED: validated[LABEL_COLUMN].astype("boolean"),
        }
    ).reset_index(drop=True)
    before = logged.drop_duplicates(["complaint_id", INGESTION_DATE_COLUMN], keep="last")
    before = before.assign(
        **{INGESTION_DATE_COLUMN: pd.to_datetime(before[INGESTION_DATE_COLUMN]).dt.normalize()}
    ).astype({INGESTION_DATE_COLUMN: "datetime64[ns]"})
    first_seen = (COMPANY, PRODUCT, TIMELY, RESPONSE)
    merged = log.merge(
        before[["complaint_id", INGESTION_DATE_COLUMN, DISPUTED, ARRIVED_ON, *first_seen]].rename(
            columns={DISPUTED: "_was", ARRIVED_ON: "_arrived", **{c: f"_{c}" for c in first_seen}}
        ),
        on=["complaint_id", INGESTION_DATE_COLUMN],
        how="left",
        indicator=True,
    )
    logged_before = (merged.pop("_merge") == "both").to_numpy()
    for column in first_seen:
        kept_value = merged.pop(f"_{column}").astype(log[column].dtype)
        log[column] = log[column].where(~logged_before, kept_value)
    relanded = merged[INGESTION_DATE_COLUMN].isin(set(before[INGESTION_DATE_COLUMN]))
    labelled = merged[DISPUTED].notna()
    kept = labelled & merged["_was"].notna() & (merged["_was"] == merged[DISPUTED]).fillna(False)
    landed_today = pd.Timestamp(today)
    arrived = pd.Series(pd.NaT, index=merged.index, dtype="datetime64[ns]")
    arrived[kept] = pd.to_datetime(merged.loc[kept, "_arrived"])
    first = labelled & ~kept & ~relanded
    arrived[first] = merged.loc[first, INGESTION_DATE_COLUMN]
    late = labelled & ~kept & relanded
    # A day landed again is at least its own day: `today` before it would be a clock gone wrong.
    late_days = merged.loc[late, INGESTION_DATE_COLUMN]
    arrived[late] = late_days.where(late_days > landed_today, landed_today)
    log[ARRIVED_ON] = arrived.to_numpy()
    return log.loc[:, list(LOG_COLUMNS)]


def day_contributions(log: pd.DataFrame) -> pd.DataFrame:
    """What label-log rows add to the history: counts per level, key, day and label arrival."""
    if log.empty:
        return pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in CONTRIBUTION_COLUMNS})
    counts = pd.DataFrame(
        {
            INGESTION_DATE_COLUMN: pd.to_datetime(log[INGESTION_DATE_COLUMN]).astype(
                "datetime64[ns]"
            ),
            ARRIVED_ON: pd.to_datetime(log[ARRIVED_ON]).astype("datetime64[ns]"),
            "complaints": 1,
            "timely": log[TIMELY].fillna(False).astype(int),
            **{
                column: (log[RESPONSE] == response).fillna(False).astype(int)
                for column, response in zip(RESPONSE_COUNTS, RESPONSES, strict=True)
            },
            "labelled": log[DISPUTED].notna().astype(int),
            "disputed": log[DISPUTED].fillna(False).astype(int),
        }
    )
    keyed = [
        counts.assign(**{LEVEL: level, KEY: level_keys(log[COMPANY], log[PRODUCT], level)})
        for level in LEVELS
    ] + [counts.assign(**{LEVEL: OVERALL_LEVEL, KEY: OVERALL_KEY})]
    frame = pd.concat(keyed, ignore_index=True)
    grouped = frame.groupby(
        [LEVEL, KEY, INGESTION_DATE_COLUMN, ARRIVED_ON], dropna=False, sort=True
    )[list(CONTRIBUTION_COUNTS)].sum()
    return (
        grouped.reset_index()
        .loc[:, list(CONTRIBUTION_COLUMNS)]
        .astype({c: "int64" for c in CONTRIBUTION_COUNTS})
    )


def _dtype(column: str) -> str:
    if column in (INGESTION_DATE_COLUMN, ARRIVED_ON):
        return "datetime64[ns]"
    return "object" if column in (LEVEL, KEY) else "int64"


def _window_sums_sql(table: str) -> str:
    """Per as-of day, level and key: each count summed over each trailing window (labels only
    where they had arrived by the as-of day)."""
    sums = []
    for window in HISTORY_WINDOWS:
        in_window = f"c.{INGESTION_DATE_COLUMN} > d.{AS_OF} - interval {window} day"
        for column in CONTRIBUTION_COUNTS:
            arrived = (
                f" and c.{ARRIVED_ON} <= d.{AS_OF}" if column in ("labelled", "disputed") else ""
            )
            sums.append(
                f"coalesce(sum(c.{column}) filter (where {in_window}{arrived}), 0)::bigint "
                f'as "{column}_{window}d"'
            )
    return (
        f"select d.{AS_OF}, c.{LEVEL}, c.{KEY}, {', '.join(sums)} "
        f"from as_of_days d join {table} c "
        f"on c.{INGESTION_DATE_COLUMN} <= d.{AS_OF} "
        f"and c.{INGESTION_DATE_COLUMN} > d.{AS_OF} - interval {LOOKBACK_DAYS} day "
        f"group by all"
    )


def window_sums(
    contributions: pd.DataFrame | duckdb.DuckDBPyRelation, days: Sequence[date]
) -> pd.DataFrame:
    """The contributions' counts summed per trailing window as of the end of each of `days`."""
    as_of_days = pd.DataFrame({AS_OF: pd.to_datetime(sorted(set(days))).astype("datetime64[ns]")})
    con = duckdb.connect()
    try:
        con.register("as_of_days", as_of_days)
        con.register("contributions", contributions)
        sums = con.execute(_window_sums_sql("contributions")).fetchdf()
    finally:
        con.close()
    sums[AS_OF] = pd.to_datetime(sums[AS_OF]).astype("datetime64[ns]")
    return sums


def _rates(sums: pd.DataFrame, overall: pd.DataFrame | None) -> pd.DataFrame:
    """Counts and smoothed rates per window; `overall` (same index) gives the rates smoothed
    toward, None: the rows are the overall ones (their own rates, or uninformed without events)."""
    out = {}
    for window in HISTORY_WINDOWS:
        for measure in COUNT_MEASURES:
            out[f"{measure}_{window}d"] = sums[f"{measure}_{window}d"].astype("float64")
        for measure, (events, total) in RATES.items():
            hits = sums[f"{events}_{window}d"].astype("float64")
            n = sums[f"{total}_{window}d"].astype("float64")
            if overall is None:
                rate = (hits / n.where(n > 0)).fillna(UNINFORMED_RATE)
            else:
                prior = overall[f"{measure}_{window}d"]
                rate = (hits + SMOOTHING_WEIGHT * prior) / (n + SMOOTHING_WEIGHT)
            out[f"{measure}_{window}d"] = rate
    return pd.DataFrame(out, index=sums.index).loc[:, list(SNAPSHOT_COLUMNS)]


def prior_row() -> pd.Series:
    """The snapshot row of a day before any complaint: no counts, uninformed rates."""
    return pd.Series(
        {c: 0.0 if c.startswith(COUNT_MEASURES) else UNINFORMED_RATE for c in SNAPSHOT_COLUMNS}
    )


def history_snapshots(
    contributions: pd.DataFrame | duckdb.DuckDBPyRelation, days: Sequence[date]
) -> pd.DataFrame:
    """Snapshots as of the end of each of `days`: one row per day, level and key (the overall
    level's row, key "", on every day), with SNAPSHOT_COLUMNS."""
    sums = window_sums(contributions, days)
    is_overall = sums[LEVEL] == OVERALL_LEVEL
    overall = sums[is_overall].set_index(AS_OF)
    overall_rates = _rates(overall, None)
    # Days with no complaint in the lookback have no overall row: they get the uninformed one.
    missing = sorted(set(pd.to_datetime(list(days))) - set(overall_rates.index))
    if missing:
        uninformed = pd.DataFrame([prior_row()] * len(missing), index=pd.Index(missing, name=AS_OF))
        overall_rates = pd.concat([overall_rates, uninformed])
    keyed = sums[~is_overall].reset_index(drop=True)
    priors = overall_rates.reindex(keyed[AS_OF]).reset_index(drop=True)
    rows = pd.concat(
        [
            keyed[[AS_OF, LEVEL, KEY]],
            _rates(keyed, priors),
        ],
        axis=1,
    )
    overall_frame = overall_rates.rename_axis(AS_OF).reset_index()
    overall_frame.insert(1, LEVEL, OVERALL_LEVEL)
    overall_frame.insert(2, KEY, OVERALL_KEY)
    return pd.concat([rows, overall_frame], ignore_index=True).sort_values(
        [AS_OF, LEVEL, KEY], ignore_index=True
    )


def unseen_row(overall: pd.Series) -> pd.Series:
    """What a key never seen gets: no counts, the overall rates."""
    return overall.where(~overall.index.str.startswith(COUNT_MEASURES), 0.0)


def join_history(complaints: pd.DataFrame, snapshots: pd.DataFrame) -> pd.DataFrame:
    """HISTORY_FEATURES of each complaint (company, product, ingestion_date) from the snapshot as
    of the day before its ingestion; a key the snapshot lacks gets the overall rates, no counts."""
    as_of = as_of_day(complaints[INGESTION_DATE_COLUMN]).reset_index(drop=True)
    overall = (
        snapshots[snapshots[LEVEL] == OVERALL_LEVEL].set_index(AS_OF).loc[:, list(SNAPSHOT_COLUMNS)]
    )
    if missing := sorted(set(as_of) - set(overall.index)):
        raise ValueError(
            f"no history snapshot as of {[str(d.date()) for d in missing[:5]]}: compute the "
            "snapshots of every complaint's day before (as_of_day)"
        )
    unseen = overall.apply(unseen_row, axis=1).reindex(as_of).reset_index(drop=True)
    # A complaint without a company (or product) field is one never seen: the priors.
    named = complaints.reindex(columns=[COMPANY, PRODUCT])
    parts = []
    for level in LEVELS:
        keys = level_keys(named[COMPANY], named[PRODUCT], level).reset_index(drop=True)
        table = snapshots[snapshots[LEVEL] == level].drop(columns=LEVEL)
        found = pd.DataFrame({AS_OF: as_of, KEY: keys}).merge(table, on=[AS_OF, KEY], how="left")
        values = found.loc[:, list(SNAPSHOT_COLUMNS)].fillna(unseen)
        parts.append(values.add_prefix(f"{level}_"))
    joined = pd.concat(parts, axis=1).loc[:, list(HISTORY_FEATURES)].astype("float64")
    joined.index = complaints.index
    return joined


def with_history_from(validated: pd.DataFrame, rows: pd.DataFrame, today: date) -> pd.DataFrame:
    """`rows` (features of `validated`'s complaints) with HISTORY_FEATURES from a label log begun
    now (labels as published by `today`), each as of the day before its own: what the assets
    compute, in one call (benches and tests of a frame)."""
    log = log_label_arrivals(validated, pd.DataFrame(columns=list(LOG_COLUMNS)), today)
    days = sorted(as_of_day(rows[INGESTION_DATE_COLUMN]).dt.date.unique())
    snapshots = history_snapshots(day_contributions(log), days)
    return pd.concat([rows, join_history(rows, snapshots)], axis=1)
