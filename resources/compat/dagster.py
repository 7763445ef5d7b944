"""Dagster's private names the project uses (dagster 1.13.27), each with why no public API serves.

Only this module (and `dagster_testing.py`, for the tests) imports `dagster._…`; see
`resources/compat/__init__.py`.
"""

from __future__ import annotations

# The tags Dagster's stale-status resolver reads from a materialization (its data version, code
# version and input provenance) and the version formula it applies. A run over a range of days
# writes one record per day (ml_assets/assets/day_ranges.py) and must write them exactly as a
# single-day run would, or every day shows as stale: `Output` and `MaterializeResult` take one
# data version for all the partitions of a run, and no public API writes or computes the
# per-partition ones (dagster#34013, open).
from dagster._core.definitions.data_version import (
    CODE_VERSION_TAG,
    DATA_VERSION_IS_USER_PROVIDED_TAG,
    DATA_VERSION_TAG,
    compute_logical_data_version,
    get_input_data_version_tag,
    get_input_event_pointer_tag,
)

# What `dg.define_asset_job` returns, and what the sensor factories accept: only a type, used
# in annotations. Dagster exports no public name for it; no upstream issue asks for one.
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

# The backfills still requesting runs, which `operations.in_flight` counts (the demo and the tests
# wait until nothing is in flight): `DagsterInstance.get_backfills` takes this filter, and
# `dagster` exports neither it nor the status enum. No upstream issue asks for them.
from dagster._core.execution.backfill import BulkActionsFilter, BulkActionStatus

# The sensor states and ticks the CLI waits on (a quiet platform: every running sensor has ticked
# since the last change). The instance's instigator-state API is not public either
# (dagster#12825, open: "Public API for retrieving state of instigator").
from dagster._core.scheduler.instigation import InstigatorStatus, InstigatorType, TickStatus

# The building blocks of Dagster's database IO managers, which dagster-duckdb's IO manager is
# made of: the project's IO manager (resources/warehouse.py) runs each write in one transaction
# (a partition is never half-written), which needs its own client, type handler and IO manager.
# Dagster exports none of them (dagster#10737, open: document these abstractions); the
# transaction itself is dagster#14091 (open: "Drop data and upload outputs in a single
# transaction").
from dagster._core.storage.db_io_manager import DbIOManager, DbTypeHandler, TableSlice

# The tags a partitioned run carries: one partition, or the ends of a range of them. The landing
# sensor launches runs over ranges of days, and `RunRequest` takes a `partition_key` but no range
# (its `partition_key_range` property reads these same tags); the CLI reads them back to name a
# run's days. No upstream issue asks to export them.
# The tag the instance puts on a failed run once it decided whether to retry it: the run-failure
# sensor waits for it. Dagster exports no name for it.
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
    WILL_RETRY_TAG,
)

# isort: split
# (Kept together, out of the sort.) Dagster's own SQLite event log, which resources/event_log.py
# subclasses: dagster.yaml names a storage by module and class, and Dagster's SQLite storages take
# only `base_dir` (no public hook keeps their connections open, batches their writes or sets their
# pragmas); with the types of its constructor and of its watch callback, and its busy timeout. No
# upstream issue offers such hooks (a request to bulk-write an op's many events, dagster#19618,
# was closed labelled stale); Dagster's supported storage at scale is dagster-postgres.
from dagster._core.event_api import EventHandlerFn
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    SqliteEventLogStorage,
    SqliteEventLogStorageWatchdog,
)
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._serdes import ConfigurableClassData

__all__ = [
    "ASSET_PARTITION_RANGE_END_TAG",
    "ASSET_PARTITION_RANGE_START_TAG",
    "CODE_VERSION_TAG",
    "DATA_VERSION_IS_USER_PROVIDED_TAG",
    "DATA_VERSION_TAG",
    "PARTITION_NAME_TAG",
    "SQLITE_BUSY_TIMEOUT_SECONDS",
    "WILL_RETRY_TAG",
    "BulkActionStatus",
    "BulkActionsFilter",
    "ConfigurableClassData",
    "DbIOManager",
    "DbTypeHandler",
    "EventHandlerFn",
    "InstigatorStatus",
    "InstigatorType",
    "SqliteEventLogStorage",
    "SqliteEventLogStorageWatchdog",
    "TableSlice",
    "TickStatus",
    "UnresolvedAssetJobDefinition",
    "compute_logical_data_version",
    "get_input_data_version_tag",
    "get_input_event_pointer_tag",
]
