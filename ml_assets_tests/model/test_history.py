"""Point-in-time history: labels count from the day they arrived, a complaint never sees its own
day, offline and online give the same inputs, and a company never seen gets the priors."""

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml_assets.columns import INGESTION_DATE_COLUMN, LABEL_COLUMN
from ml_assets.model.features import MISSING_TOKEN
from ml_assets.model.history import (
    ARRIVED_ON,
    AS_OF,
    HISTORY_FEATURES,
    LEVEL,
    LOG_COLUMNS,
    OVERALL_LEVEL,
    SMOOTHING_WEIGHT,
    UNINFORMED_RATE,
    as_of_day,
    day_contributions,
    history_snapshots,
    join_history,
    log_label_arrivals,
)
from ml_assets.model.online_store import OnlineStore, write_online_store

NOTHING_LOGGED = pd.DataFrame(columns=list(LOG_COLUMNS))


def complaints(*rows: tuple[str, str, str, str, bool | None]) -> pd.DataFrame:
    """Validated complaints: (id, day, company, product, disputed)."""
    ids, days, companies, products, labels = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            "complaint_id": list(ids),
            INGESTION_DATE_COLUMN: pd.to_datetime(list(days)),
            "company": list(companies),
            "product": list(products),
            "timely_response": pd.array([True] * len(ids), dtype="boolean"),
            "company_response": ["Closed with explanation"] * len(ids),
            LABEL_COLUMN: pd.array(list(labels), dtype="boolean"),
        }
    )


def snapshots_of(log: pd.DataFrame, days: list[str]) -> pd.DataFrame:
    return history_snapshots(day_contributions(log), [date.fromisoformat(d) for d in days])


def test_arrivals_first_seen_with_the_day_late_on_the_landing_day_kept_when_unchanged() -> None:
    first = complaints(
        ("a", "2020-03-01", "Acme", "Loan", True),
        ("b", "2020-03-01", "Acme", "Loan", None),
        ("c", "2020-03-02", "Acme", "Loan", False),
    )
    log = log_label_arrivals(first, NOTHING_LOGGED, today=date(2020, 3, 3))
    assert log[ARRIVED_ON].isna().tolist() == [False, True, False]
    assert log.set_index("complaint_id").loc[["a", "c"], ARRIVED_ON].tolist() == [
        pd.Timestamp("2020-03-01"),
        pd.Timestamp("2020-03-02"),
    ]
    # Landed again on 2020-03-09: b's label came out, c's changed, a's is as it was.
    again = complaints(
        ("a", "2020-03-01", "Acme", "Loan", True),
        ("b", "2020-03-01", "Acme", "Loan", True),
        ("c", "2020-03-02", "Acme", "Loan", True),
    )
    # ... and c's response changed since: the log keeps the one it first had, so the history of
    # the days before the change stays what it was then.
    again.loc[again["complaint_id"] == "c", "company_response"] = "Closed with monetary relief"
    relogged = log_label_arrivals(again, log, today=date(2020, 3, 9)).set_index("complaint_id")
    assert relogged.loc["c", "company_response"] == "Closed with explanation"
    pd.testing.assert_frame_equal(
        day_contributions(relogged.reset_index()).drop(
            columns=["disputed", "labelled", ARRIVED_ON]
        ),
        day_contributions(log).drop(columns=["disputed", "labelled", ARRIVED_ON]),
    )
    assert relogged[ARRIVED_ON].tolist() == [
        pd.Timestamp("2020-03-01"),
        pd.Timestamp("2020-03-09"),
        pd.Timestamp("2020-03-09"),
    ]


