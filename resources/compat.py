"""The private names of Dagster and Ray this project needs, in one place, each with its reason.

Production code imports them from here, never from `dagster._core`, `dagster_duckdb` internals or
`ray._raylet` directly: an upgrade that moves one breaks this module's import (and `make test`)
with the reason next to it, instead of somewhere in the asset graph. `resources/event_log.py`, a
subclass of Dagster's SQLite event log storage, is the one exception: it is built on those
internals through and through, and `dagster-postgres` is the supported way to replace it.
"""

from __future__ import annotations

# The tags Dagster's stale-status resolver reads from a materialization (its data version, code
# version and input provenance) and the version formula it applies. A run over a range of days
# writes one record per day (ml_assets/assets/day_ranges.py) and must write them exactly as a
# single-day run would, or every day shows as stale; Dagster exposes no public API for that.
from dagster._core.definitions.data_version import (
    CODE_VERSION_TAG,
    DATA_VERSION_IS_USER_PROVIDED_TAG,
    DATA_VERSION_TAG,
    compute_logical_data_version,
    get_input_data_version_tag,
    get_input_event_pointer_tag,
)

# What `dg.define_asset_job` returns, and what the sensor factories accept: only a type, used
# in annotations (Dagster exports no public name for it).
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

# The backfill and tick records the CLI reads from the instance to follow what it launched;
# their status enums are not re-exported by `dagster`.
from dagster._core.execution.backfill import BulkActionsFilter, BulkActionStatus
from dagster._core.scheduler.instigation import InstigatorStatus, InstigatorType, TickStatus

# The DuckDB IO manager's building blocks: the project's IO manager runs each write in one
# transaction (a partition is never half-written), which needs its own client and the stock
# DELETE statement for a table slice. dagster-duckdb exposes neither publicly.
from dagster._core.storage.db_io_manager import DbIOManager, DbTypeHandler, TableSlice

# The tags a partitioned run carries (one partition, or a range of them).
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)
from dagster_duckdb.io_manager import DuckDbClient
from dagster_duckdb.io_manager import _get_cleanup_statement as table_slice_cleanup_statement

__all__ = [
    "ASSET_PARTITION_RANGE_END_TAG",
    "ASSET_PARTITION_RANGE_START_TAG",
    "CODE_VERSION_TAG",
    "DATA_VERSION_IS_USER_PROVIDED_TAG",
    "DATA_VERSION_TAG",
    "PARTITION_NAME_TAG",
    "BulkActionStatus",
    "BulkActionsFilter",
    "DbIOManager",
    "DbTypeHandler",
    "DuckDbClient",
    "InstigatorStatus",
    "InstigatorType",
    "TableSlice",
    "TickStatus",
    "UnresolvedAssetJobDefinition",
    "compute_logical_data_version",
    "get_input_data_version_tag",
    "get_input_event_pointer_tag",
    "reload_ray_config",
    "serve_http_target_ports",
    "table_slice_cleanup_statement",
]


def reload_ray_config() -> None:
    """Make Ray re-read its RAY_* settings (the token auth mode) and its token in this process.

    Ray's C++ config and its token loader read them once per process: a process that imported
    Ray before the project's token variables were set would connect without authentication, and
    one that joined another cluster before (a test's, a bench's) would keep that cluster's token;
    either is refused. Ray has no public way to re-read them.
    """
    # Neither is in ray's _raylet.pyi stub (a compiled module).
    from ray._raylet import (
        AuthenticationTokenLoader,  # pyright: ignore[reportAttributeAccessIssue]
        Config,  # pyright: ignore[reportAttributeAccessIssue]
    )

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def serve_http_target_ports(app_name: str) -> list[int]:
    """The HTTP ports Ray Serve's controller lists for an application's targets (for
    bench/serving.py's direct ingress: the replicas' own servers).

    No public API names them (ray 2.60); the controller's target groups do. Empty until Serve
    lists them; the caller waits.
    """
    import ray
    from ray.serve.context import _get_global_client

    client = _get_global_client()
    if client is None:
        raise RuntimeError(
            "no Serve controller in this process: deploy the app with serve.run first"
        )
    groups = ray.get(client._controller.get_target_groups.remote(app_name))
    return sorted(
        target.port
        for group in groups
        if str(getattr(group.protocol, "value", group.protocol)).upper() == "HTTP"
        for target in group.targets
    )
