"""The model's inputs: the feature specification and the raw-complaint-to-input mapping."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ml_assets.constants import INGESTION_DATE_COLUMN, LABEL_COLUMN

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
FEATURES_TABLE_COLUMNS: tuple[str, ...] = (
    "complaint_id",
    INGESTION_DATE_COLUMN,
    *FEATURE_COLUMNS,
    LABEL,
)
# One token for "no value": lookups learn it like any category, so a missing field is not an error.
MISSING_TOKEN = "[missing]"
_ZIP3 = re.compile(r"^(\d{3})(\d{2}|XX)$")
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


def _category(values: pd.Series) -> pd.Series:
    text = values.astype("string").str.strip()
    return text.where(text.notna() & (text != ""), MISSING_TOKEN).astype(object)


def _timely(values: pd.Series) -> pd.Series:
    # Validated tables hold booleans; serving may receive the export's Yes/No strings.
    tokens = values.astype("string").str.strip().str.lower()
    mapped = tokens.map({"true": "yes", "yes": "yes", "false": "no", "no": "no"})
    return mapped.where(mapped.notna(), MISSING_TOKEN).astype(object)


def to_model_inputs(complaints: pd.DataFrame) -> pd.DataFrame:
    """Raw canonical complaint fields mapped to the model's input columns (strings only)."""
    frame = complaints.reindex(columns=list(RAW_INPUT_FIELDS))
    out = pd.DataFrame(index=complaints.index)
    for column in CATEGORICAL_FEATURES:
        out[column] = (
            _timely(frame[column]) if column == "timely_response" else _category(frame[column])
        )
    out["zip3"] = frame["zip_code"].map(zip3).astype(object)
    narrative = frame["consumer_complaint_narrative"].astype("string").fillna("")
    out[TEXT_FEATURE] = narrative.astype(object)
    return out.loc[:, list(FEATURE_COLUMNS)]


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
    label = validated[LABEL_COLUMN].astype("boolean")
    out[LABEL] = label.astype("Float64")
    return out.loc[:, list(FEATURES_TABLE_COLUMNS)].reset_index(drop=True)


def records_to_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Raw complaint dicts (as received over HTTP) as a frame of the raw input fields."""
    return pd.DataFrame(
        [{f: r.get(f) for f in RAW_INPUT_FIELDS} for r in records], columns=list(RAW_INPUT_FIELDS)
    )


def input_arrays(inputs: pd.DataFrame) -> dict[str, np.ndarray]:
    """Model input columns as string arrays, one per named model input."""
    return {column: inputs[column].astype(str).to_numpy(dtype=object) for column in FEATURE_COLUMNS}
