from pathlib import Path

import pytest

from ml_assets.ingest.cfpb_format import LandingFileError, read_complaints_csv, read_landing_day
from ml_assets.ingest.cfpb_vocabulary import OFFICIAL_HEADER
from ml_assets.ingest.landing import land_cfpb_export, landing_digest, write_atomically
from ml_assets.partitions import daily_partitions

HEADER = ",".join(f'"{h}"' if "," in h else h for h in OFFICIAL_HEADER)
HEADER_WITHOUT_ID = HEADER.removesuffix(",Complaint ID")


def _row(received: str, complaint_id: str, company: str = "Bank A") -> str:
    return (
        f"{received},Mortgage,Conventional fixed mortgage,Loan servicing,,,,{company},NJ,7030,,N/A,Web,"
        f"{received},Closed with explanation,Yes,No,{complaint_id}"
    )


def test_landing_digest_depends_on_names_and_bytes_not_order() -> None:
    a, b = ("x/a.csv", b"1"), ("x/b.csv", b"2")
    assert landing_digest([a, b]) == landing_digest([b, a])
    assert landing_digest([a, b]) != landing_digest([a, ("x/b.csv", b"3")])
    assert landing_digest([a]) != landing_digest([("x/c.csv", b"1")])


def test_write_atomically_leaves_identical_content_untouched(tmp_path: Path) -> None:
    target = tmp_path / "d" / "f.csv"
    assert write_atomically(target, b"abc") is True
    stamp = target.stat().st_mtime_ns
    assert write_atomically(target, b"abc") is False
    assert target.stat().st_mtime_ns == stamp
    assert write_atomically(target, b"abd") is True
    assert [p.name for p in target.parent.iterdir()] == ["f.csv"]  # no temporary file left


def test_land_cfpb_splits_by_day_and_loses_no_row(tmp_path: Path) -> None:
    export = tmp_path / "export.csv"
    rows = [
        _row("7/29/2013", "1"),
        _row("7/30/2013", "2"),
        _row("7/29/2013", "3"),
        _row("13/45/2013", "4"),
    ]
    export.write_text("\r\n".join([HEADER, *rows]) + "\r\n")
    landing = tmp_path / "landing"

    report = land_cfpb_export(export, landing)

    assert report.rows_read == 4
    assert report.rows_by_day == {"2013-07-29": 2, "2013-07-30": 1}
    assert report.unroutable_rows == 1
    assert "13/45/2013" in report.unroutable_file.read_text()
    day = read_complaints_csv((landing / "complaints/2013-07-29/export.csv").read_bytes(), "d.csv")
    assert list(day["complaint_id"]) == ["1", "3"]
    assert list(day["zip_code"]) == ["07030", "07030"]

    again = land_cfpb_export(export, landing)
    assert again.files_written == [] and len(again.files_unchanged) == 2


def test_land_cfpb_converts_another_encoding_to_utf8(tmp_path: Path) -> None:
    export = tmp_path / "latin.csv"
    export.write_bytes(f"{HEADER}\n{_row('2013-07-29', '1', 'Banco Español')}\n".encode("latin-1"))
    with pytest.raises(LandingFileError, match="--encoding latin-1"):
        land_cfpb_export(export, tmp_path / "landing")
    land_cfpb_export(export, tmp_path / "landing", encoding="latin-1")
    day = (tmp_path / "landing/complaints/2013-07-29/latin.csv").read_bytes()
    assert read_complaints_csv(day, "d.csv").loc[0, "company"] == "Banco Español"


def test_land_cfpb_refuses_a_file_in_another_layout(tmp_path: Path) -> None:
    export = tmp_path / "narratives.csv"
    export.write_text(",Product,Consumer complaint narrative\n1,Mortgage,text\n")
    with pytest.raises(LandingFileError, match="lacks columns"):
        land_cfpb_export(export, tmp_path / "landing")
    assert not (tmp_path / "landing").exists()


@pytest.mark.real_data
def test_land_cfpb_lands_every_real_labelled_row(real_data_dir: Path, tmp_path: Path) -> None:
    report = land_cfpb_export(real_data_dir / "cfpb_export_2013_2017_labeled.csv", tmp_path)
    assert report.rows_read == 3186
    assert report.rows_landed == 3186
    assert report.unroutable_rows == 0


