"""dagster-duckdb's internals the project uses (dagster-duckdb 0.29.27), each with why no public
API serves. See `resources/compat/__init__.py`."""

from __future__ import annotations

# The DuckDB client of dagster-duckdb's IO manager, and the DELETE statement it runs for a table
# slice (a partition, or a range of them). The project's IO manager (resources/warehouse.py) runs
# the DELETE and the INSERT of a write in one transaction, so it needs the stock client to
# subclass and the stock statement to run inside that transaction. `dagster_duckdb` exports only
# `DuckDBIOManager`, `build_duckdb_io_manager` and `DuckDBResource`: the client's module path is
# public but the class is not exported, and the statement's builder is private. The transaction
# itself is dagster#14091 (open: "Drop data and upload outputs in a single transaction").
from dagster_duckdb.io_manager import DuckDbClient
from dagster_duckdb.io_manager import _get_cleanup_statement as table_slice_cleanup_statement

__all__ = ["DuckDbClient", "table_slice_cleanup_statement"]
