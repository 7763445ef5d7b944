import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pandas as pd
import pytest

from resources.warehouse import Warehouse, WarehouseIOManager, connect_with_patience

daily = dg.DailyPartitionsDefinition(start_date="2016-01-01")


def _numbers_asset(values: list[Any], dtype: str = "Int64") -> dg.AssetsDefinition:
    @dg.asset(name="numbers", partitions_def=daily, metadata={"partition_expr": "day"})
    def numbers(context: dg.AssetExecutionContext) -> pd.DataFrame:
        day = pd.Timestamp(context.partition_key)
        return pd.DataFrame(
            {
                "day": pd.Series([day] * len(values), dtype="datetime64[ns]"),
                "n": pd.Series(values, dtype=dtype),
            }
        )

    return numbers


def _rows(db: Path) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.execute(
            "select day::date::varchar, n from public.numbers order by all"
        ).fetchall()


def test_a_failed_write_leaves_the_previous_partition_whole(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    io_manager = WarehouseIOManager(database=str(db))
    assert dg.materialize(
        [_numbers_asset([1, 2])], resources={"io_manager": io_manager}, partition_key="2016-01-02"
    ).success
    # The insert fails after the delete of the old slice: strings do not fit the BIGINT column.
    bad = dg.materialize(
        [_numbers_asset(["x", "y", "z"], dtype="string")],
        resources={"io_manager": io_manager},
        partition_key="2016-01-02",
        raise_on_error=False,
    )
    assert not bad.success
    assert _rows(db) == [("2016-01-02", 1), ("2016-01-02", 2)]


def test_an_empty_partition_creates_the_table_and_replaces_the_old_rows(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    io_manager = WarehouseIOManager(database=str(db))
    assert dg.materialize(
        [_numbers_asset([])], resources={"io_manager": io_manager}, partition_key="2016-01-03"
    ).success
    assert _rows(db) == []
    assert dg.materialize(
        [_numbers_asset([5])], resources={"io_manager": io_manager}, partition_key="2016-01-03"
    ).success
    assert dg.materialize(
        [_numbers_asset([])], resources={"io_manager": io_manager}, partition_key="2016-01-03"
    ).success
    assert _rows(db) == []


def test_an_asset_that_gains_a_column_keeps_its_stored_days(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    io_manager = WarehouseIOManager(database=str(db))
    assert dg.materialize(
        [_numbers_asset([1])], resources={"io_manager": io_manager}, partition_key="2016-01-02"
    ).success

    @dg.asset(name="numbers", partitions_def=daily, metadata={"partition_expr": "day"})
    def with_role(context: dg.AssetExecutionContext) -> pd.DataFrame:
        day = pd.Timestamp(context.partition_key)
        return pd.DataFrame(
            {"day": pd.Series([day], dtype="datetime64[ns]"), "n": [2], "role": ["shadow"]}
        )

    assert dg.materialize(
        [with_role], resources={"io_manager": io_manager}, partition_key="2016-01-03"
    ).success
    with duckdb.connect(str(db), read_only=True) as conn:
        rows = conn.execute(
            "select day::date::varchar, n, role from public.numbers order by all"
        ).fetchall()
    assert rows == [("2016-01-02", 1, None), ("2016-01-03", 2, "shadow")]


def _hold_lock(db: Path, read_only: bool = False) -> subprocess.Popen[bytes]:
    """Another process holding DuckDB's lock on `db` (a writer's, or a reader's: DuckDB lets no
    process write while another has the file open) until a line arrives on its stdin."""
    code = (
        "import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == 'r'); "
        "print('locked', flush=True); sys.stdin.readline(); c.close()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(db), "r" if read_only else "w"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == b"locked"
    return holder


def _release(holder: subprocess.Popen[bytes]) -> None:
    holder.communicate(b"\n", timeout=30)
    assert holder.returncode == 0


def test_a_writer_waits_for_another_process_lock_and_gets_it_once_released(
    tmp_path: Path,
) -> None:
    db = tmp_path / "w.duckdb"
    holder = _hold_lock(db)
    connected: list[duckdb.DuckDBPyConnection] = []
    writer = threading.Thread(
        target=lambda: connected.append(connect_with_patience(str(db), {}, timeout_s=120))
    )
    try:
        writer.start()
        time.sleep(1.0)  # not join(timeout=...): its timed lock wait ignores a faked clock
        # Still waiting: a correct writer cannot connect while the lock is held, however fast
        # or slow this machine is.
        assert writer.is_alive() and not connected
    finally:
        _release(holder)
    writer.join(timeout=120)
    assert not writer.is_alive() and len(connected) == 1
    connected[0].close()


def test_a_lock_held_too_long_fails_with_what_to_do(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    holder = _hold_lock(db)
    try:
        with pytest.raises(dg.Failure, match="stayed locked by another process") as excinfo:
            connect_with_patience(str(db), {}, timeout_s=0.5)
        # Resources do not know the project's pool names: the advice stays generic.
        assert "let fewer writers run at once" in str(excinfo.value)
    finally:
        _release(holder)


def test_an_error_other_than_the_lock_is_not_retried_nor_called_a_lock(tmp_path: Path) -> None:
    # A folder that does not exist: DuckDB's own error, at once, however long the patience.
    with pytest.raises(duckdb.IOException) as excinfo:
        connect_with_patience(str(tmp_path / "absent" / "w.duckdb"), {}, timeout_s=3600)
    assert not isinstance(excinfo.value, dg.Failure) and "lock" not in str(excinfo.value).lower()


def test_partition_count_counts_the_rows_stored_for_one_day(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    io_manager = WarehouseIOManager(database=str(db))
    for day, values in (("2016-01-02", [1, 2, 3]), ("2016-01-03", [4])):
        assert dg.materialize(
            [_numbers_asset(values)], resources={"io_manager": io_manager}, partition_key=day
        ).success
    warehouse = Warehouse(database=str(db))
    assert warehouse.partition_count("public.numbers", "day", "2016-01-02") == 3
    assert warehouse.partition_count("public.numbers", "day", "2016-01-03") == 1
    assert warehouse.partition_count("public.numbers", "day", "2016-01-04") == 0
    assert warehouse.partition_count("public.missing", "day", "2016-01-02") == 0


def test_a_write_while_a_reader_holds_the_file_fails_clearly_and_keeps_what_exists(
    tmp_path: Path,
) -> None:
    db = tmp_path / "w.duckdb"
    assert dg.materialize(
        [_numbers_asset([1, 2])],
        resources={"io_manager": WarehouseIOManager(database=str(db))},
        partition_key="2016-01-02",
    ).success
    reader = _hold_lock(db, read_only=True)
    try:
        patient = WarehouseIOManager(database=str(db), lock_timeout_s=1.0)
        blocked = dg.materialize(
            [_numbers_asset([7])],
            resources={"io_manager": patient},
            partition_key="2016-01-02",
            raise_on_error=False,
        )
        assert not blocked.success
        (failure,) = blocked.get_step_failure_events()
        error = failure.step_failure_data.error
        assert error is not None and "stayed locked by another process" in error.message
    finally:
        _release(reader)
    assert _rows(db) == [("2016-01-02", 1), ("2016-01-02", 2)]
