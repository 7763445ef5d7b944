"""Data-quality verdicts on one day's validation, independent of how they are shown."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Final

import pandas as pd

from ml_assets.columns import (
    FAILED_RULES_COLUMN,
    LABEL_COLUMN,
    NARRATIVE_COLUMN,
    SOURCE_FILE_COLUMN,
    SOURCE_LINE_COLUMN,
)
from ml_assets.privacy import find_pii_many

MAX_REJECTED_RATE: Final = 0.05  # warn when more than 5 % of a day's rows are rejected
# Dispute rate of labelled real CFPB complaints (2012-2017) is about 0.19-0.21; warn outside.
EXPECTED_DISPUTE_RATE: Final = 0.20
DISPUTE_RATE_TOLERANCE: Final = 0.10
MIN_LABELLED_FOR_BALANCE: Final = 30  # fewer labelled rows than this: too few to judge balance
FAILING_SAMPLE_ROWS: Final = 5  # rows shown in check metadata


@dataclass(frozen=True)
class QualityVerdict:
    """Whether a quality rule passed, why, and the figures behind it."""

    passed: bool
    description: str
    figures: dict[str, float | int | str] = field(default_factory=dict)
    markdown: str | None = None


def markdown_sample(
    frame: pd.DataFrame, columns: list[str], rows: int = FAILING_SAMPLE_ROWS
) -> str:
    """The first rows of a frame as a Markdown table."""
    head = frame.loc[:, columns].head(rows).astype("string").fillna("")
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += [
        "| " + " | ".join(v.replace("|", "\\|") for v in row) + " |"
        for row in head.itertuples(index=False)
    ]
    return "\n".join(lines)


def reconcile_counts(read: int, valid: int, rejected: int) -> QualityVerdict:
    """Every row read is either valid or rejected."""
    passed = read == valid + rejected
    text = f"read {read} = valid {valid} + rejected {rejected}"
    return QualityVerdict(
        passed,
        text if passed else f"row count mismatch: {text} does not hold; rows were lost or invented",
        {"read": read, "valid": valid, "rejected": rejected},
    )


def typed_contract_verdict(failure_cases: pd.DataFrame) -> QualityVerdict:
    """Validated rows satisfy the typed contract (a failure means a bug in validation)."""
    if failure_cases.empty:
        return QualityVerdict(True, "validated rows satisfy ValidatedComplaints")
    columns = [
        c for c in ("column", "check", "failure_case", "index") if c in failure_cases.columns
    ]
    return QualityVerdict(
        False,
        f"{len(failure_cases)} failure(s) of ValidatedComplaints in validated rows: fix the "
        "validation code before anything downstream reads this partition",
        {"failures": len(failure_cases)},
        markdown_sample(failure_cases, columns),
    )


def rejected_rate_verdict(
    read: int, rejected: pd.DataFrame, rule_counts: dict[str, int]
) -> QualityVerdict:
    """The share of rejected rows stays under the warning threshold."""
    rate = len(rejected) / read if read else 0.0
    passed = rate <= MAX_REJECTED_RATE
    rules = ", ".join(f"{rule}: {count}" for rule, count in rule_counts.items()) or "none"
    sample_columns = [
        SOURCE_FILE_COLUMN,
        SOURCE_LINE_COLUMN,
        FAILED_RULES_COLUMN,
        "complaint_id",
        "date_received",
        "product",
        "state",
        "zip_code",
    ]
    return QualityVerdict(
        passed,
        f"{len(rejected)} of {read} rows rejected ({rate:.1%}; warn above {MAX_REJECTED_RATE:.0%}); rules: {rules}",
        {
            "rejected_rate": round(rate, 4),
            "rejected": len(rejected),
            **{f"rule {k}": v for k, v in rule_counts.items()},
        },
        markdown_sample(rejected, sample_columns) if len(rejected) else None,
    )


def label_balance_verdict(valid: pd.DataFrame) -> QualityVerdict:
    """The dispute rate of labelled rows stays near the historical rate."""
    labels = valid[LABEL_COLUMN].dropna()
    if len(labels) < MIN_LABELLED_FOR_BALANCE:
        return QualityVerdict(
            True,
            f"{len(labels)} labelled rows: fewer than {MIN_LABELLED_FOR_BALANCE}, too few to judge balance",
            {"labelled": len(labels)},
        )
    rate = float(labels.astype(float).mean())
    low, high = (
        EXPECTED_DISPUTE_RATE - DISPUTE_RATE_TOLERANCE,
        EXPECTED_DISPUTE_RATE + DISPUTE_RATE_TOLERANCE,
    )
    passed = low <= rate <= high
    return QualityVerdict(
        passed,
        f"dispute rate {rate:.3f} over {len(labels)} labelled rows "
        + ("within" if passed else "outside")
        + f" the expected [{low:.2f}, {high:.2f}]",
        {"dispute_rate": round(rate, 4), "labelled": len(labels)},
    )


def unmasked_pii_verdict(valid: pd.DataFrame) -> QualityVerdict:
    """No narrative holds unmasked personal data (the values themselves are never shown)."""
    narratives = valid[NARRATIVE_COLUMN] if NARRATIVE_COLUMN in valid.columns else pd.Series()
    texts = narratives[narratives.map(lambda t: isinstance(t, str))]
    hits = [
        (i, found)
        for i, found in zip(texts.index, find_pii_many(texts.tolist()), strict=True)
        if found
    ]
    counts = Counter(match.kind for _, found in hits for match in found)
    total = sum(counts.values())
    figures: dict[str, float | int | str] = {
        "unmasked_pii": total,
        "narratives_with_pii": len(hits),
        **{f"pii {kind}": n for kind, n in sorted(counts.items())},
    }
    if not total:
        return QualityVerdict(
            True, f"no unmasked personal data in {narratives.count()} narratives", figures
        )
    sample = valid.loc[[i for i, _ in hits]].assign(
        pii_kinds=[", ".join(sorted({m.kind for m in found})) for _, found in hits]
    )
    columns = [c for c in (SOURCE_FILE_COLUMN, SOURCE_LINE_COLUMN, "complaint_id") if c in sample]
    return QualityVerdict(
        False,
        f"{total} pieces of unmasked personal data in {len(hits)} narratives: the scrubber "
        "(ml_assets/privacy.py) missed them; fix it and rematerialize raw_complaints",
        figures,
        markdown_sample(sample, [*columns, "pii_kinds"]),
    )
