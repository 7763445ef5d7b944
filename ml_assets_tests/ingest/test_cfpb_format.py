from datetime import date

import pandas as pd
import pytest

from ml_assets.columns import CANONICAL_COLUMNS
from ml_assets.ingest.cfpb_format import (
    LandingFileError,
    canonical_header,
    cfpb_dates_parse,
    cfpb_timestamps,
    derived_complaint_id,
    parse_cfpb_date,
    read_complaints_csv,
    read_landing_day,
    restore_zip_code,
)
from ml_assets.ingest.cfpb_vocabulary import OFFICIAL_HEADER
from ml_assets.ingest.validation import split_valid_rejected
from ml_assets_tests.factories import csv_file, csv_line

OFFICIAL = ",".join(f'"{h}"' if "," in h else h for h in OFFICIAL_HEADER)
ROW = (
    '01/05/2016,Credit card,,Billing disputes,,"I was charged twice.\nStill not fixed.",,Bank A,'
    "MA,2134,,Consent provided,Web,01/06/2016,Closed with explanation,Yes,No,1700001"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2016-01-05", date(2016, 1, 5)),
        ("1/5/2016", date(2016, 1, 5)),
        ("01/05/2016", date(2016, 1, 5)),
        ("2016-01-05T00:00:00", date(2016, 1, 5)),
        ("2016-01-05 13:45", date(2016, 1, 5)),
        ("1/5/2016 00:00:00", date(2016, 1, 5)),
        ("2016-01-05T00:00:00.000000", date(2016, 1, 5)),
        ("1/5/2016 garbage", None),
        ("2016-01-05Tjunk", None),
        ("2016-01-05T", None),
        ("2016-01-05 25:00", None),
        ("2016-01-05T00:00:00Z", None),
        ("2016-13-45", None),
        ("yesterday", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_cfpb_date(text: str | None, expected: date | None) -> None:
    assert parse_cfpb_date(text) == expected


@pytest.mark.parametrize(
    ("raw", "restored"),
    [
        ("2134", "02134"),
        ("716", "00716"),
        ("02134", "02134"),
        ("021XX", "021XX"),
        ("21XX", "021XX"),
        ("85-XX", "85-XX"),
        ("12", "12"),
    ],
)
def test_restore_zip_code(raw: str, restored: str) -> None:
    assert restore_zip_code(raw) == restored


def test_official_and_snake_case_headers_map_to_the_canonical_schema() -> None:
    assert sorted(canonical_header(list(OFFICIAL_HEADER), "f.csv")) == sorted(CANONICAL_COLUMNS)
    aliases = {
        "zip_code": "zipcode",
        "consumer_disputed": "consumer_disputed?",
        "company_response": "company_response_to_consumer",
    }
    snake = [aliases.get(c, c) for c in CANONICAL_COLUMNS]
    assert sorted(canonical_header(snake, "f.csv")) == sorted(CANONICAL_COLUMNS)


def test_a_header_in_another_layout_names_what_it_lacks_and_what_it_does_not_know() -> None:
    with pytest.raises(LandingFileError) as excinfo:
        canonical_header(["Date received", "Product", "Colour"], "odd.csv")
    message = str(excinfo.value)
    assert "odd.csv" in message
    assert "'zip_code'" in message and "'consumer_disputed'" in message
    assert "'Colour'" in message


def test_reading_keeps_quoted_newlines_in_one_row_and_counts_physical_lines() -> None:
    data = f"{OFFICIAL}\n{ROW}\n{ROW.replace('1700001', '1700002')}\n".encode()
    frame = read_complaints_csv(data, "2016-01-05/a.csv")
    assert list(frame["complaint_id"]) == ["1700001", "1700002"]
    assert list(frame["source_line"]) == [2, 4]  # the first record spans lines 2-3
    assert frame.loc[0, "consumer_complaint_narrative"] == "I was charged twice.\nStill not fixed."
    assert frame.loc[0, "zip_code"] == "02134"  # leading zero restored
    assert frame["parse_error"].isna().all()


def test_a_truncated_last_line_is_kept_with_its_text_and_flagged() -> None:
    data = f"{OFFICIAL}\n{ROW}\n01/05/2016,Mortgage,Conventional".encode()
    frame = read_complaints_csv(data, "a.csv")
    assert len(frame) == 2
    assert frame.loc[1, "parse_error"] == "expected 18 fields, found 3"
    assert frame.loc[1, "raw_record"] == "01/05/2016,Mortgage,Conventional"
    assert frame.loc[1, "product"] == "Mortgage"


def test_rows_without_complaint_id_get_a_stable_id_from_file_and_line() -> None:
    header = ",".join(h for h in OFFICIAL_HEADER if h != "Complaint ID")
    row = ROW.rsplit(",", 1)[0]
    data = f"{header}\n{row}\n".encode()
    frame = read_complaints_csv(data, "complaints/2016-01-05/export.csv")
    # The day folder is part of the id: every day file of one export has a line 2.
    assert frame.loc[0, "complaint_id"] == "2016-01-05/export-L2"
    other_day = read_complaints_csv(data, "complaints/2016-01-06/export.csv")
    assert other_day.loc[0, "complaint_id"] == "2016-01-06/export-L2"


def test_a_derived_id_without_a_folder_is_file_and_line() -> None:
    assert derived_complaint_id("export.csv", 7) == "export-L7"
    assert derived_complaint_id("2016-01-05/export.csv", 7) == "2016-01-05/export-L7"


def _records(count: int, bad: int | None = None, multiline: int | None = None) -> list[str]:
    records = []
    for number in range(1, count + 1):
        fields = {"Complaint_ID": str(1_700_000 + number)}
        if number == bad:
            fields["Company"] = '"Bank A'  # an opening quote that is never closed
        if number == multiline:
            fields["Consumer_complaint_narrative"] = "Charged twice.\nStill not fixed."
        records.append(csv_line(**fields))
    return records


def test_an_unclosed_quote_costs_one_row_not_the_rest_of_the_file() -> None:
    data = csv_file(*_records(101, bad=51, multiline=60)).encode()
    raw = read_landing_day([("complaints/2016-01-05/a.csv", data)], "2016-01-05")
    assert len(raw) == 101
    result = split_valid_rejected(raw)
    assert len(result.valid) == 100 and len(result.rejected) == 1
    bad = result.rejected.iloc[0]
    assert bad["source_line"] == 52  # record 51 follows the header on line 1
    assert bad["parse_error"] == "expected 18 fields, found 8"  # Company runs to the end
    assert bad["raw_record"] == _records(101, bad=51)[50]
    # Lines stay physical: record 60 spans lines 61-62, so record 61 starts on line 63.
    lines = dict(zip(raw["complaint_id"], raw["source_line"], strict=True))
    assert lines["1700050"] == 51 and lines["1700052"] == 53
    assert lines["1700060"] == 61 and lines["1700061"] == 63
    narrative = raw.loc[raw["complaint_id"] == "1700060", "consumer_complaint_narrative"]
    assert narrative.tolist() == ["Charged twice.\nStill not fixed."]


def test_an_unclosed_quote_running_past_the_csv_field_limit_still_reads_the_file() -> None:
    # 2,000 records of about 130 bytes: the swallowed field outgrows csv's 128 KiB limit.
    data = csv_file(*_records(2000, bad=3)).encode()
    frame = read_complaints_csv(data, "2016-01-05/big.csv")
    assert len(frame) == 2000
    assert frame["parse_error"].notna().sum() == 1
    assert frame.loc[frame["parse_error"].notna(), "source_line"].tolist() == [4]


def test_an_empty_file_fails_naming_the_file() -> None:
    with pytest.raises(LandingFileError, match=r"empty\.csv: the file is empty"):
        read_complaints_csv(b"", "empty.csv")


def test_a_header_only_file_has_no_rows() -> None:
    frame = read_complaints_csv(f"{OFFICIAL}\n".encode(), "header.csv")
    assert frame.empty
    assert list(frame.columns[: len(CANONICAL_COLUMNS)]) == list(CANONICAL_COLUMNS)


def test_a_latin1_file_fails_naming_the_file_the_line_and_the_fix() -> None:
    data = f"{OFFICIAL}\n{ROW.replace('Bank A', 'Banco Español')}\n".encode("latin-1")
    with pytest.raises(LandingFileError) as excinfo:
        read_complaints_csv(data, "2016-01-05/latin.csv")
    assert "2016-01-05/latin.csv: not valid UTF-8" in str(excinfo.value)
    assert "line 3" in str(excinfo.value)  # the company field follows a two-line narrative
    assert "--encoding latin-1" in str(excinfo.value)


def test_a_day_of_several_files_is_tagged_with_the_partition_date() -> None:
    one = f"{OFFICIAL}\n{ROW}\n".encode()
    two = f"{OFFICIAL}\n{ROW.replace('1700001', '1700009')}\n".encode()
    frame = read_landing_day([("b.csv", two), ("a.csv", one)], "2016-01-05")
    assert list(frame["source_file"]) == ["a.csv", "b.csv"]
    assert (frame["ingestion_date"] == "2016-01-05").all()
    assert str(frame["ingestion_date"].dtype) == "datetime64[ns]"


DATE_FORMS = [
    "2016-01-05",
    "1/5/2016",
    "01/05/2016",
    "1/5/16",
    "2016-1-5",
    " 2016-01-05 ",
    "2016-01-05T00:00:00",
    "2016-01-05 13:45",
    "2016-01-05T24:00",
    "2016-01-05T10:00:00.123456",
    "2016-01-05Z",
    "2016-13-05",
    "13/45/2016",
    "2/30/2016",
    "2/29/2016",
    "2/29/2015",
    "1500-01-01",
    "9999-12-31",
    "0001-01-01",
    "yesterday",
    "",
    "   ",
    "2016/01/05",
    "05.01.2016",
    "1/5/216",
    "1/5/20161",
    "2016-01-05\n",
    "\uff17/5/2016",  # a full-width digit: strptime reads Unicode digits
    "2016-01-05T10:00 extra",
    "1/5/2016 10:00",
    "12/31/99",
    "1/1/00",
]


def test_column_date_parsing_is_the_scalar_parser_on_every_form() -> None:
    values = pd.Series([*DATE_FORMS, None, pd.NA], dtype="string")
    expected = [parse_cfpb_date(v) if isinstance(v, str) else None for v in values]
    parsed = cfpb_timestamps(values)
    in_range = [d if d is not None and 1678 <= d.year <= 2261 else None for d in expected]
    assert [None if pd.isna(t) else t.date() for t in parsed] == in_range
    assert cfpb_dates_parse(values).tolist() == [
        d is not None or not isinstance(v, str) for v, d in zip(values, expected, strict=True)
    ]
