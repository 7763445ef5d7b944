"""Streaming landing: the same day files as before, any archive, any published header, any layout."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import tracemalloc
import zipfile
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from ml_assets.cli import main
from ml_assets.ingest.cfpb_format import (
    LandingFileError,
    load_column_mapping,
    read_landing_day,
)
from ml_assets.ingest.cfpb_vocabulary import CFPB_HEADERS_BY_ERA, OFFICIAL_HEADER
from ml_assets.ingest.landing import LandingReport, land_cfpb_export
from ml_assets.synthetic.export import generate_export
from ml_assets_tests.ingest.malformed_corpus import CORPUS

GOLDEN = json.loads((Path(__file__).parent / "landed_digests.json").read_text())
CAMEL_CASE = Path(__file__).parents[2] / "ml_assets/ingest/column_mappings/camel_case.json"
# The spool writes to disk after this many characters: a tiny limit flushes after every row.
TINY_SPOOL = 50


def _landed(root: Path, report: LandingReport) -> dict:
    """What a landing wrote, in the form of landed_digests.json."""
    files = {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
    return {
        "rows_read": report.rows_read,
        "unroutable_rows": report.unroutable_rows,
        "files": files,
    }


@pytest.mark.parametrize("spool", [10**9, TINY_SPOOL], ids=["one-flush", "flush-per-row"])
@pytest.mark.parametrize("name", sorted(CORPUS))
def test_streaming_gives_the_same_day_files_on_the_malformed_corpus(
    name: str, spool: int, tmp_path: Path
) -> None:
    export = tmp_path / name
    export.write_bytes(CORPUS[name])
    root = tmp_path / "landing"
    report = land_cfpb_export(export, root, spool_limit_chars=spool)
    assert _landed(root, report) == GOLDEN["corpus"][name]


@pytest.mark.real_data
@pytest.mark.parametrize("name", sorted(GOLDEN["real"]))
def test_streaming_gives_the_same_day_files_on_the_real_extracts(
    name: str, real_data_dir: Path, tmp_path: Path
) -> None:
    root = tmp_path / "landing"
    report = land_cfpb_export(real_data_dir / name, root, spool_limit_chars=1000)
    assert _landed(root, report) == GOLDEN["real"][name]
    assert report.rows_landed + report.unroutable_rows == report.rows_read


def _archives(folder: Path, name: str, data: bytes) -> list[Path]:
    """The same export as .csv.zip (as the CFPB ships it) and .csv.gz."""
    zipped = folder / f"{name}.zip"
    with zipfile.ZipFile(zipped, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    gzipped = folder / f"{name}.gz"
    gzipped.write_bytes(gzip.compress(data))
    return [zipped, gzipped]


@pytest.mark.parametrize("name", ["many_days.csv", "quoted_newlines.csv", "byte_order_mark.csv"])
def test_zipped_and_gzipped_exports_land_as_the_plain_file(name: str, tmp_path: Path) -> None:
    for archive in _archives(tmp_path, name, CORPUS[name]):
        root = tmp_path / f"root-{archive.name}"
        assert _landed(root, land_cfpb_export(archive, root)) == GOLDEN["corpus"][name]


def test_an_archive_that_cannot_be_read_fails_naming_the_file_and_the_fix(tmp_path: Path) -> None:
    two = tmp_path / "two.csv.zip"
    with zipfile.ZipFile(two, "w") as archive:
        archive.writestr("a.csv", CORPUS["many_days.csv"])
        archive.writestr("b.csv", CORPUS["many_days.csv"])
    with pytest.raises(
        LandingFileError, match=r"two\.csv\.zip: a zipped export must hold exactly one"
    ):
        land_cfpb_export(two, tmp_path / "landing")
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(gzip.compress(CORPUS["many_days.csv"])[:-200])
    with pytest.raises(LandingFileError, match=r"cut\.csv\.gz: not a readable archive.*Download"):
        land_cfpb_export(cut, tmp_path / "landing")
    assert not list((tmp_path / "landing").rglob("*.csv"))  # nothing half-landed


def test_a_decoding_error_deep_in_a_stream_names_the_file_and_the_fix(tmp_path: Path) -> None:
    export = tmp_path / "late.csv"
    export.write_bytes(CORPUS["many_days.csv"] + "7/1/2013,Crédit\n".encode("latin-1"))
    with pytest.raises(LandingFileError, match=r"late\.csv: cannot be decoded.*--encoding latin-1"):
        land_cfpb_export(export, tmp_path / "landing")
    assert not list((tmp_path / "landing").rglob("*.csv"))


# --- every header the CFPB has published, and other layouts through a mapping ------------------


@pytest.fixture(scope="module")
def official_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated export in today's official layout: 3,000 complaints over 40 days, with defects."""
    path = tmp_path_factory.mktemp("export") / "official.csv"
    generate_export(path, 3000, date(2015, 1, 1), date(2015, 2, 9), seed=5, defect_rate=0.02)
    return path


