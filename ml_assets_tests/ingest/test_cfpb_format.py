from datetime import date

import pytest

from ml_assets.constants import CANONICAL_COLUMNS, OFFICIAL_HEADER
from ml_assets.ingest.cfpb_format import (
    LandingFileError,
    canonical_header,
    parse_cfpb_date,
    read_complaints_csv,
    read_landing_day,
    restore_zip_code,
)

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
    frame = read_complaints_csv(f"{header}\n{row}\n".encode(), "2016-01-05/export.csv")
    assert frame.loc[0, "complaint_id"] == "export-L2"


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
