from pathlib import Path

import pytest

from ml_assets.constants import OFFICIAL_HEADER
from ml_assets.ingest.cfpb_format import LandingFileError, read_complaints_csv
from ml_assets.ingest.landing import land_cfpb_export, landing_digest, write_atomically

HEADER = ",".join(f'"{h}"' if "," in h else h for h in OFFICIAL_HEADER)


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


def test_land_cfpb_lands_every_real_labelled_row(real_data_dir: Path, tmp_path: Path) -> None:
    report = land_cfpb_export(real_data_dir / "cfpb_export_2013_2017_labeled.csv", tmp_path)
    assert report.rows_read == 3186
    assert report.rows_landed == 3186
    assert report.unroutable_rows == 0
