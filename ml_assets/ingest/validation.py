"""Splitting a day's raw complaints into validated rows and rejected rows with their failed rules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import pandera.errors as pa_errors

from ml_assets.columns import (
    CANONICAL_COLUMNS,
    FAILED_RULES_COLUMN,
    INGESTION_DATE_COLUMN,
    LABEL_COLUMN,
    LINEAGE_COLUMNS,
)
from ml_assets.ingest.cfpb_format import RAW_COLUMNS, cfpb_timestamps
from ml_assets.ingest.cfpb_vocabulary import FALSE_TOKENS, TRUE_TOKENS
from ml_assets.ingest.contracts import RawComplaintContract, ValidatedComplaints

DUPLICATE_RULE = "complaint_id:duplicate"
VALIDATED_COLUMNS: tuple[str, ...] = (*CANONICAL_COLUMNS, *LINEAGE_COLUMNS)
REJECTED_COLUMNS: tuple[str, ...] = (*RAW_COLUMNS, INGESTION_DATE_COLUMN, FAILED_RULES_COLUMN)
_DATE_COLUMNS = ("date_received", "date_sent_to_company")
_BOOLEAN_COLUMNS = ("timely_response", LABEL_COLUMN)


@dataclass(frozen=True)
class ValidationResult:
    """Validated rows, rejected rows, and how often each rule failed."""

    valid: pd.DataFrame
    rejected: pd.DataFrame
    rule_counts: dict[str, int]


def contract_failures(raw: pd.DataFrame) -> dict[int, list[str]]:
    """Failed rule names of the raw contract per row position (rows passing every rule absent)."""
    try:
        RawComplaintContract.validate(raw.reset_index(drop=True), lazy=True)
    except pa_errors.SchemaErrors as errors:
        cases = errors.failure_cases
        if cases["index"].isna().any():
            # A failure without a row is a whole-table problem (missing column, wrong dtype):
            # a bug in reading, not bad data, so it must not pass as rejected rows.
            table_level = cases[cases["index"].isna()]
            raise ValueError(
                f"raw complaints break the contract as a table:\n{table_level}"
            ) from errors
        failures: dict[int, list[str]] = {}
        for index, column, check in cases[["index", "column", "check"]].itertuples(index=False):
            rule = f"{column}:{str(check).split('(', 1)[0]}"
            rules = failures.setdefault(int(index), [])
            if rule not in rules:
                rules.append(rule)
        return failures
    return {}


def to_boolean(series: pd.Series) -> pd.Series:
    """Yes/No-style tokens as a nullable boolean; empty and N/A become missing."""
    tokens = series.astype("string").str.strip().str.lower()
    known = tokens.notna() & tokens.isin(TRUE_TOKENS | FALSE_TOKENS)
    return tokens.isin(TRUE_TOKENS).astype("boolean").where(known)


def to_timestamp(series: pd.Series) -> pd.Series:
    """CFPB date strings (ISO or M/D/YYYY) as timestamps."""
    return cfpb_timestamps(series)


def typed_complaints(rows: pd.DataFrame) -> pd.DataFrame:
    """Contract-passing raw rows converted to the validated table's types and column order."""
    out = rows.loc[:, list(VALIDATED_COLUMNS)].copy()
    for column in _DATE_COLUMNS:
        out[column] = to_timestamp(out[column])
    for column in _BOOLEAN_COLUMNS:
        out[column] = to_boolean(out[column])
    out[INGESTION_DATE_COLUMN] = out[INGESTION_DATE_COLUMN].astype("datetime64[ns]")
    return out.reset_index(drop=True)


def split_valid_rejected(raw: pd.DataFrame) -> ValidationResult:
    """Apply the raw contract and deduplicate by complaint id within a day: read = valid + rejected.

    The rows may span several ingestion days; each row's verdict is the one of its day alone.
    """
    raw = raw.reset_index(drop=True)
    failures = contract_failures(raw)
    passing = ~raw.index.isin(list(failures))
    # Among a day's rows that pass, the first occurrence of an id wins; later ones are duplicates.
    keys = [c for c in (INGESTION_DATE_COLUMN, "complaint_id") if c in raw.columns]
    candidates = raw.loc[passing, keys]
    for position in candidates.index[candidates.duplicated(keep="first")]:
        failures[int(position)] = [DUPLICATE_RULE]
    rejected_mask = raw.index.isin(list(failures))

    rejected = raw.loc[rejected_mask].copy()
    rejected[FAILED_RULES_COLUMN] = pd.array(
        ["; ".join(failures[int(i)]) for i in rejected.index], dtype="string"
    )
    rule_counts: dict[str, int] = {}
    for rules in failures.values():
        for rule in rules:
            rule_counts[rule] = rule_counts.get(rule, 0) + 1
    return ValidationResult(
        valid=typed_complaints(raw.loc[~rejected_mask]),
        rejected=rejected.loc[:, list(REJECTED_COLUMNS)].reset_index(drop=True),
        rule_counts=dict(sorted(rule_counts.items(), key=lambda kv: (-kv[1], kv[0]))),
    )


def count_rules(rejected: pd.DataFrame) -> dict[str, int]:
    """How often each rule failed among rejected rows, most frequent first."""
    rules = rejected[FAILED_RULES_COLUMN].dropna().str.split("; ").explode()
    counts = ((str(rule), int(n)) for rule, n in rules.value_counts().items())
    return dict(sorted(counts, key=lambda kv: (-kv[1], kv[0])))


def split_by_day(result: ValidationResult, days: Sequence[str]) -> dict[str, ValidationResult]:
    """A result over several ingestion days as one result per day (empty days included)."""
    valid = dict(iter(result.valid.groupby(INGESTION_DATE_COLUMN, sort=False)))
    rejected = dict(iter(result.rejected.groupby(INGESTION_DATE_COLUMN, sort=False)))
    out: dict[str, ValidationResult] = {}
    for day in days:
        stamp = pd.Timestamp(day)
        day_rejected = rejected.get(stamp, result.rejected.iloc[0:0]).reset_index(drop=True)
        out[day] = ValidationResult(
            valid=valid.get(stamp, result.valid.iloc[0:0]).reset_index(drop=True),
            rejected=day_rejected,
            rule_counts=count_rules(day_rejected),
        )
    return out


def typed_contract_failures(valid: pd.DataFrame) -> pd.DataFrame:
    """Failure cases of the validated table's contract (empty when the table satisfies it)."""
    try:
        ValidatedComplaints.validate(valid, lazy=True)
    except pa_errors.SchemaErrors as errors:
        return errors.failure_cases
    return pd.DataFrame()
