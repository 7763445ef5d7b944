"""The DuckDB warehouse: dagster-duckdb-pandas with atomic partition writes and lock patience."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pandas as pd
import tenacity
from dagster_duckdb_pandas import DuckDBPandasIOManager
from pydantic import Field

from resources.compat.dagster import DbIOManager, DbTypeHandler, TableSlice
from resources.compat.dagster_duckdb import DuckDbClient, table_slice_cleanup_statement


def is_lock_error(exc: BaseException) -> bool:
    """Whether DuckDB refused a connection because another process holds the file's lock."""
    # DuckDB allows one writing process per file; other writers wait their turn.
    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()


def connect_with_patience(
    database: str, config: dict[str, Any], timeout_s: float, read_only: bool = False
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection, retried with jittered backoff while another process holds the lock."""
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_lock_error),
        # 0.05 s doubling up to 2 s, each wait lengthened at random by up to itself: writers
        # that queued together do not retry together.
        wait=tenacity.wait_exponential(multiplier=0.05, max=2.0)
        + tenacity.wait_random_exponential(multiplier=0.05, max=2.0),
        # No wait that would end past the timeout: the last attempt comes before it.
        stop=tenacity.stop_before_delay(timeout_s),
        reraise=True,
    )
    try:
        return retrying(duckdb.connect, database=database, read_only=read_only, config=config)
    except duckdb.IOException as exc:
        if not is_lock_error(exc):
            raise
        raise dg.Failure(
            f"DuckDB warehouse {database} stayed locked by another process for "
            f"{timeout_s:.0f} s ({exc}). Stop the other writer, or let fewer writers run at "
            "once (a lower limit of their concurrency pool)."
        ) from exc


class TransactionalDuckDbClient(DuckDbClient):
    """Runs each IO manager call in one transaction, so a partition is never half-written."""

    @staticmethod
    @contextmanager
    def connect(context: Any, _: TableSlice) -> Iterator[duckdb.DuckDBPyConnection]:
        config = context.resource_config
        conn = connect_with_patience(
            config["database"],
            {"custom_user_agent": "dagster", **config["connection_config"]},
            config["lock_timeout_s"],
        )
        try:
            # DELETE of the old slice and INSERT of the new one commit together or not at all.
            conn.begin()
            yield conn
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()

    @staticmethod
    def delete_table_slice(
        context: dg.OutputContext, table_slice: TableSlice, connection: Any
    ) -> None:
        # The stock client catches the error of a missing table, but a failed statement aborts
        # the enclosing transaction in DuckDB: look the table up instead.
        if table_exists(connection, table_slice.schema, table_slice.table):
            connection.execute(table_slice_cleanup_statement(table_slice))


def table_exists(connection: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    """Whether schema.table exists (looked up: a failed statement aborts DuckDB's transaction)."""
    # fetchall, not fetchone: a count has its one row, which fetchone's type leaves optional.
    ((count,),) = connection.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, table],
    ).fetchall()
    return bool(count)


PARTITION_ROW_COUNT = "dagster/partition_row_count"


STORAGE_KIND = {"dagster/storage_kind": "duckdb"}
COLUMN_SCHEMA = "dagster/column_schema"


def table_metadata(frame: pd.DataFrame) -> dict[str, Any]:
    """What the warehouse records of a stored frame besides its row count: kind and columns."""
    return {
        **STORAGE_KIND,
        COLUMN_SCHEMA: dg.TableSchema(
            columns=[dg.TableColumn(name=str(n), type=str(t)) for n, t in frame.dtypes.items()]
        ),
    }


def _add_new_columns(connection: Any, table: str, frame: pd.DataFrame) -> None:
    """Add the frame's columns the stored table lacks: an asset that gains a column
    keeps its stored days, which read NULL there. DuckDB has no "insert ... adding columns"."""
    stored = {row[0] for row in connection.execute(f"describe {table}").fetchall()}
    for name, kind, *_ in connection.execute("describe select * from frame").fetchall():
        if name not in stored:
            connection.execute(f"alter table {table} add column {quote_identifier(name)} {kind}")