def test_a_complaint_never_sees_its_own_label_nor_one_that_arrived_after_its_day() -> None:
    """The case a naive join leaks: Acme's dispute rate over all days includes the label of the
    very complaint being predicted, and a late label that arrived after it was filed."""
    first = complaints(
        ("old", "2020-03-01", "Acme", "Loan", None),  # its label arrives late, on 03-20
        ("now", "2020-03-10", "Acme", "Loan", True),  # the complaint predicted
        ("other", "2020-03-05", "Beta", "Loan", False),
    )
    log = log_label_arrivals(first, NOTHING_LOGGED, today=date(2020, 3, 11))
    late = complaints(("old", "2020-03-01", "Acme", "Loan", True))
    log = pd.concat(
        [log[log["complaint_id"] != "old"], log_label_arrivals(late, log, today=date(2020, 3, 20))]
    )
    naive = log[log["company"] == "Acme"]["disputed"].astype(float).mean()
    assert naive == 1.0  # both of Acme's labels, its own included: the leak

    now = complaints(("now", "2020-03-10", "Acme", "Loan", True))
    snapshots = snapshots_of(log, ["2020-03-09", "2020-03-20"])
    seen = join_history(now, snapshots).iloc[0]
    # As of 03-09: Acme had one complaint ("old", unlabelled then), no label; Beta's one label.
    assert seen["company_complaints_30d"] == 1.0
    assert seen["company_labelled_30d"] == 0.0
    overall_rate = 0.0  # everyone's labels by 03-09: Beta's one "no"
    assert seen["company_dispute_rate_30d"] == pytest.approx(overall_rate)
    # A complaint filed on 03-21 sees both of Acme's labels, arrived by 03-20.
    later = join_history(complaints(("next", "2020-03-21", "Acme", "Loan", None)), snapshots).iloc[
        0
    ]
    assert later["company_labelled_30d"] == 2.0
    overall = 2 / 3
    assert later["company_dispute_rate_30d"] == pytest.approx(
        (2 + SMOOTHING_WEIGHT * overall) / (2 + SMOOTHING_WEIGHT)
    )


def test_windows_count_the_days_before_the_complaints_day_only() -> None:
    log = log_label_arrivals(
        complaints(
            ("x", "2020-01-01", "Acme", "Loan", True),  # 100 days before 04-10: in 365d only
            ("y", "2020-03-20", "Acme", "Loan", True),  # 21 days before: in every window
            ("z", "2020-04-10", "Acme", "Loan", True),  # the day itself: in none
        ),
        NOTHING_LOGGED,
        today=date(2020, 4, 11),
    )
    row = join_history(
        complaints(("q", "2020-04-10", "Acme", "Card", None)),
        snapshots_of(log, ["2020-04-09"]),
    ).iloc[0]
    assert [row[f"company_complaints_{w}d"] for w in (30, 90, 365)] == [1.0, 1.0, 2.0]
    # Acme x Card was never seen: no counts, the overall rates.
    assert row["company_product_complaints_365d"] == 0.0
    assert row["company_product_dispute_rate_365d"] == 1.0


def test_a_company_never_seen_gets_the_priors_offline_and_online(tmp_path: Path) -> None:
    log = log_label_arrivals(
        complaints(
            ("a", "2020-05-01", "Acme", "Loan", True),
            ("b", "2020-05-02", "Beta", "Card", False),
            ("c", "2020-05-02", "Beta", "Card", False),
        ),
        NOTHING_LOGGED,
        today=date(2020, 5, 3),
    )
    snapshots = snapshots_of(log, ["2020-05-02"])
    unseen = complaints(("n", "2020-05-03", "Never Seen Inc", "Loan", None))
    offline = join_history(unseen, snapshots).iloc[0]
    write_online_store(snapshots, tmp_path / "online.sqlite")
    store = OnlineStore.open(tmp_path / "online.sqlite")
    online = store.lookup(["Never Seen Inc"], ["Loan"]).iloc[0]
    for features in (offline, online):
        assert features["company_complaints_365d"] == 0.0
        assert features["company_labelled_30d"] == 0.0
        assert features["company_dispute_rate_30d"] == pytest.approx(1 / 3)
        assert features["company_product_timely_share_90d"] == 1.0
    # No complaint at all before the day: the uninformed rate, not an error.
    nothing = snapshots_of(log, ["2020-04-01"])
    first = join_history(complaints(("f", "2020-04-02", "Acme", "Loan", None)), nothing).iloc[0]
    assert first["company_dispute_rate_365d"] == UNINFORMED_RATE
    assert first["company_complaints_365d"] == 0.0


def test_days_computed_apart_and_in_any_order_give_the_history_computed_at_once() -> None:
    """What lets a backfill's runs go side by side: a day's contributions are its own."""
    log = log_label_arrivals(
        complaints(
            ("a", "2020-06-01", "Acme", "Loan", True),
            ("b", "2020-06-02", "Acme", "Card", False),
            ("c", "2020-06-03", "Beta", "Loan", None),
        ),
        NOTHING_LOGGED,
        today=date(2020, 6, 4),
    )
    by_day = [day_contributions(rows) for _, rows in log.groupby(INGESTION_DATE_COLUMN)]
    apart = pd.concat(by_day[::-1], ignore_index=True)
    days = [date(2020, 6, d) for d in (1, 2, 3)]
    pd.testing.assert_frame_equal(
        history_snapshots(apart, days), history_snapshots(day_contributions(log), days)
    )


