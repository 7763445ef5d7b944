"""pyarrow reads plainly well-formed files; what it returns is exactly the csv-module reader's."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ml_assets.ingest.cfpb_format import (
    _read_record_by_record,
    _well_formed_records,
    cast_raw_frame,
    decode_landing_bytes,
    read_complaints_csv,
)
from ml_assets.ingest.cfpb_vocabulary import OFFICIAL_HEADER
from ml_assets.ingest.landing import land_cfpb_export
from ml_assets.synthetic.export import generate_landing
from ml_assets_tests.factories import csv_file, csv_line
from ml_assets_tests.ingest.malformed_corpus import CORPUS

REAL_EXTRACTS = (
    "cfpb_export_2013_2017_labeled.csv",
    "snake_case_2012_2017_with_narratives.csv",
    "snake_case_2013_labeled.csv",
)


def _both_ways(data: bytes, source: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    text = decode_landing_bytes(data, source)
    return read_complaints_csv(data, source), cast_raw_frame(_read_record_by_record(text, source))


def _day_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.csv") if "_unroutable" not in p.parts)


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_every_malformed_file_reads_as_the_record_by_record_reader_reads_it(name: str) -> None:
    fast, plain = _both_ways(CORPUS[name], f"2016-01-05/{name}")
    pd.testing.assert_frame_equal(fast, plain)


def _read_fast(root: Path) -> dict[str, bool]:
    """Each day file under a landing root: read the same both ways, and whether pyarrow read it."""
    fast = {}
    for path in _day_files(root):
        data = path.read_bytes()
        source = f"{path.parent.name}/{path.name}"
        pd.testing.assert_frame_equal(*_both_ways(data, source))
        fast[source] = _well_formed_records(decode_landing_bytes(data, source)) is not None
    return fast


def test_day_files_of_the_corpus_and_of_the_generator_read_the_same(tmp_path: Path) -> None:
    for name, data in CORPUS.items():
        export = tmp_path / name
        export.write_bytes(data)
        land_cfpb_export(export, tmp_path / "landed")
    generate_landing(tmp_path / "generated", pd.Timestamp("2016-02-01").date(), 3, 200, seed=4)
    landed, generated = _read_fast(tmp_path / "landed"), _read_fast(tmp_path / "generated")
    assert len(generated) == 3 and all(generated.values())
    # Day files holding a malformed record keep it as it was: those take the csv-module reader.
    slow = [name for name, fast in landed.items() if not fast]
    assert len(landed) > 300 and 0 < len(slow) < 10, slow


def test_quoted_newlines_move_the_line_numbers_of_the_records_after_them() -> None:
    data = csv_file(
        csv_line(Complaint_ID="1", Issue="two\nlines"),
        csv_line(Complaint_ID="2", Consumer_complaint_narrative="three\n\nlines"),
        csv_line(Complaint_ID="3"),
    ).encode()
    assert _well_formed_records(data.decode()) is not None
    fast, plain = _both_ways(data, "2016-01-05/a.csv")
    pd.testing.assert_frame_equal(fast, plain)
    assert fast["source_line"].tolist() == [2, 4, 7]


@pytest.mark.real_data
@pytest.mark.parametrize("name", REAL_EXTRACTS)
def test_the_real_extracts_and_their_day_files_read_the_same_both_ways(
    name: str, real_data_dir: Path, tmp_path: Path
) -> None:
    data = (real_data_dir / name).read_bytes()
    pd.testing.assert_frame_equal(*_both_ways(data, name))
    land_cfpb_export(real_data_dir / name, tmp_path)
    for path in _day_files(tmp_path)[:200]:
        pd.testing.assert_frame_equal(*_both_ways(path.read_bytes(), path.name))


@pytest.mark.parametrize(
    ("layout", "ids"),
    [
        ("{h}\n{a}\n{b}\n\n", ["1", "2"]),
        ("{h}\n{a}\n\n{b}\n", ["1", "2"]),
        ("{h}\r\n{a}\r\n\r\n{b}\r\n", ["1", "2"]),
        ("{h}\n\n", []),
    ],
    ids=["trailing-blank", "blank-between", "crlf-blank", "header-and-blank"],
)
def test_blank_lines_are_no_records_either_way(layout: str, ids: list[str]) -> None:
    data = layout.format(
        h=",".join(OFFICIAL_HEADER), a=csv_line(Complaint_ID="1"), b=csv_line(Complaint_ID="2")
    )
    fast, plain = _both_ways(data.encode(), "2016-01-05/a.csv")
    pd.testing.assert_frame_equal(fast, plain)
    assert fast["complaint_id"].tolist() == ids


def test_a_field_longer_than_the_csv_modules_limit_reads_the_same_both_ways() -> None:
    data = csv_file(csv_line(Complaint_ID="1", Consumer_complaint_narrative="x" * 140_000))
    fast, plain = _both_ways(data.encode(), "2016-01-05/a.csv")
    pd.testing.assert_frame_equal(fast, plain)
