"""Every data-quality verdict, driven to both outcomes at its thresholds."""

import pandas as pd
import pytest

from ml_assets.ingest.quality import (
    DISPUTE_RATE_TOLERANCE,
    EXPECTED_DISPUTE_RATE,
    MAX_REJECTED_RATE,
    MIN_LABELLED_FOR_BALANCE,
    label_balance_verdict,
    reconcile_counts,
    rejected_rate_verdict,
    typed_contract_verdict,
    unmasked_pii_verdict,
)


def rejected_rows(count: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "source_file": "d/x.csv",
            "source_line": range(2, count + 2),
            "failed_rules": "state:isin",
            "complaint_id": [str(i) for i in range(count)],
            "date_received": "01/05/2016",
            "product": "Mortgage",
            "state": "ZZ",
            "zip_code": "02134",
        }
    )


def labelled(disputed: int, undisputed: int, unlabelled: int = 0) -> pd.DataFrame:
    labels = [True] * disputed + [False] * undisputed + [None] * unlabelled
    return pd.DataFrame({"consumer_disputed": pd.array(labels, dtype="boolean")})


def test_reconcile_passes_only_when_every_row_is_accounted_for() -> None:
    assert reconcile_counts(10, 7, 3).passed
    lost = reconcile_counts(10, 7, 2)
    assert not lost.passed
    assert lost.description.startswith("row count mismatch: read 10 = valid 7 + rejected 2")


def test_the_rejected_rate_warns_just_above_its_threshold() -> None:
    read = 1000
    at_limit = round(read * MAX_REJECTED_RATE)
    assert rejected_rate_verdict(read, rejected_rows(at_limit), {"state:isin": at_limit}).passed
    over = rejected_rate_verdict(read, rejected_rows(at_limit + 1), {"state:isin": at_limit + 1})
    assert not over.passed
    assert over.figures["rejected_rate"] == pytest.approx((at_limit + 1) / read)
    assert f"{at_limit + 1} of {read} rows rejected" in over.description
    assert "rules: state:isin: 51" in over.description
    assert over.markdown is not None and "| d/x.csv | 2 | state:isin |" in over.markdown


@pytest.mark.parametrize(
    ("disputed", "undisputed", "passed"),
    [
        (20, 80, True),
        (10, 90, True),  # exactly on the lower bound
        (30, 70, True),  # exactly on the upper bound
        (9, 91, False),
        (31, 69, False),
        (100, 0, False),
    ],
)
def test_label_balance_warns_outside_the_expected_band(
    disputed: int, undisputed: int, passed: bool
) -> None:
    assert (EXPECTED_DISPUTE_RATE, DISPUTE_RATE_TOLERANCE) == (0.20, 0.10)
    verdict = label_balance_verdict(labelled(disputed, undisputed, unlabelled=50))
    assert verdict.passed is passed
    assert verdict.figures == {
        "dispute_rate": round(disputed / (disputed + undisputed), 4),
        "labelled": disputed + undisputed,
    }
    assert ("within" if passed else "outside") in verdict.description


def test_label_balance_does_not_judge_too_few_labels() -> None:
    too_few = labelled(MIN_LABELLED_FOR_BALANCE - 1, 0, unlabelled=100)
    verdict = label_balance_verdict(too_few)
    assert verdict.passed and "too few to judge" in verdict.description
    assert not label_balance_verdict(labelled(MIN_LABELLED_FOR_BALANCE, 0)).passed


def test_the_typed_contract_fails_with_its_failure_cases() -> None:
    assert typed_contract_verdict(pd.DataFrame()).passed
    cases = pd.DataFrame(
        {"column": ["state"], "check": ["isin"], "failure_case": ["ZZ"], "index": [3]}
    )
    verdict = typed_contract_verdict(cases)
    assert not verdict.passed and verdict.figures == {"failures": 1}
    assert "| state | isin | ZZ | 3 |" in verdict.markdown


def test_unmasked_pii_fails_naming_kinds_and_rows_but_never_the_values() -> None:
    valid = pd.DataFrame(
        {
            "source_file": "d/x.csv",
            "source_line": [2, 3, 4],
            "complaint_id": ["a", "b", "c"],
            "consumer_complaint_narrative": pd.array(
                ["My SSN 123-45-6789 was used", "XXXX called on XX/XX/2016", None], dtype="string"
            ),
        }
    )
    verdict = unmasked_pii_verdict(valid)
    assert not verdict.passed
    assert verdict.figures == {"unmasked_pii": 1, "narratives_with_pii": 1, "pii ssn": 1}
    assert verdict.markdown is not None and "| d/x.csv | 2 | a | ssn |" in verdict.markdown
    assert "6789" not in verdict.markdown + verdict.description
    clean = unmasked_pii_verdict(valid.iloc[1:])
    assert clean.passed and clean.figures == {"unmasked_pii": 0, "narratives_with_pii": 0}
