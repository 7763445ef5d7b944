"""Realistic defects: each kind appears at a positive rate, none at rate zero."""

from __future__ import annotations

from ml_assets.ingest.cfpb_format import parse_cfpb_date
from ml_assets.ingest.cfpb_vocabulary import (
    STATE_CODES,
)
from ml_assets.synthetic.export import generate_day
from ml_assets_tests.synthetic.read_back import DAY, parse


def test_defects_of_each_kind_appear() -> None:
    text = generate_day(DAY, 500, seed=2, defect_rate=0.2)
    frame = parse(text)
    assert (~frame["state"].isin(STATE_CODES)).sum() > 0
    assert frame["date_received"].map(parse_cfpb_date).isna().sum() > 0
    assert frame["product"].isna().sum() > 0
    assert frame["complaint_id"].duplicated().sum() > 0
    # Only the last record may be truncated: a cut download ends mid-record, without a line end.
    errors = frame["parse_error"].notna()
    assert errors.sum() == 1 and bool(errors.iloc[-1])
    assert not text.endswith("\n")
    defective = 1 - len(frame.dropna(subset=["product"]).query("state in @STATE_CODES")) / len(
        frame
    )
    assert 0.05 < defective < 0.3


def test_no_defects_at_rate_zero() -> None:
    frame = parse(generate_day(DAY, 1000, seed=9, defect_rate=0.0))
    assert frame["parse_error"].isna().all()
    assert frame["complaint_id"].is_unique
