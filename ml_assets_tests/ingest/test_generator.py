"""Tests of the seeded synthetic CFPB complaint generator."""

from __future__ import annotations

import gzip
import io
import math
import zipfile
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from ml_assets.columns import CANONICAL_COLUMNS
from ml_assets.ingest.cfpb_format import parse_cfpb_date, read_complaints_csv
from ml_assets.ingest.cfpb_vocabulary import (
    OFFICIAL_HEADER,
    PRODUCT_VOCABULARY,
    STATE_CODES,
    ZIP_CODE_PATTERN,
)
from ml_assets.ingest.generator import (
    DISPUTE_PHRASES,
    DRIFT_WORDS,
    PHRASE_RATES,
    Drift,
    NarrativeSignal,
    compile_model,
    generate_day,
    generate_export,
    generate_landing,
    label_delay,
    rows_by_day,
    rows_for_day,
)
from ml_assets.ingest.profile import load_profile
from ml_assets.privacy import find_pii

DAY = date(2016, 3, 1)


def parse(text: str, source: str = "synthetic.csv") -> pd.DataFrame:
    """A generated file read back with the production reader."""
    return read_complaints_csv(text.encode("utf-8"), source)


@pytest.fixture(scope="module")
def many_rows() -> pd.DataFrame:
    """20,000 generated rows over 40 days."""
    frames = [
        parse(generate_day(DAY + timedelta(days=i), 500, seed=3), f"d{i}.csv") for i in range(40)
    ]
    return pd.concat(frames, ignore_index=True)


def labels(frame: pd.DataFrame) -> pd.Series:
    """The dispute label as 1.0/0.0, NaN when missing."""
    return frame["consumer_disputed"].map({"Yes": 1.0, "No": 0.0}).astype(float)


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


def test_day_parses_into_canonical_schema_with_valid_rows() -> None:
    frame = parse(generate_day(DAY, 300, seed=5))
    assert len(frame) == 300
    assert set(CANONICAL_COLUMNS) <= set(frame.columns)
    assert frame["parse_error"].isna().all()
    assert frame["product"].isin(PRODUCT_VOCABULARY).all()
    assert frame["state"].isin(STATE_CODES).all()
    assert frame["zip_code"].str.fullmatch(ZIP_CODE_PATTERN.strip("^$")).all()
    assert (frame["date_received"].map(parse_cfpb_date) == DAY).all()
    sent = frame["date_sent_to_company"].map(parse_cfpb_date)
    assert (sent >= DAY).all()
    assert frame["date_received"].str.fullmatch(r"\d{1,2}/\d{1,2}/\d{4}").all()
    assert frame["timely_response"].isin(["Yes", "No"]).all()
    assert frame["consumer_disputed"].dropna().isin(["Yes", "No"]).all()
    assert frame["complaint_id"].str.fullmatch(r"\d+").all()
    assert frame["complaint_id"].is_unique


def test_complaint_ids_do_not_collide_across_days() -> None:
    ids = pd.concat(
        [
            parse(generate_day(DAY + timedelta(days=i), 300, seed=1))["complaint_id"]
            for i in range(3)
        ]
    )
    assert ids.is_unique


def test_a_day_does_not_depend_on_other_days(tmp_path: Path) -> None:
    alone = generate_landing(tmp_path / "a", DAY + timedelta(days=2), 1, 100, seed=4)
    within = generate_landing(tmp_path / "b", DAY, 3, 100, seed=4)
    assert alone[0].read_bytes() == within[2].read_bytes()


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


def test_dispute_rate_is_close_to_the_real_one(many_rows: pd.DataFrame) -> None:
    rate = labels(many_rows).mean()
    assert 0.17 <= rate <= 0.23
    missing = labels(many_rows).isna().mean()
    assert 0 < missing < 0.05


def test_dispute_rate_varies_by_company_response(many_rows: pd.DataFrame) -> None:
    by_response = labels(many_rows).groupby(many_rows["company_response"]).mean()
    assert by_response["Closed with monetary relief"] < by_response["Closed with explanation"]