def _relayout(source: Path, target: Path, header: dict[str, str | None]) -> None:
    """`source` rewritten with columns renamed by `header` (official -> new; None: left out)."""
    with source.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    official = rows[0]
    order = [name for name in header if header[name] is not None]
    with target.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow([header[name] for name in order])
        for row in rows[1:]:
            if len(row) != len(official):
                writer.writerow(row)  # a malformed record stays as it was
                continue
            fields = dict(zip(official, row, strict=True))
            writer.writerow([fields[name] for name in order])


def _all_rows(root: Path) -> pd.DataFrame:
    frames = [
        read_landing_day([(str(p.relative_to(root)), p.read_bytes())], p.parent.name)
        for p in sorted((root / "complaints").glob("*/*.csv"))
    ]
    # Ids are unique but for the generator's duplicate-id defect: the source line breaks ties.
    return pd.concat(frames, ignore_index=True).sort_values(
        ["complaint_id", "source_line"], ignore_index=True
    )


def _accounted(report: LandingReport, root: Path) -> pd.DataFrame:
    """Every row read is in a day file or among the unroutable ones; returns the day files' rows."""
    rows = _all_rows(root)
    assert report.rows_read == report.rows_landed + report.unroutable_rows
    assert len(rows) == report.rows_landed
    return rows


def test_an_export_with_the_2012_to_2014_header_lands_every_row(
    official_export: Path, tmp_path: Path
) -> None:
    old_layout = CFPB_HEADERS_BY_ERA["2012-2014"]
    renamed = {"Company response to consumer": "Company response"}
    official_for = {renamed.get(name, name): name for name in OFFICIAL_HEADER}
    old = tmp_path / "old.csv"
    _relayout(official_export, old, {official_for[name]: name for name in old_layout})
    assert old.read_text().splitlines()[0] == ",".join(old_layout)

    old_report = land_cfpb_export(old, tmp_path / "old_root", source="x")
    new_report = land_cfpb_export(official_export, tmp_path / "new_root", source="x")

    before = _accounted(old_report, tmp_path / "old_root")
    after = _accounted(new_report, tmp_path / "new_root")
    assert old_report.rows_read == new_report.rows_read == 3000
    assert old_report.rows_by_day == new_report.rows_by_day
    assert old_report.unroutable_rows == new_report.unroutable_rows > 0  # defects included
    whole = before["parse_error"].isna() & after["parse_error"].isna()
    assert whole.sum() > 2900
    shared = ["complaint_id", "date_received", "company_response", "zip_code", "consumer_disputed"]
    pd.testing.assert_frame_equal(before.loc[whole, shared], after.loc[whole, shared])
    # What the old header lacks is empty, never an error.
    for absent in ("consumer_complaint_narrative", "company_public_response", "tags"):
        assert before[absent].isna().all()
    assert after["consumer_complaint_narrative"].notna().any()


def test_a_camel_case_republication_lands_through_the_shipped_mapping(
    official_export: Path, tmp_path: Path
) -> None:
    mapping = load_column_mapping(CAMEL_CASE)
    camel = {official: name for name, official in mapping.items() if official is not None}
    republished = tmp_path / "camel.csv"
    _relayout(official_export, republished, {name: camel[name] for name in OFFICIAL_HEADER})
    with pytest.raises(LandingFileError, match=r"lacks columns.*--columns MAPPING\.json"):
        land_cfpb_export(republished, tmp_path / "refused")

    report = land_cfpb_export(republished, tmp_path / "camel", source="x", columns=mapping)
    official = land_cfpb_export(official_export, tmp_path / "official", source="x")

    # Day files carry the official names: landing the republication wrote the very same files.
    camel_files = {
        p.relative_to(tmp_path / "camel"): p for p in (tmp_path / "camel").rglob("*.csv")
    }
    official_files = {
        p.relative_to(tmp_path / "official"): p for p in (tmp_path / "official").rglob("*.csv")
    }
    assert camel_files.keys() == official_files.keys()
    assert all(camel_files[k].read_bytes() == official_files[k].read_bytes() for k in camel_files)
    _accounted(report, tmp_path / "camel")
    assert report.rows_by_day == official.rows_by_day


