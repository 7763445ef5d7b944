"""`validated_complaints` and `rejected_complaints`: the contract applied, nothing dropped silently."""

from collections.abc import Iterator, Sequence

import dagster as dg
import pandas as pd

from ml_assets.assets.day_ranges import (
    DAILY_BACKFILL_POLICY,
    DayRecord,
    Metadata,
    outputs_by_day,
    run_days,
)
from ml_assets.assets.keys import (
    DATA_LAYER_GROUP,
    DUCKDB_POOL,
    PARTITIONED_TABLE,
    RAW_COMPLAINTS,
    REJECTED_COMPLAINTS,
    VALIDATED_COMPLAINTS,
    WAREHOUSE_SCHEMA,
)
from ml_assets.columns import INGESTION_DATE_COLUMN
from ml_assets.ingest.cfpb_format import cast_raw_frame
from ml_assets.ingest.quality import (
    QualityVerdict,
    label_balance_verdict,
    reconcile_counts,
    rejected_rate_verdict,
    typed_contract_verdict,
    unmasked_pii_verdict,
)
from ml_assets.ingest.validation import (
    ValidationResult,
    split_by_day,
    split_valid_rejected,
    typed_contract_failures,
)
from ml_assets.partitions import daily_partitions
from resources.warehouse import Warehouse

_ERROR, _WARN = dg.AssetCheckSeverity.ERROR, dg.AssetCheckSeverity.WARN
# (name, severity, blocking, description); blocking checks stop downstream assets of this run.
VALIDATION_CHECKS = (
    (
        "rows_reconcile",
        _ERROR,
        True,
        "Rows stored for the partition: read = validated + rejected (nothing lost).",
    ),
    (
        "typed_contract",
        _ERROR,
        True,
        "Validated rows satisfy the ValidatedComplaints pandera model.",
    ),
    (
        "no_unmasked_pii",
        _ERROR,
        True,
        "No validated narrative holds an e-mail, phone, SSN, card, account or routing number, "
        "URL or street address (raw_complaints masks them; this catches a day stored without "
        "that, by older code or a bypassed scrubber).",
    ),
    ("rejected_rate", _WARN, False, "Share of rejected rows stays under the threshold."),
    (
        "label_balance",
        _WARN,
        False,
        "Dispute rate of labelled rows stays near the historical rate.",
    ),
)


# Checks a run over several days records for every day, passed or not.
PER_DAY_CHECKS = frozenset({"rows_reconcile"})


def _metadata(verdict: QualityVerdict) -> Metadata:
    metadata: Metadata = {"verdict": verdict.description, **verdict.figures}
    if verdict.markdown:
        metadata["failing_samples"] = dg.MetadataValue.md(verdict.markdown)
    return metadata


def _stored_rows(warehouse: Warehouse, key: dg.AssetKey, days: Sequence[str]) -> dict[str, int]:
    """Rows per day of an asset's table in the warehouse."""
    return warehouse.partition_counts(
        f"{WAREHOUSE_SCHEMA}.{key.path[-1]}", INGESTION_DATE_COLUMN, days
    )


def _day_records(
    days: dict[str, ValidationResult],
) -> tuple[dict[str, DayRecord], dict[str, DayRecord]]:
    """Each day's metadata of the validated and of the rejected table."""
    validated, rejected = {}, {}
    for day, result in days.items():
        validated[day] = DayRecord({"rows": len(result.valid)})
        rejected[day] = DayRecord(
            {
                "rows": len(result.rejected),
                **{f"rule {k}": v for k, v in result.rule_counts.items()},
            }
        )
    return validated, rejected


