from pathlib import Path

import pandas as pd

from ml_assets.columns import CANONICAL_COLUMNS, LABEL_COLUMN, NARRATIVE_COLUMN
from ml_assets.ingest.cfpb_format import read_landing_day
from ml_assets.ingest.statistics import (
    CATEGORICAL_COLUMNS,
    TOP_CATEGORIES,
    profile_complaints,
    profile_days,
    statistic,
    statistics_markdown,
)
from ml_assets.ingest.validation import split_valid_rejected
from ml_assets.synthetic.export import generate_landing
from ml_assets_tests.factories import csv_line, raw_day

DAY = "2016-01-05"


def _valid() -> pd.DataFrame:
    raw = raw_day(
        DAY,
        csv_line(
            Complaint_ID="1",
            Consumer_disputed="Yes",
            Consumer_complaint_narrative="one two three four",
        ),
        csv_line(Complaint_ID="2", Consumer_disputed="No", Product="Mortgage", State=""),
        csv_line(Complaint_ID="3", Consumer_disputed="", Product="Mortgage"),
        csv_line(Complaint_ID="4", Consumer_disputed="No", Product="Mortgage"),
    )
    return split_valid_rejected(raw).valid


def test_profile_counts_rows_missing_values_categories_and_label_balance() -> None:
    stats = profile_complaints(_valid(), rejected_count=2, day=pd.Timestamp(DAY))
    assert statistic(stats, "*", "row_count") == 4
    assert statistic(stats, "*", "rejected_count") == 2
    assert statistic(stats, "state", "missing_rate") == 0.25
    assert statistic(stats, "product", "distinct_count") == 2
    tops = stats[(stats["column_name"] == "product") & (stats["statistic"] == "top_share")]
    assert dict(zip(tops["category"], tops["value"], strict=True)) == {
        "Mortgage": 0.75,
        "Credit card": 0.25,
    }
    assert statistic(stats, "consumer_disputed", "labelled_count") == 3
    assert abs(statistic(stats, "consumer_disputed", "positive_rate") - 1 / 3) < 1e-9
    assert statistic(stats, "consumer_complaint_narrative", "words_p50") == 4
    assert (stats["ingestion_date"] == pd.Timestamp(DAY)).all()


def test_markdown_summary_has_a_line_per_column() -> None:
    text = statistics_markdown(profile_complaints(_valid(), 0, pd.Timestamp(DAY)))
    assert "**Rows:** 4 valid, 0 rejected" in text
    assert "| product | 0.0% | 2 | Mortgage (75%), Credit card (25%) |" in text


def test_an_empty_day_profiles_without_error() -> None:
    empty = split_valid_rejected(raw_day(DAY)).valid
    stats = profile_complaints(empty, 0, pd.Timestamp(DAY))
    assert statistic(stats, "*", "row_count") == 0
    assert "**Rows:** 0 valid" in statistics_markdown(stats)


def test_the_summary_shows_each_columns_own_figures_on_a_generated_day(tmp_path: Path) -> None:
    generate_landing(tmp_path, pd.Timestamp(DAY).date(), 1, 300, seed=3)
    (landed,) = tmp_path.rglob("*.csv")
    raw = read_landing_day([(landed.name, landed.read_bytes())], DAY)
    stats = profile_complaints(split_valid_rejected(raw).valid, 7, pd.Timestamp(DAY))
    text = statistics_markdown(stats)
    assert f"**Rows:** {statistic(stats, '*', 'row_count'):.0f} valid, 7 rejected" in text
    rows = {line.split(" | ")[0][2:]: line for line in text.splitlines() if line.startswith("| ")}
    for column in CANONICAL_COLUMNS:
        tops = stats[(stats["column_name"] == column) & (stats["statistic"] == "top_share")]
        pairs = zip(tops["category"], tops["value"], strict=True)
        expected = ", ".join(f"{c} ({v:.0%})" for c, v in pairs)
        assert rows[column] == (
            f"| {column} | {statistic(stats, column, 'missing_rate'):.1%} | "
            f"{statistic(stats, column, 'distinct_count'):.0f} | {expected} |"
        )
    assert any(len(line) > 60 for line in rows.values())  # top values are shown, not left empty


def _reference_profile(valid: pd.DataFrame, rejected: int, day: pd.Timestamp) -> pd.DataFrame:
    """The figures of one day computed the plain way, column by column (the oracle)."""
    rows = [("*", "row_count", None, len(valid)), ("*", "rejected_count", None, rejected)]
    for column in CANONICAL_COLUMNS:
        missing = valid[column].isna().mean() if len(valid) else 0.0
        rows += [(column, "missing_rate", None, missing)]
        rows += [(column, "distinct_count", None, valid[column].nunique())]
    for column in CATEGORICAL_COLUMNS:
        counts = valid[column].dropna().astype(str).value_counts()
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP_CATEGORIES]
        rows += [(column, "top_share", c, n / counts.sum()) for c, n in ranked]
    words = valid[NARRATIVE_COLUMN].dropna().str.split().str.len().astype(float)
    for q in (0.1, 0.5, 0.9):
        quantile = words.quantile(q) if len(words) else 0.0
        rows += [(NARRATIVE_COLUMN, f"words_p{int(q * 100)}", None, quantile)]
    labels = valid[LABEL_COLUMN].dropna().astype(float)
    rows += [(LABEL_COLUMN, "labelled_count", None, len(labels))]
    rows += [(LABEL_COLUMN, "positive_rate", None, labels.mean() if len(labels) else None)]
    out = pd.DataFrame(rows, columns=["column_name", "statistic", "category", "value"])
    out.insert(0, "ingestion_date", day)
    return out


def test_a_range_of_days_profiles_each_day_as_the_plain_computation_does(tmp_path: Path) -> None:
    first = pd.Timestamp(DAY)
    generate_landing(tmp_path, first.date(), 4, 150, seed=5, defect_rate=0.1)
    days = [first + pd.Timedelta(days=i) for i in range(5)]  # the last day has no rows at all
    raw = pd.concat(
        [
            read_landing_day([(f.name, f.read_bytes())], f.parent.name)
            for f in sorted(tmp_path.rglob("*.csv"))
        ],
        ignore_index=True,
    )
    result = split_valid_rejected(raw)
    rejected = result.rejected.groupby("ingestion_date").size()
    stats = profile_days(result.valid, rejected, days)
    by_day = dict(iter(result.valid.groupby("ingestion_date")))
    expected = pd.concat(
        [
            _reference_profile(
                by_day.get(day, result.valid.iloc[0:0]), int(rejected.get(day, 0)), day
            )
            for day in days
        ],
        ignore_index=True,
    )
    text = {"column_name": "string", "statistic": "string", "category": "string"}
    pd.testing.assert_frame_equal(stats, expected.astype(text), check_dtype=False)
    assert statistic(stats[stats["ingestion_date"] == days[-1]], "*", "row_count") == 0
    assert (stats["statistic"] == "top_share").sum() > 5 * len(CATEGORICAL_COLUMNS)
