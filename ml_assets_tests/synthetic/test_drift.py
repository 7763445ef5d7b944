"""The drift scenario: days from its start change as asked, earlier days stay byte-identical."""

from __future__ import annotations

import io
from datetime import date

import pandas as pd
import pytest

from ml_assets.synthetic.drift import DRIFT_WORDS, Drift
from ml_assets.synthetic.export import generate_day
from ml_assets.synthetic.profile import load_profile
from ml_assets.synthetic.samplers import compile_model


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
