"""The project's Dagster event log: Dagster's own SQLite storage, at a few milliseconds an event.

A ranged run over thousands of days records tens of thousands of events (each day's
materializations, planned events and reconcile check). Dagster's `SqliteEventLogStorage` builds a
new SQLAlchemy engine for every connection and commits each event with a full fsync of the
write-ahead log: about 30 ms an event here, most of a full-history backfill. This subclass keeps
the storage, its files, schema and queries as they are and changes only those two costs:

- one engine per database file, its connection kept open: Dagster opens and closes one per event,
  and closing the last connection of a WAL database checkpoints it (several fsyncs, the file and
  its folder) every time;
- a batch of events (Dagster batches a ranged run's planned events and each output's per-day
  materializations when `DAGSTER_EVENT_BATCH_SIZE` is set, which this storage sets) is written in
  one transaction per database, where Dagster's base class stores them one by one;
- `synchronous=NORMAL` on every connection. The databases are already in WAL mode, where NORMAL
  stays consistent after a crash of any process; only an OS crash or power cut can lose the last
  commits (SQLite's documentation: https://www.sqlite.org/pragma.html#pragma_synchronous).

Because the connections stay open, new events wait in each database's -wal file until a
checkpoint; the UI's live run log, which Dagster wakes on changes of the .db file, watches the
-wal file too. No public hook does any of this (Dagster's SQLite storages take only `base_dir`);
an instance shared by several machines uses `dagster-postgres` instead (README, "Real data at
full scale").
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import dagster as dg
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import QueuePool
from watchdog.events import FileSystemEvent
from watchdog.observers import Observer

# Dagster's private storage classes and types (resources/compat/dagster.py says why). The pinned
# Dagster version keeps them stable; ml_assets_tests/test_event_log.py fails if the connection
# handling or the run-log watch stop working as this subclass expects.
from resources.compat.dagster import (
    SQLITE_BUSY_TIMEOUT_SECONDS,
    ConfigurableClassData,
    EventHandlerFn,
    SqliteEventLogStorage,
    SqliteEventLogStorageWatchdog,
)

# Engines kept: the index shard plus the shards of the runs a process is writing or reading; a
# long-lived daemon or webserver sees thousands of runs, so the least recently used go.
MAX_ENGINES = 64
SQLITE_PRAGMAS = ("PRAGMA synchronous=NORMAL",)
# Dagster reads its batch size from this variable only (no instance setting): the largest number of
# events of one batch, in one transaction. A 90-day run of the data layer plans about 450.
EVENT_BATCH_SIZE_ENV = "DAGSTER_EVENT_BATCH_SIZE"
EVENT_BATCH_SIZE = 1000
# After a change of a run's -wal file, its log is read again this much later (see _WalWatchdog).
WAL_RECHECK_S = 0.2


def _apply_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in SQLITE_PRAGMAS:
        cursor.execute(pragma)
    cursor.close()


class ProjectSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log with one engine per shard and WAL commits without fsync."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._engines_lock = threading.Lock()
        self._tables_seen: set[str] = set()
        self._columns_seen: set[str] = set()
        # The connections of the batch this thread is writing, by shard (see store_event_batch).
        self._batch = threading.local()
        # Every process that stores events builds its instance, and so this storage, first.
        os.environ.setdefault(EVENT_BATCH_SIZE_ENV, str(EVENT_BATCH_SIZE))
        super().__init__(base_dir, inst_data=inst_data)
        # Reentrant, and held by a batch from its first write to its commit: a thread of this
        # process writing to a database the batch has locked waits for the batch here, rather
        # than holding the lock while SQLite makes it wait for the batch (which then needs it).
        self._db_lock = threading.RLock()

    @classmethod
    def from_config_value(  # ty: ignore[invalid-method-override]
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> ProjectSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str) -> Engine:
        """The shard's engine, created on first use (the least recently used beyond MAX_ENGINES go)."""
        with self._engines_lock:
            engine = self._engines.get(shard)
            if engine is not None:
                self._engines.move_to_end(shard)
                return engine
            # One connection per shard stays open (`_db_lock` serialises the storage's use of
            # it); setting up a new database briefly needs a second.
            engine = create_engine(
                self.conn_string_for_shard(shard),
                poolclass=QueuePool,
                pool_size=1,
                max_overflow=4,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
            )
            event.listen(engine, "connect", _apply_pragmas)
            self._engines[shard] = engine
            while len(self._engines) > MAX_ENGINES:
                _, oldest = self._engines.popitem(last=False)
                oldest.dispose()
            return engine

    def store_event_batch(self, events: Sequence[dg.EventLogEntry]) -> None:
        """Dagster's `store_event` for each event, all in one transaction per database.

        A failure before the commits leaves nothing, and Dagster stores the events one by one.
        The run's database commits first, as in `store_event`: should the index's commit then
        fail (another process holding its lock longer than SQLite's 30 s busy timeout, where
        batches hold it for a second or two), the run's log would hold the batch twice after
        Dagster's retry, as Dagster's own storage can lose an event's index row in that case.
        """
        connections: dict[str, Connection] = {}
        with self._db_lock:
            self._batch.connections = connections
            try:
                for event_entry in events:
                    self.store_event(event_entry)
                for connection in connections.values():
                    connection.commit()
            finally:
                self._batch.connections = None
                for connection in connections.values():
                    connection.close()  # rolls back what a failed batch began

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        batch: dict[str, Connection] | None = getattr(self._batch, "connections", None)
        if batch is not None:
            if shard not in batch:
                with self._db_lock:
                    batch[shard] = self._ready_engine(shard).connect()
                    batch[shard].begin()
            yield batch[shard]
            return
        with self._db_lock, self._ready_engine(shard).connect() as conn, conn.begin():
            yield conn

    def _ready_engine(self, shard: str) -> Engine:
        """The shard's engine, its database set up on first use (call with `_db_lock` held)."""
        engine = self._engine(shard)
        if shard not in self._initialized_dbs:
            self._initdb(engine)
            self._initialized_dbs.add(shard)
        return engine

    # Dagster asks before every asset event whether a migrated table or column exists, building
    # an engine or inspecting the schema each time; migrations only ever add them, so a yes holds.
    def has_table(self, table_name: str) -> bool:
        if table_name not in self._tables_seen and super().has_table(table_name):
            self._tables_seen.add(table_name)
        return table_name in self._tables_seen

    def _has_asset_key_col_on_connection(self, conn: Connection, column_name: str) -> bool:
        if column_name not in self._columns_seen and super()._has_asset_key_col_on_connection(
            conn, column_name
        ):
            self._columns_seen.add(column_name)
        return column_name in self._columns_seen

    def watch(self, run_id: str, cursor: str | None, callback: EventHandlerFn) -> None:
        # Dagster's watcher (the UI's live run log) waits for the run's .db file to change, which
        # happened when each closed connection checkpointed the WAL. With connections kept open,
        # new events sit in the -wal file until a checkpoint: watch that file too.
        if not self._obs:
            self._obs = Observer()
            self._obs.start()
        watchdog = _WalWatchdog(self, run_id, callback, cursor)
        self._watchers[run_id][callback] = (
            watchdog,
            self._obs.schedule(watchdog, self._base_dir, recursive=True),
        )

    def wipe(self) -> None:
        # Dagster deletes the run databases' files: close this process's connections to them
        # first, or they would go on reading and writing the deleted files.
        with self._db_lock, self._engines_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()
        super().wipe()

    def dispose(self) -> None:
        super().dispose()
        with self._engines_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()


class _WalWatchdog(SqliteEventLogStorageWatchdog):
    """Dagster's run-log watchdog, woken by changes of the run's database or of its WAL file."""

    def __init__(
        self,
        storage: SqliteEventLogStorage,
        run_id: str,
        callback: EventHandlerFn,
        cursor: str | None,
    ) -> None:
        super().__init__(storage, run_id, callback, cursor)
        self._paths = {self._log_path, f"{self._log_path}-wal"}
        self._reading = threading.Lock()  # the observer's thread and the re-check's
        self._patterns = sorted(self._paths)

    def on_modified(self, event: FileSystemEvent) -> None:
        if event.src_path not in self._paths:
            return
        with self._reading:
            self._process_log()
        # SQLite writes a commit's WAL frames, then its index in the -shm file, which is memory
        # mapped and wakes nobody: read once more shortly after, or a run's last event could wait.
        again = threading.Timer(WAL_RECHECK_S, self._read_again)
        again.daemon = True
        again.start()

    def _read_again(self) -> None:
        with self._reading:
            self._process_log()
