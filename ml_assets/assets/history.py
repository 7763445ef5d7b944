"""The feature store's assets: `label_log`, `company_history` and the online `feature_store`.

`label_log` and `company_history` are per ingestion day and read only their own day, so the
runs of a backfill may write them side by side in any order; the trailing windows are summed
when a snapshot is read (`history_snapshots`), by training and by `feature_store`.
"""

import hashlib
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from ml_assets.assets.day_ranges import (
    DAILY_BACKFILL_POLICY,
    DayRecord,
    outputs_by_day,
    run_days,
)
from ml_assets.assets.keys import (
    COMPANY_HISTORY,
    DATA_LAYER_GROUP,
    DUCKDB_POOL,
    FEATURES_GROUP,
    FEATURES_TABLE,
    HISTORY_TABLE,
    LABEL_LOG,
    LABEL_LOG_TABLE,
    PARTITIONED_TABLE,
    VALIDATED_COMPLAINTS,
)
from ml_assets.columns import INGESTION_DATE_COLUMN
from ml_assets.model.history import (
    ARRIVED_ON,
    AS_OF,
    COMPANY,
    COMPANY_LEVEL,
    DISPUTED,
    HISTORY_FEATURES,
    LEVEL,
    LOG_COLUMNS,
    LOOKBACK_DAYS,
    OVERALL_LEVEL,
    PRODUCT,
    as_of_day,
    day_contributions,
    history_snapshots,
    join_history,
    log_label_arrivals,
)
from ml_assets.model.online_store import OnlineStore, write_online_store
from ml_assets.partitions import daily_partitions, platform_today
from resources.ray_cluster import RayCluster
from resources.warehouse import Warehouse

# Bump when what a day contributes changes: every history day and the online store go stale.
HISTORY_CODE_VERSION = "1"


def _by_day(frame: pd.DataFrame, days: list[str]) -> dict[str, pd.DataFrame]:
    groups = dict(iter(frame.groupby(INGESTION_DATE_COLUMN, sort=False)))
    return {day: groups.get(pd.Timestamp(day), frame.iloc[0:0]) for day in days}


def logged_labels(warehouse: Warehouse, days: list[str]) -> pd.DataFrame:
    """What the label log holds of `days` (nothing before its first run)."""
    schema, table = LABEL_LOG_TABLE.split(".")
    if not warehouse.has_table(schema, table):
        return pd.DataFrame(columns=list(LOG_COLUMNS))
    with warehouse.connect() as conn:
        return conn.execute(
            f"select * from {LABEL_LOG_TABLE} where {INGESTION_DATE_COLUMN}::date "
            "between ?::date and ?::date",
            [min(days), max(days)],
        ).fetchdf()


@dg.asset(
    partitions_def=daily_partitions,
    metadata=PARTITIONED_TABLE,
    group_name=DATA_LAYER_GROUP,
    code_version=HISTORY_CODE_VERSION,
    pool=DUCKDB_POOL,
    backfill_policy=DAILY_BACKFILL_POLICY,
    kinds={"pandas", "duckdb"},
)
def label_log(
    context: dg.AssetExecutionContext, validated_complaints: pd.DataFrame, warehouse: Warehouse
) -> Iterator[dg.Output[pd.DataFrame] | dg.AssetMaterialization]:
    """Each validated complaint with the day its label arrived (a late label: the day it landed)."""
    days = run_days(context)
    log = log_label_arrivals(validated_complaints, logged_labels(warehouse, days), platform_today())
    by_day = _by_day(log, days)
    records = {
        day: DayRecord(
            {
                "rows": len(rows),
                "labelled": int(rows[DISPUTED].notna().sum()),
                # Labels that arrived after their own day: the late ones this day has had.
                "arrived_late": int(
                    (
                        rows[ARRIVED_ON].notna() & (rows[ARRIVED_ON] > rows[INGESTION_DATE_COLUMN])
                    ).sum()
                ),
            }
        )
        for day, rows in by_day.items()
    }
    yield from outputs_by_day(
        context, LABEL_LOG, log, records, by_day, inputs=[VALIDATED_COMPLAINTS]
    )


@dg.asset(
    partitions_def=daily_partitions,
    metadata=PARTITIONED_TABLE,
    group_name=FEATURES_GROUP,
    code_version=HISTORY_CODE_VERSION,
    pool=DUCKDB_POOL,
    backfill_policy=DAILY_BACKFILL_POLICY,
    kinds={"pandas", "duckdb"},
)
def company_history(
    context: dg.AssetExecutionContext, label_log: pd.DataFrame
) -> Iterator[dg.Output[pd.DataFrame] | dg.AssetMaterialization]:
    """What each ingestion day adds to every company's (and company x product's) history, by
    the day its labels arrived: summed over trailing windows when a snapshot is read."""
    days = run_days(context)
    contributions = day_contributions(label_log)
    by_day = _by_day(contributions, days)
    records = {
        day: DayRecord(
            {
                "companies": int((rows[LEVEL] == COMPANY_LEVEL).sum()),
                "complaints": int(rows.loc[rows[LEVEL] == OVERALL_LEVEL, "complaints"].sum()),
            }
        )
        for day, rows in by_day.items()
    }
    yield from outputs_by_day(
        context, COMPANY_HISTORY, contributions, records, by_day, inputs=[LABEL_LOG]
    )


def _digest(frame: pd.DataFrame) -> str:
    return hashlib.sha256(
        pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()
    ).hexdigest()[:16]


