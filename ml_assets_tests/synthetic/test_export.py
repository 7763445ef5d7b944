"""Writing the synthetic world: byte-identical days, the landing layout, full-history exports."""

from __future__ import annotations

import gzip
import zipfile
from datetime import date, timedelta
from pathlib import Path

import pytest

from ml_assets.ingest.cfpb_format import parse_cfpb_date, read_complaints_csv
from ml_assets.ingest.cfpb_vocabulary import (
    OFFICIAL_HEADER,
)
from ml_assets.synthetic.export import generate_day, generate_export, generate_landing
from ml_assets.synthetic.volume import rows_by_day, rows_for_day
from ml_assets_tests.synthetic.read_back import DAY, parse


def test_same_seed_gives_identical_bytes() -> None:
    assert generate_day(DAY, 200, seed=1) == generate_day(DAY, 200, seed=1)
    assert generate_day(DAY, 200, seed=1, defect_rate=0.1) == generate_day(
        DAY, 200, seed=1, defect_rate=0.1
    )


def test_different_seed_or_day_gives_different_content() -> None:
    assert generate_day(DAY, 200, seed=1) != generate_day(DAY, 200, seed=2)
    assert generate_day(DAY, 200, seed=1) != generate_day(DAY + timedelta(days=1), 200, seed=1)


def test_header_and_line_endings_are_the_official_export() -> None:
    text = generate_day(DAY, 50, seed=1)
    assert text.split("\n", 1)[0] == ",".join(OFFICIAL_HEADER)
    assert "\r" not in text
    assert text.endswith("\n")


def test_a_day_does_not_depend_on_other_days(tmp_path: Path) -> None:
    alone = generate_landing(tmp_path / "a", DAY + timedelta(days=2), 1, 100, seed=4)
    within = generate_landing(tmp_path / "b", DAY, 3, 100, seed=4)
    assert alone[0].read_bytes() == within[2].read_bytes()


def test_landing_layout_and_row_counts(tmp_path: Path) -> None:
    paths = generate_landing(tmp_path, DAY, 7, 100, seed=1)
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == [
        f"complaints/{(DAY + timedelta(days=i)).isoformat()}/synthetic.csv" for i in range(7)
    ]
    counts = [len(parse(p.read_text(encoding="utf-8"))) for p in paths]
    assert counts == [rows_for_day(DAY + timedelta(days=i), 100) for i in range(7)]
    assert all(90 <= c <= 110 for c in counts) and len(set(counts)) > 1
    assert not list(tmp_path.rglob("*.tmp"))


def test_rewriting_leaves_bytes_identical(tmp_path: Path) -> None:
    first = [p.read_bytes() for p in generate_landing(tmp_path, DAY, 3, 50, seed=8)]
    second = [p.read_bytes() for p in generate_landing(tmp_path, DAY, 3, 50, seed=8)]
    assert first == second


def test_an_export_holds_each_days_complaints_as_generate_day_writes_them(tmp_path: Path) -> None:
    start, end = date(2016, 4, 1), date(2016, 4, 20)
    export = tmp_path / "complaints.csv"
    summary = generate_export(export, 4000, start, end, seed=11, defect_rate=0.05)
    lines = export.read_text().splitlines(keepends=True)
    assert lines[0] == generate_day(start, 0, seed=11)  # the official header, once
    body = lines[1:]
    for day, count in rows_by_day(start, end, 4000):
        day_text = generate_day(day, count, seed=11, defect_rate=0.05).splitlines(keepends=True)
        ours, body = body[:count], body[count:]
        if day == end:
            assert ours[:-1] == day_text[1:-1]  # only the export's last record may be cut
        else:
            # The same records; a truncation the day would have had is not applied mid-file.
            assert ours[:-1] == day_text[1:-1] and ours[-1].endswith("\n")
    assert body == []
    assert summary.rows == 4000 and summary.days == 20


def test_an_export_is_the_same_with_any_number_of_workers_and_in_any_archive(
    tmp_path: Path,
) -> None:
    args = (6000, date(2013, 1, 1), date(2013, 3, 31))
    generate_export(tmp_path / "one.csv", *args, seed=4, workers=1)
    generate_export(tmp_path / "two.csv", *args, seed=4, workers=2)
    generate_export(tmp_path / "complaints.csv.zip", *args, seed=4, workers=2)
    generate_export(tmp_path / "complaints.csv.gz", *args, seed=4)
    data = (tmp_path / "one.csv").read_bytes()
    assert (tmp_path / "two.csv").read_bytes() == data
    with zipfile.ZipFile(tmp_path / "complaints.csv.zip") as archive:
        assert archive.namelist() == ["complaints.csv"]
        assert archive.read("complaints.csv") == data
    assert gzip.decompress((tmp_path / "complaints.csv.gz").read_bytes()) == data
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "complaints.csv.gz",
        "complaints.csv.zip",
        "one.csv",
        "two.csv",
    ]  # no temporary file left


def test_days_after_labels_until_carry_no_label(tmp_path: Path) -> None:
    export = tmp_path / "complaints.csv"
    generate_export(
        export, 3000, date(2017, 4, 10), date(2017, 5, 9), seed=3, labels_until=date(2017, 4, 24)
    )
    frame = read_complaints_csv(export.read_bytes(), "complaints.csv")
    received = frame["date_received"].map(parse_cfpb_date)
    late = received > date(2017, 4, 24)
    assert late.sum() > 1000 and (~late).sum() > 1000
    assert set(frame.loc[late, "consumer_disputed"]) == {"N/A"}
    assert set(frame.loc[~late, "consumer_disputed"].dropna()) == {"Yes", "No"}


def test_an_export_too_dense_for_the_id_blocks_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ask for fewer rows or a longer period"):
        generate_export(tmp_path / "x.csv", 300_000, date(2016, 1, 1), date(2016, 1, 2), seed=1)
    assert not list(tmp_path.iterdir())