def _landed(landing: Path) -> list[tuple[str, bytes]]:
    """Every landed day file as (name relative to the landing root, bytes)."""
    return sorted(
        (path.relative_to(landing).as_posix(), path.read_bytes())
        for path in (landing / "complaints").glob("*/*.csv")
    )


def _read_all(landing: Path):
    files = _landed(landing)
    return [read_landing_day([f], f[0].split("/")[1]) for f in files]


def test_an_export_without_ids_gets_ids_from_its_own_lines_unique_over_days(
    tmp_path: Path,
) -> None:
    export = tmp_path / "noids.csv"
    rows = [_row("7/29/2013", "x"), _row("7/30/2013", "x"), _row("7/29/2013", "x")]
    export.write_text("\n".join([HEADER_WITHOUT_ID, *(r.rsplit(",", 1)[0] for r in rows)]) + "\n")
    landing = tmp_path / "landing"

    land_cfpb_export(export, landing)

    frames = _read_all(landing)
    ids = {f.loc[0, "source_file"]: list(f["complaint_id"]) for f in frames}
    # The line in the export, not in the day file: both day files have a line 2.
    assert ids == {
        "complaints/2013-07-29/noids.csv": ["noids-L2", "noids-L4"],
        "complaints/2013-07-30/noids.csv": ["noids-L3"],
    }
    assert all(f["parse_error"].isna().all() for f in frames)
    before = _landed(landing)
    again = land_cfpb_export(export, landing)
    assert again.files_written == [] and _landed(landing) == before  # stable when re-landed


def test_a_snake_case_export_without_ids_gets_a_snake_case_id_column(tmp_path: Path) -> None:
    export = tmp_path / "snake.csv"
    header = "date_received,product,sub_product,issue,sub_issue,company,state,zipcode,"
    header += "submitted_via,date_sent_to_company,company_response_to_consumer,"
    header += "timely_response,consumer_disputed?"
    export.write_text(
        f"{header}\n2013-07-29,Mortgage,,Servicing,,Bank A,NJ,7030,Web,2013-07-30,Closed,Yes,No\n"
    )
    land_cfpb_export(export, tmp_path / "landing")
    day = (tmp_path / "landing/complaints/2013-07-29/snake.csv").read_text()
    assert day.splitlines()[0] == f"{header},complaint_id"
    assert read_complaints_csv(day.encode(), "d.csv").loc[0, "complaint_id"] == "snake-L2"


def test_a_malformed_record_with_a_readable_date_goes_to_its_day(tmp_path: Path) -> None:
    export = tmp_path / "export.csv"
    rows = [
        _row("7/29/2013", "1"),
        "7/29/2013,Mortgage,Conventional fixed mortgage",  # truncated: 3 fields of 18
        _row("7/29/2013", "3") + ",surplus",  # 19 fields
        "not a date,Mortgage",  # nothing tells its day
    ]
    export.write_text("\n".join([HEADER, *rows]) + "\n")
    landing = tmp_path / "landing"

    report = land_cfpb_export(export, landing)

    assert report.rows_by_day == {"2013-07-29": 3}
    assert report.unroutable_rows == 1
    assert "not a date" in report.unroutable_file.read_text()
    day = read_complaints_csv((landing / "complaints/2013-07-29/export.csv").read_bytes(), "d")
    assert list(day["parse_error"].fillna("")) == [
        "",
        "expected 18 fields, found 3",
        "expected 18 fields, found 19",
    ]


def test_an_export_without_ids_keeps_malformed_records_malformed(tmp_path: Path) -> None:
    export = tmp_path / "noids.csv"
    full = _row("7/29/2013", "x").rsplit(",", 1)[0]  # 17 fields, as the header
    short = ",".join(full.split(",")[:16])  # one field short: the id must not fill the gap
    export.write_text("\n".join([HEADER_WITHOUT_ID, full, short]) + "\n")

    land_cfpb_export(export, tmp_path / "landing")

    day = (tmp_path / "landing/complaints/2013-07-29/noids.csv").read_bytes()
    frame = read_complaints_csv(day, "complaints/2013-07-29/noids.csv")
    assert list(frame["parse_error"].fillna("")) == ["", "expected 18 fields, found 17"]
    assert frame.loc[1, "raw_record"].endswith(",noids-L3")  # still traceable to the export


