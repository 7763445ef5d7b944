"""The model's inputs: the feature specification and the raw-complaint-to-input mapping."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ml_assets.columns import INGESTION_DATE_COLUMN, LABEL_COLUMN

# The feature specification as data (the book's ONE_HOT_FEATURES / TEXT_FEATURES): the model
# builder and the serving app both read it from here.
CATEGORICAL_FEATURES: tuple[str, ...] = (
    "product",
    "sub_product",
    "issue",
    "state",
    "company_response",
    "timely_response",
    "submitted_via",
)
HASHED_FEATURES: tuple[str, ...] = ("zip3",)
TEXT_FEATURE = "narrative"
FEATURE_COLUMNS: tuple[str, ...] = (*CATEGORICAL_FEATURES, *HASHED_FEATURES, TEXT_FEATURE)
LABEL = "disputed"
# The company is no model input of its own: its history is (ml_assets/model/history.py), looked up
# by it, so the features table keeps it for that join.
COMPANY_COLUMN = "company"
FEATURES_TABLE_COLUMNS: tuple[str, ...] = (
    "complaint_id",
    INGESTION_DATE_COLUMN,
    COMPANY_COLUMN,
    *FEATURE_COLUMNS,
    LABEL,
)
# One token for "no value": lookups learn it like any category, so a missing field is not an error.
MISSING_TOKEN = "[missing]"
_ZIP3 = re.compile(r"^(\d{3})(\d{2}|XX)$")
_TIMELY_TOKENS = {"true": "yes", "yes": "yes", "false": "no", "no": "no"}
# Raw canonical fields the mapping reads (serving accepts exactly these).
RAW_INPUT_FIELDS: tuple[str, ...] = (
    "product",
    "sub_product",
    "issue",
    "state",
    "zip_code",
    "company_response",
    "timely_response",
    "submitted_via",
    "consumer_complaint_narrative",
)


def zip3(zip_code: object) -> str:
    """The first three ZIP digits, or the missing token for a fully masked or absent ZIP."""
    if not isinstance(zip_code, str):
        return MISSING_TOKEN
    match = _ZIP3.match(zip_code.strip())
    return match.group(1) if match else MISSING_TOKEN


def _is_missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _category(value: object) -> str:
    if _is_missing(value):
        return MISSING_TOKEN
    text = str(value).strip()
    return text or MISSING_TOKEN


def _timely(value: object) -> str:
    # Validated tables hold booleans; serving receives the export's Yes/No strings or JSON booleans.
    if _is_missing(value):
        return MISSING_TOKEN
    return _TIMELY_TOKENS.get(str(value).strip().lower(), MISSING_TOKEN)


def model_input_row(record: Mapping[str, Any]) -> tuple[str, ...]:
    """One complaint's raw fields mapped to the model inputs, in FEATURE_COLUMNS order.

    The single mapping used by training (via `to_model_inputs`) and by the server, so the two
    cannot drift apart."""
    get = record.get
    narrative = get("consumer_complaint_narrative")
    return (
        *(
            _timely(get(c)) if c == "timely_response" else _category(get(c))
            for c in CATEGORICAL_FEATURES
        ),
        zip3(get("zip_code")),
        "" if _is_missing(narrative) else str(narrative),
    )


def records_to_arrays(records: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Model input arrays (one string array per feature) for raw complaint records."""
    rows = [model_input_row(r) for r in records]
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in FEATURE_COLUMNS]
    return {
        name: np.array(values, dtype=object)
        for name, values in zip(FEATURE_COLUMNS, columns, strict=True)
    }


def _category_column(values: pd.Series) -> pd.Series:
    text = values.astype("string").str.strip()
    return text.mask(text == "").fillna(MISSING_TOKEN).astype(object)


def _timely_column(values: pd.Series) -> pd.Series:
    text = values.astype("string").str.strip().str.lower()
    return text.map(_TIMELY_TOKENS, na_action="ignore").fillna(MISSING_TOKEN).astype(object)


def _zip3_column(values: pd.Series) -> pd.Series:
    text = values.astype("string").str.strip()
    return text.str.extract(_ZIP3.pattern, expand=True)[0].fillna(MISSING_TOKEN).astype(object)


def to_model_inputs(complaints: pd.DataFrame) -> pd.DataFrame:
    """Raw canonical complaint fields mapped to the model's input columns (strings only).

    The table path: column operations, no Python loop per row. It gives what `model_input_row`
    gives for each record (the serving path); a test holds the two together.
    """
    frame = complaints.reindex(columns=list(RAW_INPUT_FIELDS))
    columns = {
        name: _timely_column(frame[name])
        if name == "timely_response"
        else _category_column(frame[name])
        for name in CATEGORICAL_FEATURES
    }
    columns["zip3"] = _zip3_column(frame["zip_code"])
    columns[TEXT_FEATURE] = (
        frame["consumer_complaint_narrative"].astype("string").fillna("").astype(object)
    )
    return pd.DataFrame(columns, index=complaints.index, columns=list(FEATURE_COLUMNS))


def to_features(validated: pd.DataFrame) -> pd.DataFrame:
    """The features table of validated complaints: id, day, model inputs and the label (0/1/NaN)."""
    out = to_model_inputs(validated)
    for column in FEATURE_COLUMNS:
        out[column] = out[column].astype("string")
    out.insert(0, "complaint_id", validated["complaint_id"].astype("string"))
    out.insert(
        1,
        INGESTION_DATE_COLUMN,
        pd.to_datetime(validated[INGESTION_DATE_COLUMN]).astype("datetime64[ns]"),
    )
    out.insert(2, COMPANY_COLUMN, _category_column(validated[COMPANY_COLUMN]).astype("string"))
    label = validated[LABEL_COLUMN].astype("boolean")
    out[LABEL] = label.astype("Float64")
    return out.loc[:, list(FEATURES_TABLE_COLUMNS)].reset_index(drop=True)


def input_arrays(inputs: pd.DataFrame) -> dict[str, np.ndarray]:
    """Model input columns as string arrays, one per named model input."""
    return {column: inputs[column].astype(str).to_numpy(dtype=object) for column in FEATURE_COLUMNS}