def test_a_mapping_can_drop_columns_and_a_missing_column_is_named(tmp_path: Path) -> None:
    export = tmp_path / "extra.csv"
    header = ["RowNumber", *OFFICIAL_HEADER]
    row = [
        "17",
        "7/29/2013",
        "Mortgage",
        "",
        "Servicing",
        "",
        "",
        "",
        "Bank A",
        "NJ",
        "07030",
        "",
        "",
        "Web",
        "7/30/2013",
        "Closed",
        "Yes",
        "No",
        "42",
    ]
    export.write_text(
        ",".join(f'"{h}"' if "," in h else h for h in header) + "\n" + ",".join(row) + "\n"
    )
    with pytest.raises(LandingFileError, match=r"does not know \['RowNumber'\]"):
        land_cfpb_export(export, tmp_path / "a")
    report = land_cfpb_export(export, tmp_path / "b", columns={"RowNumber": None})
    assert report.rows_by_day == {"2013-07-29": 1}
    day = (tmp_path / "b/complaints/2013-07-29/extra.csv").read_text().splitlines()
    assert "RowNumber" not in day[0] and day[1].startswith("7/29/2013,Mortgage")

    lacking = tmp_path / "lacking.csv"
    lacking.write_text("DateReceived,Product,Issue\n7/29/2013,Mortgage,Servicing\n")
    with pytest.raises(LandingFileError) as excinfo:
        land_cfpb_export(lacking, tmp_path / "c", columns=load_column_mapping(CAMEL_CASE))
    message = str(excinfo.value)
    assert "lacks columns ['sub_product', 'sub_issue', 'company', 'state', 'zip_code'" in message


def test_a_mapping_file_that_names_unknown_columns_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"DateReceived": "Date of receipt"}))
    with pytest.raises(
        LandingFileError, match=r"bad\.json: maps columns to names.*'Date of receipt'"
    ):
        load_column_mapping(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(LandingFileError, match=r"one JSON object"):
        load_column_mapping(bad)


# --- bounded memory ------------------------------------------------------------------------------


def _peak_bytes(export: Path, root: Path) -> int:
    tracemalloc.start()
    try:
        land_cfpb_export(export, root, spool_limit_chars=200_000)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_peak_memory_does_not_grow_with_the_export(tmp_path: Path) -> None:
    small, large = tmp_path / "small.csv", tmp_path / "large.csv"
    generate_export(small, 1_000, date(2016, 1, 1), date(2016, 1, 31), seed=2)
    generate_export(large, 8_000, date(2016, 1, 1), date(2016, 1, 31), seed=2)
    assert large.stat().st_size > 7 * small.stat().st_size
    small_peak = _peak_bytes(small, tmp_path / "s")
    large_peak = _peak_bytes(large, tmp_path / "l")
    # Eight times the rows, about the same peak: the spool's limit, not the file, sets it.
    assert large_peak < 1.5 * small_peak, (small_peak, large_peak)
    assert large_peak < large.stat().st_size / 4


def test_the_command_line_writes_a_zipped_export_and_lands_it_through_a_mapping(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = ["--home", str(tmp_path / "home")]
    export = tmp_path / "complaints.csv.zip"
    period = ["--start", "2016-01-01", "--end", "2016-01-31"]
    assert main([*home, "generate", "--export", str(export), "--rows", "2000", *period]) == 0
    assert (
        "generated 2000 complaints received 2016-01-01..2016-01-31 (31 days"
        in capsys.readouterr().out
    )
    assert main([*home, "land-cfpb", str(export)]) == 0
    out = capsys.readouterr().out
    assert (
        "complaints: read 2000 rows; landed 2000 rows in 31 day files (2016-01-01..2016-01-31)"
        in out
    )

    mapping = load_column_mapping(CAMEL_CASE)
    camel = {official: name for name, official in mapping.items() if official is not None}
    plain = tmp_path / "plain.csv"
    plain.write_bytes(zipfile.ZipFile(export).read("complaints.csv"))
    republished = tmp_path / "camel.csv"
    _relayout(plain, republished, {name: camel[name] for name in OFFICIAL_HEADER})
    assert main([*home, "land-cfpb", str(republished), "--source", "complaints"]) == 1
    assert "--columns MAPPING.json" in capsys.readouterr().err
    command = [
        "land-cfpb",
        str(republished),
        "--source",
        "complaints",
        "--columns",
        str(CAMEL_CASE),
    ]
    assert main([*home, *command]) == 0
    assert (
        "31 day files (2016-01-01..2016-01-31), 0 written, 31 unchanged" in capsys.readouterr().out
    )