def test_an_unclosed_quote_in_an_export_does_not_swallow_the_records_after_it(
    tmp_path: Path,
) -> None:
    export = tmp_path / "export.csv"
    rows = [_row("7/29/2013", str(n)) for n in range(1, 6)]
    rows[1] = rows[1].replace("Bank A", '"Bank A')  # an opening quote never closed
    rows[3] = _row("7/30/2013", "4")
    export.write_text("\n".join([HEADER, *rows]) + "\n")

    report = land_cfpb_export(export, tmp_path / "landing")

    assert report.rows_by_day == {"2013-07-29": 4, "2013-07-30": 1}
    day = read_complaints_csv(
        (tmp_path / "landing/complaints/2013-07-29/export.csv").read_bytes(), "d"
    )
    assert day["parse_error"].notna().tolist() == [False, True, False, False]


def test_days_outside_the_partitions_are_listed(tmp_path: Path) -> None:
    export = tmp_path / "export.csv"
    rows = [_row("7/29/2013", "1"), _row("11/30/2011", "2"), _row("1/1/2100", "3")]
    export.write_text("\n".join([HEADER, *rows]) + "\n")
    report = land_cfpb_export(
        export, tmp_path / "landing", is_partition=daily_partitions.has_partition_key
    )
    assert report.rows_landed == 3
    assert report.days_outside_partitions == ["2011-11-30", "2100-01-01"]
    assert land_cfpb_export(export, tmp_path / "l2").days_outside_partitions == []


@pytest.mark.real_data
def test_the_real_labelled_export_gets_ids_unique_over_all_its_days(
    real_data_dir: Path, tmp_path: Path
) -> None:
    report = land_cfpb_export(real_data_dir / "cfpb_export_2013_2017_labeled.csv", tmp_path)
    frames = _read_all(tmp_path)
    ids = [i for f in frames for i in f["complaint_id"]]
    assert report.rows_landed == len(ids) == 3186
    assert len(set(ids)) == 3186


# Names that would put day files outside their day folder (or the landing zone), or hide them
# from the landing zone's readers, which skip dot-files as writers' temporaries.
REFUSED_SOURCES = [
    "../../../../escaped",
    ".hidden",
    "..",
    "a/b",
    "a\\b",
    "",
    "nul\x00byte",
    "/tmp/absolute",
    "with space",
    "cfpb.2024",
]
ACCEPTED_SOURCES = ["cfpb_2024", "complaints", "CFPB-export-2", "x", "-dash", "2024"]


def _files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("source", REFUSED_SOURCES)
def test_a_source_that_is_not_a_simple_name_is_refused_and_nothing_is_written(
    tmp_path: Path, source: str
) -> None:
    export = tmp_path / "export.csv"
    export.write_text(f"{HEADER}\n{_row('7/29/2013', '1')}\n")
    # The day folder is four levels under tmp_path: "../../../../escaped" would land in it.
    landing = tmp_path / "home" / "landing"

    with pytest.raises(ValueError, match="letters, digits, '-' and '_'") as refused:
        land_cfpb_export(export, landing, source=source)

    assert repr(source) in str(refused.value)
    assert _files_under(tmp_path) == {export}
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize("name", [".hidden.csv", "two words.csv", "v1.2.csv.gz"])
def test_an_export_whose_file_name_is_no_source_name_needs_one(tmp_path: Path, name: str) -> None:
    export = tmp_path / name
    export.write_text(f"{HEADER}\n{_row('7/29/2013', '1')}\n")
    with pytest.raises(ValueError, match="letters, digits, '-' and '_'"):
        land_cfpb_export(export, tmp_path / "landing")
    assert _files_under(tmp_path) == {export}


@pytest.mark.parametrize("source", ACCEPTED_SOURCES)
def test_a_simple_source_name_lands_in_its_day_folder(tmp_path: Path, source: str) -> None:
    export = tmp_path / "export.csv"
    export.write_text(f"{HEADER}\n{_row('7/29/2013', '1')}\n")
    landing = tmp_path / "landing"

    report = land_cfpb_export(export, landing, source=source)

    assert report.source == source
    assert _files_under(landing) == {landing / f"complaints/2013-07-29/{source}.csv"}
    assert _files_under(tmp_path) == {export, *_files_under(landing)}