@pytest.mark.real_data
def test_offline_and_online_inputs_are_identical_and_counts_match_pandas_rolling(
    real_data_dir: Path, tmp_path: Path
) -> None:
    """On the real export: the store's inputs for the day after its snapshot equal the offline
    join's exactly, and the company counts equal pandas' own time-window rolling counts."""
    from ml_assets.ingest.cfpb_format import read_complaints_csv
    from ml_assets.ingest.validation import split_valid_rejected

    name = "cfpb_export_2013_2017_labeled.csv"
    raw = read_complaints_csv((real_data_dir / name).read_bytes(), name)
    raw[INGESTION_DATE_COLUMN] = pd.to_datetime(raw["date_received"])
    valid = split_valid_rejected(raw).valid
    log = log_label_arrivals(valid, NOTHING_LOGGED, today=date(2017, 3, 1))
    contributions = day_contributions(log)
    days = sorted(log[INGESTION_DATE_COLUMN].dt.date.unique())
    last, target = days[-40], days[-39]  # a day with complaints after the snapshot's
    snapshots = history_snapshots(contributions, [last])
    arriving = valid[pd.to_datetime(valid[INGESTION_DATE_COLUMN]).dt.date == target]
    arriving = arriving.assign(**{INGESTION_DATE_COLUMN: pd.Timestamp(last) + pd.Timedelta(days=1)})
    offline = join_history(arriving, snapshots).reset_index(drop=True)
    write_online_store(snapshots, tmp_path / "online.sqlite")
    store = OnlineStore.open(tmp_path / "online.sqlite")
    assert store.snapshot_date == last
    online = store.lookup(arriving["company"].tolist(), arriving["product"].tolist())
    pd.testing.assert_frame_equal(offline, online, check_exact=True)
    assert list(online.columns) == list(HISTORY_FEATURES)

    # pandas' rolling sums over the daily calendar, shifted a day: the same counts per company.
    as_of_days = sorted(as_of_day(valid[INGESTION_DATE_COLUMN]).dt.date.unique())
    every = join_history(valid, history_snapshots(contributions, as_of_days))
    company = log["company"].fillna(MISSING_TOKEN)
    daily = (
        log.assign(company=company, n=1.0)
        .pivot_table(index=INGESTION_DATE_COLUMN, columns="company", values="n", aggfunc="sum")
        .asfreq("D")
        .fillna(0.0)
    )
    sample = valid.sample(300, random_state=0)
    at = pd.to_datetime(sample[INGESTION_DATE_COLUMN])
    for window in (30, 90, 365):
        rolled = daily.rolling(window, min_periods=1).sum().shift(1).fillna(0.0)
        want = [
            rolled.at[day, name]
            for day, name in zip(at, sample["company"].fillna(MISSING_TOKEN), strict=True)
        ]
        got = every.loc[sample.index, f"company_complaints_{window}d"].tolist()
        assert got == want
    assert (snapshots[LEVEL] == OVERALL_LEVEL).sum() == 1
    assert snapshots[AS_OF].nunique() == 1
    assert np.isfinite(every.to_numpy()).all()


def test_the_serving_key_of_a_value_is_the_tables() -> None:
    from ml_assets.model.history import (
        COMPANY_LEVEL,
        COMPANY_PRODUCT_LEVEL,
        key_token,
        level_keys,
        pair_key,
    )

    values = [None, float("nan"), pd.NA, "", "  ", " Acme Bank ", "Acme Bank", 3.0, "X\tY"]
    products = ["Loan", None, "Loan ", "", "Card", "Card", None, "Loan", "Card"]
    companies = pd.Series(values, dtype=object)
    table = level_keys(companies, pd.Series(products, dtype=object), COMPANY_LEVEL).tolist()
    assert [key_token(v) for v in values] == table
    pairs = level_keys(companies, pd.Series(products, dtype=object), COMPANY_PRODUCT_LEVEL)
    assert [
        pair_key(key_token(c), key_token(p)) for c, p in zip(values, products, strict=True)
    ] == pairs.tolist()
    assert table[0] == table[1] == table[2] == table[3] == table[4] == MISSING_TOKEN