class CompletePandasTypeHandler(DbTypeHandler[pd.DataFrame]):
    """Writes pandas frames by column name, creating the table even for an empty partition."""

    def handle_output(
        self, context: dg.OutputContext, table_slice: TableSlice, obj: pd.DataFrame, connection: Any
    ) -> dict[str, Any]:
        table = f"{table_slice.schema}.{table_slice.table}"
        # An empty day is a fact, not an error: create the table from the typed empty frame so
        # that downstream reads of that partition return zero rows instead of failing.
        connection.execute(f"create table if not exists {table} as select * from obj limit 0")
        _add_new_columns(connection, table, obj)
        connection.execute(f"insert into {table} by name select * from obj")
        if context.has_asset_partitions and len(context.asset_partition_keys) > 1:
            # A run over several days: the frame's total is no day's count, so the asset gives
            # each day its own (Dagster would copy one figure to every day), and the columns.
            return dict(STORAGE_KIND)
        count_key = PARTITION_ROW_COUNT if context.has_partition_key else "dagster/row_count"
        return {count_key: obj.shape[0], **table_metadata(obj)}

    def load_input(
        self, context: dg.InputContext, table_slice: TableSlice, connection: Any
    ) -> pd.DataFrame:
        if table_slice.partition_dimensions and len(context.asset_partition_keys) == 0:
            return pd.DataFrame()
        return connection.execute(DuckDbClient.get_select_statement(table_slice)).fetchdf()

    @property
    def supported_types(self) -> Sequence[type]:
        return [pd.DataFrame]


class WarehouseIOManager(DuckDBPandasIOManager):
    """Stores pandas frames in the project's DuckDB file, one table per asset."""

    lock_timeout_s: float = Field(
        default=600.0, description="How long a writer waits for another process's DuckDB lock."
    )

    @staticmethod
    def type_handlers() -> Sequence[DbTypeHandler]:
        return [CompletePandasTypeHandler()]

    def create_io_manager(self, context: Any) -> DbIOManager:
        return DbIOManager(
            db_client=TransactionalDuckDbClient(),
            database=self.database,
            schema=self.schema_,
            type_handlers=self.type_handlers(),
            default_load_type=self.default_load_type(),
            io_manager_name="WarehouseIOManager",
        )


def quote_identifier(name: str) -> str:
    """A (possibly schema-qualified) table or column name quoted for SQL."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in name.split("."))


class Warehouse(dg.ConfigurableResource):
    """Read access to the DuckDB warehouse for assets, CLI reports and tests."""

    database: str
    lock_timeout_s: float = 600.0

    @contextmanager
    def connect(self, read_only: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
        conn = connect_with_patience(self.database, {}, self.lock_timeout_s, read_only=read_only)
        try:
            yield conn
        finally:
            conn.close()

    def has_table(self, schema: str, table: str) -> bool:
        """Whether schema.table exists yet (an asset may run before the one that creates it)."""
        if not Path(self.database).exists():  # nothing was written yet, so no table either
            return False
        with self.connect() as conn:
            return table_exists(conn, schema, table)

    def partition_counts(
        self, table: str, partition_column: str, days: Sequence[str]
    ) -> dict[str, int]:
        """Rows stored in `table` (schema.table) per daily partition; 0 for days without rows."""
        counts = dict.fromkeys(days, 0)
        with self.connect() as conn:
            try:
                rows = conn.execute(
                    f"select strftime({quote_identifier(partition_column)}::date, '%Y-%m-%d'), "
                    f"count(*) from {quote_identifier(table)} "
                    f"where {quote_identifier(partition_column)}::date between ?::date and ?::date "
                    "group by 1",
                    [min(days), max(days)],
                ).fetchall()
            except duckdb.CatalogException:
                return counts
        counts.update({day: int(n) for day, n in rows if day in counts})
        return counts

    def partition_count(self, table: str, partition_column: str, day: str) -> int:
        """Rows stored in `table` (schema.table) for one daily partition; 0 without the table."""
        with self.connect() as conn:
            try:
                row = conn.execute(
                    f"select count(*) from {quote_identifier(table)} "
                    f"where {quote_identifier(partition_column)}::date = ?::date",
                    [day],
                ).fetchone()
            except duckdb.CatalogException:
                return 0
        return int(row[0]) if row else 0
