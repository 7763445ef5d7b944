"""A day's complaints: the canonical schema, valid values, unique ids, real-looking ZIP codes."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

from ml_assets.columns import CANONICAL_COLUMNS
from ml_assets.ingest.cfpb_format import parse_cfpb_date
from ml_assets.ingest.cfpb_vocabulary import (
    PRODUCT_VOCABULARY,
    STATE_CODES,
    ZIP_CODE_PATTERN,
)
from ml_assets.synthetic.export import generate_day
from ml_assets_tests.synthetic.read_back import DAY, parse


def test_day_parses_into_canonical_schema_with_valid_rows() -> None:
    frame = parse(generate_day(DAY, 300, seed=5))
    assert len(frame) == 300
    assert set(CANONICAL_COLUMNS) <= set(frame.columns)
    assert frame["parse_error"].isna().all()
    assert frame["product"].isin(PRODUCT_VOCABULARY).all()
    assert frame["state"].isin(STATE_CODES).all()
    assert frame["zip_code"].str.fullmatch(ZIP_CODE_PATTERN.strip("^$")).all()
    assert (frame["date_received"].map(parse_cfpb_date) == DAY).all()
    sent = frame["date_sent_to_company"].map(parse_cfpb_date)
    assert (sent >= DAY).all()
    assert frame["date_received"].str.fullmatch(r"\d{1,2}/\d{1,2}/\d{4}").all()
    assert frame["timely_response"].isin(["Yes", "No"]).all()
    assert frame["consumer_disputed"].dropna().isin(["Yes", "No"]).all()
    assert frame["complaint_id"].str.fullmatch(r"\d+").all()
    assert frame["complaint_id"].is_unique


def test_complaint_ids_do_not_collide_across_days() -> None:
    ids = pd.concat(
        [
            parse(generate_day(DAY + timedelta(days=i), 300, seed=1))["complaint_id"]
            for i in range(3)
        ]
    )
    assert ids.is_unique


def test_zip_codes_look_real() -> None:
    zips = parse(generate_day(DAY, 500, seed=1))["zip_code"]
    assert zips.str.fullmatch(r"\d{3}XX").any() and zips.str.fullmatch(r"\d{5}").any()
