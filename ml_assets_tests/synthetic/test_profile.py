"""Tests of fitting and loading the CFPB profile that parameterises the generator."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from ml_assets.ingest.cfpb_format import read_complaints_csv
from ml_assets.ingest.cfpb_vocabulary import PRODUCT_VOCABULARY
from ml_assets.synthetic.export import generate_day
from ml_assets.synthetic.profile import (
    PACKAGED_PROFILE,
    fit_profile,
    fit_profile_files,
    load_profile,
    tokens,
)

COMPLAINT_FILES = (
    "cfpb_export_2013_2017_labeled.csv",
    "snake_case_2013_labeled.csv",
    "snake_case_2012_2017_with_narratives.csv",
)
NARRATIVES_FILE = "narratives_by_product.csv"


def shares(pairs: list[list[object]]) -> float:
    """The sum of a [value, share] distribution."""
    return sum(float(s) for _, s in pairs)  # type: ignore[arg-type]


@pytest.mark.real_data
def test_fit_on_real_files(real_data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "profile.json"
    profile = fit_profile_files(
        [real_data_dir / f for f in COMPLAINT_FILES], real_data_dir / NARRATIVES_FILE, out
    )
    assert abs(shares(profile["products"]) - 1) < 1e-3
    assert 0.15 <= profile["dispute"]["overall_rate"] <= 0.25
    assert {p for p, _ in profile["products"]} <= PRODUCT_VOCABULARY
    assert 0.9 < profile["timely_rate"] <= 1
    assert profile["narratives"]["vocabulary"]["Mortgage"]
    assert out.stat().st_size < 200_000
    assert json.loads(out.read_text(encoding="utf-8")) == profile


@pytest.mark.real_data
def test_packaged_profile_matches_a_fresh_fit(real_data_dir: Path, tmp_path: Path) -> None:
    fresh = fit_profile_files(
        [real_data_dir / f for f in COMPLAINT_FILES],
        real_data_dir / NARRATIVES_FILE,
        tmp_path / "profile.json",
    )
    assert load_profile() == fresh


def test_packaged_profile_is_complete_and_small() -> None:
    profile = load_profile()
    assert abs(shares(profile["products"]) - 1) < 1e-3
    assert 0.15 <= profile["dispute"]["overall_rate"] <= 0.25
    for product, entry in profile["dispute"]["by_product"].items():
        assert entry["odds_factor"] > 0, product
    assert len(PACKAGED_PROFILE.read_bytes()) < 200_000


def test_fit_on_generated_data_recovers_its_figures(tmp_path: Path) -> None:
    text = generate_day(pd.Timestamp("2016-04-04").date(), 3000, seed=1)
    frame = read_complaints_csv(text.encode("utf-8"), "synthetic.csv")
    narratives = frame[["product", "consumer_complaint_narrative"]].dropna()
    narratives.columns = ["Product", "Consumer complaint narrative"]
    profile = fit_profile([frame], narratives)
    assert abs(shares(profile["products"]) - 1) < 1e-9
    assert 0.15 <= profile["dispute"]["overall_rate"] <= 0.25
    assert profile["days_to_company"]["negative_share"] == 0
    assert profile["zip_codes"]["masked_3digit_share"] > 0
    for pairs in profile["sub_products"].values():
        assert abs(shares(pairs) - 1) < 1e-9
    assert profile["narratives"]["n"] == len(narratives)


def test_load_profile_from_path(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"version": 1}), encoding="utf-8")
    assert load_profile(path) == {"version": 1}


def test_tokens_drop_masks_numbers_and_stopwords() -> None:
    assert tokens("On XX/XX/XXXX I paid $XXXX to the Bank 2016 and they didn't reply") == [
        "paid",
        "bank",
        "reply",
    ]
