"""Pandera contracts of the data layer: what a raw row must satisfy, and what validated rows are."""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing.pandas import Series

from ml_assets.columns import INGESTION_DATE_COLUMN
from ml_assets.ingest.cfpb_format import cfpb_dates_parse, cfpb_timestamps
from ml_assets.ingest.cfpb_vocabulary import (
    FALSE_TOKENS,
    MISSING_LABEL_TOKENS,
    PRODUCT_VOCABULARY,
    STATE_CODES,
    TRUE_TOKENS,
    ZIP_CODE_PATTERN,
)

_BOOLEAN_TOKENS = TRUE_TOKENS | FALSE_TOKENS
_LABEL_TOKENS = TRUE_TOKENS | FALSE_TOKENS | MISSING_LABEL_TOKENS
_SORTED_PRODUCTS = sorted(PRODUCT_VOCABULARY)
_SORTED_STATES = sorted(STATE_CODES)


def _tokens_in(series: pd.Series, tokens: frozenset[str]) -> pd.Series:
    """Per value, whether it is missing or one of `tokens` (trimmed, any case)."""
    return series.isna() | series.astype("string").str.strip().str.lower().isin(tokens)


class RawComplaintContract(pa.DataFrameModel):
    """Rules a landed row must pass to be accepted; each failing rule is recorded per row."""

    complaint_id: Series[pd.StringDtype] = pa.Field(nullable=False)
    date_received: Series[pd.StringDtype] = pa.Field(nullable=False)
    product: Series[pd.StringDtype] = pa.Field(nullable=False, isin=_SORTED_PRODUCTS)
    state: Series[pd.StringDtype] = pa.Field(nullable=True, isin=_SORTED_STATES)
    zip_code: Series[pd.StringDtype] = pa.Field(nullable=True, str_matches=ZIP_CODE_PATTERN)
    date_sent_to_company: Series[pd.StringDtype] = pa.Field(nullable=True)
    timely_response: Series[pd.StringDtype] = pa.Field(nullable=True)
    consumer_disputed: Series[pd.StringDtype] = pa.Field(nullable=True)
    parse_error: Series[pd.StringDtype] = pa.Field(nullable=True)

    # Column checks, not element-wise ones: millions of rows pass through here.
    @pa.check("date_received", "date_sent_to_company", name="is_date")
    def is_date(cls, series: Series[pd.StringDtype]) -> pd.Series:
        return cfpb_dates_parse(series)

    @pa.check("timely_response", name="is_yes_no")
    def is_yes_no(cls, series: Series[pd.StringDtype]) -> pd.Series:
        return _tokens_in(series, _BOOLEAN_TOKENS)

    @pa.check("consumer_disputed", name="is_label")
    def is_label(cls, series: Series[pd.StringDtype]) -> pd.Series:
        return _tokens_in(series, _LABEL_TOKENS)

    @pa.check("parse_error", name="well_formed_record")
    def well_formed_record(cls, series: Series[pd.StringDtype]) -> pd.Series:
        return series.isna()

    @pa.dataframe_check(name="date_received_is_partition_date")
    def date_received_is_partition_date(cls, df: pd.DataFrame) -> pd.Series:
        parsed = cfpb_timestamps(df["date_received"])
        # Unparseable dates fail `is_date`; counting them here too would double the rule.
        return parsed.isna() | (parsed == df[INGESTION_DATE_COLUMN])

    class Config(pa.DataFrameModel.Config):
        strict = False
        coerce = False


class ValidatedComplaints(pa.DataFrameModel):
    """The typed, deduplicated complaints every later stage reads."""

    complaint_id: Series[pd.StringDtype] = pa.Field(nullable=False, unique=True)
    date_received: Series[pa.DateTime] = pa.Field(nullable=False)
    product: Series[pd.StringDtype] = pa.Field(isin=_SORTED_PRODUCTS)
    sub_product: Series[pd.StringDtype] = pa.Field(nullable=True)
    issue: Series[pd.StringDtype] = pa.Field(nullable=True)
    sub_issue: Series[pd.StringDtype] = pa.Field(nullable=True)
    consumer_complaint_narrative: Series[pd.StringDtype] = pa.Field(nullable=True)
    company_public_response: Series[pd.StringDtype] = pa.Field(nullable=True)
    company: Series[pd.StringDtype] = pa.Field(nullable=True)
    state: Series[pd.StringDtype] = pa.Field(nullable=True, isin=_SORTED_STATES)
    zip_code: Series[pd.StringDtype] = pa.Field(nullable=True, str_matches=ZIP_CODE_PATTERN)
    tags: Series[pd.StringDtype] = pa.Field(nullable=True)
    consumer_consent_provided: Series[pd.StringDtype] = pa.Field(nullable=True)
    submitted_via: Series[pd.StringDtype] = pa.Field(nullable=True)
    date_sent_to_company: Series[pa.DateTime] = pa.Field(nullable=True)
    company_response: Series[pd.StringDtype] = pa.Field(nullable=True)
    timely_response: Series[pd.BooleanDtype] = pa.Field(nullable=True)
    consumer_disputed: Series[pd.BooleanDtype] = pa.Field(nullable=True)
    ingestion_date: Series[pa.DateTime] = pa.Field(nullable=False)
    source_file: Series[pd.StringDtype] = pa.Field(nullable=False)
    source_line: Series[pd.Int64Dtype] = pa.Field(nullable=False, ge=1)

    @pa.dataframe_check(name="date_received_is_partition_date")
    def date_received_is_partition_date(cls, df: pd.DataFrame) -> pd.Series:
        return df["date_received"] == df[INGESTION_DATE_COLUMN]

    class Config(pa.DataFrameModel.Config):
        strict = True
        ordered = True
        coerce = False