@dg.multi_asset(
    outs={
        "validated_complaints": dg.AssetOut(
            metadata=PARTITIONED_TABLE, code_version="1", kinds={"pandas", "duckdb"}
        ),
        "rejected_complaints": dg.AssetOut(
            metadata=PARTITIONED_TABLE, code_version="1", kinds={"pandas", "duckdb"}
        ),
    },
    partitions_def=daily_partitions,
    group_name=DATA_LAYER_GROUP,
    pool=DUCKDB_POOL,
    backfill_policy=DAILY_BACKFILL_POLICY,
    check_specs=[
        dg.AssetCheckSpec(name, asset=VALIDATED_COMPLAINTS, blocking=blocking, description=text)
        for name, _, blocking, text in VALIDATION_CHECKS
    ],
)
def validate_complaints(
    context: dg.AssetExecutionContext, raw_complaints: pd.DataFrame, warehouse: Warehouse
) -> Iterator[dg.Output | dg.AssetMaterialization | dg.AssetCheckEvaluation | dg.AssetCheckResult]:
    """Rows passing the pandera contract, and every failing row with its failed rules."""
    days = run_days(context)
    result = split_valid_rejected(cast_raw_frame(raw_complaints))
    per_day = split_by_day(result, days)
    validated, rejected = _day_records(per_day)
    outputs = (
        (VALIDATED_COMPLAINTS, result.valid, validated, {d: r.valid for d, r in per_day.items()}),
        (
            REJECTED_COMPLAINTS,
            result.rejected,
            rejected,
            {d: r.rejected for d, r in per_day.items()},
        ),
    )
    for key, frame, records, frames in outputs:
        yield from outputs_by_day(
            context, key, frame, records, frames, inputs=[RAW_COMPLAINTS], output_name=key.path[-1]
        )
    # Each output was handed to the IO manager when it was yielded, so the days' rows are
    # stored by now: reconcile what the warehouse holds, not the frames in memory.
    stored = {
        key: _stored_rows(warehouse, key, days)
        for key in (RAW_COMPLAINTS, VALIDATED_COMPLAINTS, REJECTED_COMPLAINTS)
    }
    read = raw_complaints.groupby(INGESTION_DATE_COLUMN).size()
    yield from _check_events(_verdicts(result, per_day, stored, read), days)


def _verdicts(
    result: ValidationResult,
    per_day: dict[str, ValidationResult],
    stored: dict[dg.AssetKey, dict[str, int]],
    read: pd.Series,
) -> dict[str, dict[str, QualityVerdict]]:
    """Each check's verdict per day: check name -> day -> verdict."""
    typed = typed_contract_failures(result.valid)
    verdicts: dict[str, dict[str, QualityVerdict]] = {name: {} for name, *_ in VALIDATION_CHECKS}
    for day, day_result in per_day.items():
        day_read = int(read.get(pd.Timestamp(day), 0))
        verdicts["rows_reconcile"][day] = reconcile_counts(
            stored[RAW_COMPLAINTS][day],
            stored[VALIDATED_COMPLAINTS][day],
            stored[REJECTED_COMPLAINTS][day],
        )
        day_typed = _failures_of_day(typed, result.valid, day) if len(typed) else typed
        verdicts["typed_contract"][day] = typed_contract_verdict(day_typed)
        verdicts["no_unmasked_pii"][day] = unmasked_pii_verdict(day_result.valid)
        verdicts["rejected_rate"][day] = rejected_rate_verdict(
            day_read, day_result.rejected, day_result.rule_counts
        )
        verdicts["label_balance"][day] = label_balance_verdict(day_result.valid)
    return verdicts


def _check_events(
    verdicts: dict[str, dict[str, QualityVerdict]], days: Sequence[str]
) -> Iterator[dg.AssetCheckEvaluation | dg.AssetCheckResult]:
    """The checks' results of a run: a day's own, or per failing day and one for the run."""
    single = len(days) == 1
    for name, severity, blocking, _ in VALIDATION_CHECKS:
        if single:
            yield dg.AssetCheckResult(
                asset_key=VALIDATED_COMPLAINTS,
                check_name=name,
                passed=verdicts[name][days[0]].passed,
                severity=severity,
                metadata=_metadata(verdicts[name][days[0]]),
            )
            continue
        for day, verdict in verdicts[name].items():
            # Dagster stores each event at a cost of tens of milliseconds: over thousands of days
            # only the reconcile check (nothing lost) is recorded for every day, the others for
            # the days they fail; the run's result below covers the rest.
            if verdict.passed and name not in PER_DAY_CHECKS:
                continue
            yield dg.AssetCheckEvaluation(
                asset_key=VALIDATED_COMPLAINTS,
                check_name=name,
                passed=verdict.passed,
                severity=severity,
                blocking=blocking,
                partition=day,
                metadata=_metadata(verdict),
            )
        failed = [day for day, verdict in verdicts[name].items() if not verdict.passed]
        # The run's own result (Dagster requires one per check): every day's verdict combined.
        yield dg.AssetCheckResult(
            asset_key=VALIDATED_COMPLAINTS,
            check_name=name,
            passed=not failed,
            severity=severity,
            metadata={
                "verdict": f"{len(days) - len(failed)} of {len(days)} days passed",
                "failed_days": failed[:50],
            },
        )


def _failures_of_day(cases: pd.DataFrame, valid: pd.DataFrame, day: str) -> pd.DataFrame:
    """The typed-contract failure cases of one day's rows (whole-table ones count for every day)."""
    if "index" not in cases.columns:
        return cases
    day_rows = valid.index[pd.to_datetime(valid[INGESTION_DATE_COLUMN]) == pd.Timestamp(day)]
    return cases[cases["index"].isna() | cases["index"].isin(day_rows)]
