from pathlib import Path

import pandas as pd
import pytest

from ml_assets.ingest.cfpb_format import parse_cfpb_date, read_complaints_csv
from ml_assets.ingest.validation import (
    DUPLICATE_RULE,
    split_valid_rejected,
    typed_contract_failures,
)
from ml_assets_tests.factories import csv_line, raw_day

DAY = "2016-01-05"


def _rules(raw: pd.DataFrame) -> list[str]:
    return list(split_valid_rejected(raw).rejected["failed_rules"])


def test_a_clean_row_is_valid_and_typed() -> None:
    result = split_valid_rejected(raw_day(DAY, csv_line()))
    assert len(result.valid) == 1 and result.rejected.empty
    row = result.valid.iloc[0]
    assert row["date_received"] == pd.Timestamp(DAY)
    assert result.valid["timely_response"].tolist() == [True]
    assert result.valid["consumer_disputed"].tolist() == [False]
    assert typed_contract_failures(result.valid).empty


@pytest.mark.parametrize(
    ("fields", "rule"),
    [
        ({"State": "ZZ"}, "state:isin"),
        ({"ZIP_code": "85-XX"}, "zip_code:str_matches"),
        ({"Product": ""}, "product:not_nullable"),
        ({"Product": "Crypto lending"}, "product:isin"),
        ({"Date_received": "13/45/2016"}, "date_received:is_date"),
        ({"Date_received": "01/04/2016"}, "date_received_is_partition_date"),
        ({"Timely_response": "Maybe"}, "timely_response:is_yes_no"),
        ({"Consumer_disputed": "Perhaps"}, "consumer_disputed:is_label"),
    ],
)
def test_a_row_breaking_a_rule_is_rejected_with_that_rule(
    fields: dict[str, str], rule: str
) -> None:
    rules = _rules(raw_day(DAY, csv_line(**fields)))
    assert len(rules) == 1
    assert rule in rules[0]


def test_a_row_breaking_several_rules_lists_them_all() -> None:
    (rules,) = _rules(raw_day(DAY, csv_line(State="ZZ", ZIP_code="1")))
    assert set(rules.split("; ")) == {"state:isin", "zip_code:str_matches"}


def test_masked_zip_codes_and_missing_states_and_labels_are_valid() -> None:
    raw = raw_day(
        DAY,
        csv_line(ZIP_code="021XX", Complaint_ID="1"),
        csv_line(ZIP_code="XXXXX", State="", Complaint_ID="2"),
        csv_line(Consumer_disputed="", Complaint_ID="3"),
        csv_line(Consumer_disputed="N/A", Complaint_ID="4"),
    )
    result = split_valid_rejected(raw)
    assert len(result.valid) == 4
    assert result.valid["consumer_disputed"].isna().sum() == 2  # unlabelled rows are kept


def test_duplicates_by_complaint_id_keep_the_first_valid_row() -> None:
    raw = raw_day(DAY, csv_line(State="ZZ"), csv_line(), csv_line(Company="Bank B"))
    result = split_valid_rejected(raw)
    assert list(result.valid["company"]) == ["Bank A"]
    assert list(result.valid["source_line"]) == [3]
    assert list(result.rejected["failed_rules"]) == ["state:isin", DUPLICATE_RULE]


def test_a_truncated_record_is_rejected_with_its_original_text() -> None:
    raw = raw_day(DAY, csv_line(), "01/05/2016,Mortgage,Conv")
    result = split_valid_rejected(raw)
    rejected = result.rejected.iloc[0]
    assert "parse_error:well_formed_record" in rejected["failed_rules"]
    assert rejected["raw_record"] == "01/05/2016,Mortgage,Conv"


def test_an_empty_day_gives_empty_typed_tables() -> None:
    result = split_valid_rejected(raw_day(DAY))
    assert result.valid.empty and result.rejected.empty
    assert typed_contract_failures(result.valid).empty


@pytest.mark.real_data
@pytest.mark.parametrize(
    "name",
    [
        "cfpb_export_2013_2017_labeled.csv",
        "snake_case_2013_labeled.csv",
        "snake_case_2012_2017_with_narratives.csv",
    ],
)
def test_every_real_extract_reconciles(real_data_dir: Path, name: str) -> None:
    raw = read_complaints_csv((real_data_dir / name).read_bytes(), name)
    raw["ingestion_date"] = pd.to_datetime(raw["date_received"].map(parse_cfpb_date)).astype(
        "datetime64[ns]"
    )
    result = split_valid_rejected(raw)
    assert len(result.valid) + len(result.rejected) == len(raw)
    assert len(result.rejected) <= 0.01 * len(raw)  # real exports are mostly clean
    assert typed_contract_failures(result.valid).empty
