"""Narratives: wording that tracks the dispute as strongly as asked; masked and unmasked PII."""

from __future__ import annotations

import math
from datetime import timedelta

import pandas as pd
import pytest

from ml_assets.privacy import find_pii
from ml_assets.synthetic.export import generate_day
from ml_assets.synthetic.narratives import DISPUTE_PHRASES, PHRASE_RATES, NarrativeSignal
from ml_assets_tests.synthetic.read_back import DAY, labels, parse


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