def test_narrative_wording_carries_dispute_signal(many_rows: pd.DataFrame) -> None:
    narrative = many_rows["consumer_complaint_narrative"].fillna("")
    assert 0.3 <= (narrative != "").mean() <= 0.5
    has_phrase = narrative.map(lambda t: any(p in t for p in DISPUTE_PHRASES))
    with_phrase = labels(many_rows)[has_phrase].mean()
    without_phrase = labels(many_rows)[(narrative != "") & ~has_phrase].mean()
    assert with_phrase > without_phrase + 0.1
    # A signal, not a giveaway: many rows with a dispute phrase are not disputed.
    assert with_phrase < 0.8


def test_the_default_signal_keeps_the_fitted_phrase_rates_exactly() -> None:
    signal = NarrativeSignal()
    assert {key: signal.phrase_rate(*key) for key in PHRASE_RATES} == PHRASE_RATES


@pytest.mark.parametrize("kind", ["dispute", "resolved"])
def test_signal_strength_scales_the_log_ratio_of_phrase_rates(kind: str) -> None:
    def log_ratio(strength: float) -> float:
        signal = NarrativeSignal(strength=strength)
        return math.log(signal.phrase_rate(True, kind) / signal.phrase_rate(False, kind))

    assert log_ratio(0.0) == pytest.approx(0.0, abs=1e-12)
    assert log_ratio(2.0) == pytest.approx(2 * log_ratio(1.0))


def test_a_stronger_signal_makes_wording_more_telling() -> None:
    def dispute_rate_gap(signal: NarrativeSignal) -> float:
        days = [DAY + timedelta(days=i) for i in range(10)]
        rows = pd.concat(
            [parse(generate_day(d, 400, seed=3, signal=signal), f"{d}.csv") for d in days]
        )
        narrative = rows["consumer_complaint_narrative"].fillna("")
        has_phrase = narrative.map(lambda t: any(p in t for p in DISPUTE_PHRASES))
        label = labels(rows)
        return label[has_phrase].mean() - label[(narrative != "") & ~has_phrase].mean()

    none, default, strong = (dispute_rate_gap(NarrativeSignal(strength=s)) for s in (0, 1, 2))
    assert abs(none) < 0.05 < default < strong - 0.1