def history_window(warehouse: Warehouse, first: date, last: date) -> pd.DataFrame:
    """The contributions that snapshots as of `first`..`last` read (their lookback included)."""
    with warehouse.connect() as conn:
        return conn.execute(
            f"select * from {HISTORY_TABLE} where {INGESTION_DATE_COLUMN}::date "
            "between ?::date and ?::date",
            [first - timedelta(days=LOOKBACK_DAYS - 1), last],
        ).fetchdf()


def days_without_history(warehouse: Warehouse, first: date, last: date) -> list[str]:
    """Days in `first`..`last` with complaint features but no company history written."""
    days = [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]
    featured = warehouse.partition_counts(FEATURES_TABLE, INGESTION_DATE_COLUMN, days)
    written = warehouse.partition_counts(HISTORY_TABLE, INGESTION_DATE_COLUMN, days)
    return [day for day in days if featured[day] and not written[day]]


def with_history(warehouse: Warehouse, rows: pd.DataFrame) -> pd.DataFrame:
    """`rows` (company, product, ingestion_date) with HISTORY_FEATURES as of the day before each
    row's ingestion day, from company_history; fails when a day those snapshots read has
    complaints but no history written (a data-layer run not done yet, or a home from before)."""
    if rows.empty:
        return rows.assign(**{c: pd.Series(dtype="float64") for c in HISTORY_FEATURES})
    as_of = sorted(as_of_day(rows[INGESTION_DATE_COLUMN]).dt.date.unique())
    first = as_of[0] - timedelta(days=LOOKBACK_DAYS - 1)
    if missing := days_without_history(warehouse, first, as_of[-1]):
        raise dg.Failure(
            f"company_history has no rows for {len(missing)} day(s) with complaints that the "
            f"history of these rows reads ({', '.join(missing[:5])}"
            f"{' ...' if len(missing) > 5 else ''}): materialize the data layer for them "
            "(`ml-assets materialize`), which writes label_log and company_history."
        )
    snapshots = history_snapshots(history_window(warehouse, as_of[0], as_of[-1]), as_of)
    joined = join_history(rows, snapshots)
    return pd.concat([rows, joined], axis=1)


def store_parity(
    warehouse: Warehouse, store_path: str, rows: pd.DataFrame
) -> tuple[pd.DataFrame, date]:
    """`rows` as complaints arriving the day after the online store's snapshot, with the history
    the store serves them; fails unless it equals the offline history of that day exactly."""
    if not store_path:
        raise dg.Failure(
            "the champion takes company history and ray_cluster.feature_store is not set: give "
            "the online store a path and materialize feature_store"
        )
    try:
        store = OnlineStore.open(Path(store_path))
    except FileNotFoundError as exc:
        raise dg.Failure(str(exc)) from exc
    day = store.snapshot_date
    arriving = rows.drop(columns=list(HISTORY_FEATURES), errors="ignore").reset_index(drop=True)
    arriving[INGESTION_DATE_COLUMN] = pd.Timestamp(day + timedelta(days=1))
    offline = join_history(arriving, history_snapshots(history_window(warehouse, day, day), [day]))
    online = store.lookup(arriving[COMPANY].tolist(), arriving[PRODUCT].tolist())
    differs = offline.to_numpy() != online.to_numpy()
    if differs.any():
        rows_off = int(differs.any(axis=1).sum())
        column = list(HISTORY_FEATURES)[int(np.argmax(differs.any(axis=0)))]
        raise dg.Failure(
            f"the online store's history of {day} differs from the offline history for "
            f"{rows_off} of {len(arriving)} complaints (first column: {column}): materialize "
            "feature_store again, then deploy"
        )
    return pd.concat([arriving, offline], axis=1), day


def newest_history_day(warehouse: Warehouse) -> date:
    """The newest ingestion day company_history holds."""
    schema, table = HISTORY_TABLE.split(".")
    newest = None
    if warehouse.has_table(schema, table):
        with warehouse.connect() as conn:
            (newest,) = conn.execute(
                f"select max({INGESTION_DATE_COLUMN}) from {HISTORY_TABLE}"
            ).fetchone() or (None,)
    if newest is None:
        raise dg.Failure("company_history is empty: materialize the data layer's days first.")
    return pd.Timestamp(newest).date()


@dg.asset(
    deps=[COMPANY_HISTORY],
    group_name=FEATURES_GROUP,
    code_version=HISTORY_CODE_VERSION,
    kinds={"sqlite"},
)
def feature_store(
    context: dg.AssetExecutionContext, warehouse: Warehouse, ray_cluster: RayCluster
) -> dg.MaterializeResult:
    """The online store: every company's history as of the newest ingested day, for serving."""
    if not ray_cluster.feature_store:
        raise dg.Failure("ray_cluster.feature_store is not set: give the online store a path.")
    day = newest_history_day(warehouse)
    snapshot = history_snapshots(history_window(warehouse, day, day), [day])
    path = Path(ray_cluster.feature_store)
    write_online_store(snapshot, path)
    context.log.info(f"wrote the history as of {day} to {path}")
    return dg.MaterializeResult(
        metadata={
            "snapshot_date": day.isoformat(),
            "path": dg.MetadataValue.path(str(path)),
            "keys": len(snapshot),
            "companies": int((snapshot[LEVEL] == COMPANY_LEVEL).sum()),
        },
        # The snapshot's day and content decide the version: the same history leaves serving fresh.
        data_version=dg.DataVersion(f"{day}-{_digest(snapshot.drop(columns=AS_OF))}"),
    )
