"""Dagster's private test helpers the tests use (dagster 1.13.27), each with why no public API
serves.

For `ml_assets_tests` only: production code never imports this module (Dagster's test utilities
load its workspace and mocking machinery). See `resources/compat/__init__.py`.
"""

from __future__ import annotations

# Whether an asset (or one day of it) is stale, as the UI shows it: the tests assert that a ranged
# run leaves every day as fresh as single-day runs would. Dagster answers this only through its
# GraphQL API (`staleStatus`) or these private classes; no upstream issue asks for a public one.
from dagster._core.definitions.data_version import StaleStatus
from dagster._utils.test.data_versions import get_stale_status_resolver

# isort: split
# The keys of a fake sensor's state and ticks (the CLI waits for every running sensor to tick):
# the instance's instigator-state API takes only these internal origins (dagster#12825, open:
# "Public API for retrieving state of instigator").
from dagster._core.remote_origin import (
    InProcessCodeLocationOrigin,
    RemoteInstigatorOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.scheduler.instigation import InstigatorState, TickData
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

# isort: split
# A run of a given job, status, tags and asset selection stored without executing it (a run in
# flight, a failed attempt): Dagster's own tests use this helper; `DagsterInstance.create_run`,
# which it calls, is not public API either.
from dagster._core.test_utils import create_run_for_test

__all__ = [
    "InProcessCodeLocationOrigin",
    "InstigatorState",
    "LoadableTargetOrigin",
    "RemoteInstigatorOrigin",
    "RemoteRepositoryOrigin",
    "StaleStatus",
    "TickData",
    "create_run_for_test",
    "get_stale_status_resolver",
]