@pytest.mark.parametrize(
    ("share", "strength", "message"),
    [(1.5, 1.0, "narrative share"), (0.4, -1.0, "signal strength")],
)
def test_an_impossible_signal_is_refused(share: float, strength: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NarrativeSignal(share=share, strength=strength)


def test_narratives_carry_masked_and_some_unmasked_pii(many_rows: pd.DataFrame) -> None:
    narrative = many_rows["consumer_complaint_narrative"].dropna()
    assert narrative.str.contains("XXXX", regex=False).mean() > 0.5
    assert narrative.str.contains(r"XX/XX/(?:XXXX|\d{4})").any()
    assert narrative.str.contains(r"\$XXXX", regex=True).any()
    unmasked = narrative.map(lambda text: bool(find_pii(text))).mean()
    assert 0.01 < unmasked < 0.08


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


def test_rows_for_day_never_zero() -> None:
    assert rows_for_day(DAY, 1) == 1
    assert rows_for_day(DAY, 0) == 0
    assert all(rows_for_day(DAY + timedelta(days=i), 2) >= 1 for i in range(7))


def test_zip_codes_look_real() -> None:
    zips = parse(generate_day(DAY, 500, seed=1))["zip_code"]
    assert zips.str.fullmatch(r"\d{3}XX").any() and zips.str.fullmatch(r"\d{5}").any()


# --- the full-history export --------------------------------------------------------------------


def test_rows_by_day_add_up_grow_over_the_years_and_dip_at_weekends() -> None:
    plan = rows_by_day(date(2011, 12, 1), date(2026, 11, 29), 5_000_000)
    counts = pd.Series({day: n for day, n in plan})
    assert counts.sum() == 5_000_000
    by_year = counts.groupby([d.year for d in counts.index]).mean()
    assert by_year[2025] > 20 * by_year[2012]
    assert by_year.is_monotonic_increasing
    weekday = counts.groupby([d.weekday() for d in counts.index]).mean()
    assert weekday[6] < weekday[1]


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


def test_late_labels_land_first_without_and_then_with_labels(tmp_path: Path) -> None:
    start, days, delay = date(2016, 3, 1), 12, (2, 5)
    first_as_of = start + timedelta(days=days)  # the day after the last day
    later_as_of = first_as_of + timedelta(days=3)
    waits = {
        start + timedelta(days=i): label_delay(7, start + timedelta(days=i), delay)
        for i in range(days)
    }
    assert set(waits.values()) <= set(range(2, 6)) and len(set(waits.values())) > 1
    assert label_delay(7, start, delay) == waits[start]  # seeded: the same on every call

    def land(root: Path, as_of: date | None, delays: tuple[int, int] | None) -> dict[date, bytes]:
        paths = generate_landing(root, start, days, 30, 7, label_delay_days=delays, as_of=as_of)
        return {start + timedelta(days=i): p.read_bytes() for i, p in enumerate(paths)}

    published = land(tmp_path / "published", None, None)
    first = land(tmp_path / "live", first_as_of, delay)
    for day, text in first.items():
        labels = set(parse(text.decode())["consumer_disputed"].dropna())
        if day + timedelta(days=waits[day]) < first_as_of:
            assert text == published[day], day
        else:
            # Published without labels: every dispute field empty, everything else the same.
            assert labels == set(), day
            assert text != published[day]
            assert len(parse(text.decode())) == len(parse(published[day].decode()))
    later = land(tmp_path / "live", later_as_of, delay)
    changed = {day for day in first if later[day] != first[day]}
    assert changed == {
        day
        for day, wait in waits.items()
        if first_as_of <= day + timedelta(days=wait) < later_as_of
    }
    assert changed and all(later[day] == published[day] for day in changed)
    with pytest.raises(ValueError, match="needs as_of"):
        generate_landing(tmp_path / "x", start, 1, 10, 7, label_delay_days=delay)


def test_drift_changes_days_from_its_start_and_leaves_earlier_days_byte_identical() -> None:
    drift = Drift(date(2016, 3, 2))
    before, after = date(2016, 3, 1), date(2016, 3, 2)
    assert generate_day(before, 500, 7, drift=drift) == generate_day(before, 500, 7)
    plain = pd.read_csv(io.StringIO(generate_day(after, 2000, 7)), dtype=str)
    drifted = pd.read_csv(io.StringIO(generate_day(after, 2000, 7, drift=drift)), dtype=str)
    usual = (plain["Product"] == drift.product).mean()
    # Half of the complaints moved to the product, on top of its usual share of the rest.
    assert (drifted["Product"] == drift.product).mean() == pytest.approx(
        drift.product_share + (1 - drift.product_share) * usual, abs=0.03
    )
    new_issue = drifted["Issue"] == drift.issue
    assert new_issue.mean() == pytest.approx(drift.issue_share, abs=0.03)
    assert not (plain["Issue"] == drift.issue).any()
    disputed = drifted["Consumer disputed?"] == "Yes"
    # The new issue is disputed far more often than the others (logit +2.5).
    assert disputed[new_issue].mean() > disputed[~new_issue].mean() + 0.3
    words = {w for text in drifted["Consumer complaint narrative"].dropna() for w in text.split()}
    assert len(words & set(DRIFT_WORDS)) >= len(DRIFT_WORDS) // 2
    model = compile_model(load_profile())
    known = {str(w) for dist in model.vocabulary.values() for w in dist.values}
    assert not known & set(DRIFT_WORDS)  # new to every product's vocabulary


def test_drift_shares_are_checked() -> None:
    with pytest.raises(ValueError, match="product_share must be in"):
        Drift(date(2016, 3, 2), product_share=1.5)
