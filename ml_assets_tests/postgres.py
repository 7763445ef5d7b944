"""Project homes whose Dagster instance is on a PostgreSQL server of their own, for tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ml_assets.instance import InstanceStorage, init_home
from resources.home import ProjectHome
from resources.local_postgres import pooler_binary, server_bindir, stop_postgres
from resources.local_services import free_port


def require_server_binaries() -> Path:
    """The system's PostgreSQL binaries (and PgBouncer's); the test fails with how to install them
    when absent."""
    try:
        pooler_binary()
        return server_bindir()
    except FileNotFoundError as error:
        pytest.fail(str(error))


@contextmanager
def home_on(storage: str, root: Path) -> Iterator[ProjectHome]:
    """The home at `root`, its instance on `storage` (as `ml-assets up --storage` sets it up);
    a PostgreSQL server on a free port is stopped by its PID at the end."""
    home = ProjectHome.at(root)
    if storage == "sqlite":
        init_home(home)
        yield home
        return
    require_server_binaries()
    try:
        init_home(home, InstanceStorage(kind="postgres", postgres_port=free_port()))
        yield home
    finally:
        stop_postgres(home.logs)
