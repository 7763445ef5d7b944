"""`validated_complaints` and `rejected_complaints`: the contract applied, nothing dropped silently."""

from collections.abc import Iterator

import dagster as dg
import pandas as pd

from ml_assets.assets.ingestion import PARTITIONED_TABLE, raw_complaints
from ml_assets.constants import (
    DUCKDB_POOL,
    INGESTION_DATE_COLUMN,
    LANDING_ASSET_GROUP,
    WAREHOUSE_SCHEMA,
)
from ml_assets.ingest.cfpb_format import cast_raw_frame
from ml_assets.ingest.quality import (
    QualityVerdict,
    label_balance_verdict,
    reconcile_counts,
    rejected_rate_verdict,
    typed_contract_verdict,
)
from ml_assets.ingest.validation import split_valid_rejected, typed_contract_failures
from ml_assets.partitions import daily_partitions
from resources.warehouse import Warehouse

RAW = raw_complaints.key
VALIDATED = dg.AssetKey("validated_complaints")
REJECTED = dg.AssetKey("rejected_complaints")
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
    ("rejected_rate", _WARN, False, "Share of rejected rows stays under the threshold."),
    (
        "label_balance",
        _WARN,
        False,
        "Dispute rate of labelled rows stays near the historical rate.",
    ),
)


def _check_result(
    name: str, severity: dg.AssetCheckSeverity, verdict: QualityVerdict
) -> dg.AssetCheckResult:
    metadata: dict[str, dg.RawMetadataValue] = {"verdict": verdict.description, **verdict.figures}
    if verdict.markdown:
        metadata["failing_samples"] = dg.MetadataValue.md(verdict.markdown)
    return dg.AssetCheckResult(
        asset_key=VALIDATED,
        check_name=name,
        passed=verdict.passed,
        severity=severity,
        metadata=metadata,
    )


def _stored_rows(warehouse: Warehouse, key: dg.AssetKey, day: str) -> int:
    """Rows of one partition of an asset's table in the warehouse."""
    return warehouse.partition_count(
        f"{WAREHOUSE_SCHEMA}.{key.path[-1]}", INGESTION_DATE_COLUMN, day
    )


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
    group_name=LANDING_ASSET_GROUP,
    pool=DUCKDB_POOL,
    check_specs=[
        dg.AssetCheckSpec(name, asset=VALIDATED, blocking=blocking, description=text)
        for name, _, blocking, text in VALIDATION_CHECKS
    ],
)
def validate_complaints(
    context: dg.AssetExecutionContext, raw_complaints: pd.DataFrame, warehouse: Warehouse
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """Rows passing the pandera contract, and every failing row with its failed rules."""
    result = split_valid_rejected(cast_raw_frame(raw_complaints))
    read = len(raw_complaints)
    yield dg.Output(
        result.valid, output_name="validated_complaints", metadata={"rows": len(result.valid)}
    )
    yield dg.Output(
        result.rejected,
        output_name="rejected_complaints",
        metadata={
            "rows": len(result.rejected),
            **{f"rule {k}": v for k, v in result.rule_counts.items()},
        },
    )
    # Each output was handed to the IO manager when it was yielded, so the partition's rows
    # are stored by now: reconcile what the warehouse holds, not the frames in memory.
    stored_read, stored_valid, stored_rejected = (
        _stored_rows(warehouse, key, context.partition_key) for key in (RAW, VALIDATED, REJECTED)
    )
    verdicts = {
        "rows_reconcile": reconcile_counts(stored_read, stored_valid, stored_rejected),
        "typed_contract": typed_contract_verdict(typed_contract_failures(result.valid)),
        "rejected_rate": rejected_rate_verdict(read, result.rejected, result.rule_counts),
        "label_balance": label_balance_verdict(result.valid),
    }
    for name, severity, _, _ in VALIDATION_CHECKS:
        yield _check_result(name, severity, verdicts[name])
