"""Shared pytest fixtures of the ml_assets tests."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path
from types import CodeType

import pytest

from ml_assets.settings import Settings
from ml_assets_tests.world import TODAY

# The partitions end before the platform's today when their module is imported: pin it first.
assert "ml_assets.partitions" not in sys.modules, "ml_assets.partitions was imported before the pin"
os.environ[Settings.env_name("today")] = TODAY.isoformat()
# Nothing a test runs may write into the developer's project home: point it at a scratch folder
# before any project module resolves it.
os.environ[Settings.env_name("home")] = tempfile.mkdtemp(prefix="ml_assets_test_home_")

REAL_DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cfpb"
REAL_DATA_MARKER = "real_data"
# Pytest's own tester, for the test of the guard below.
pytest_plugins = ["pytester"]


@pytest.fixture
def real_data_dir() -> Path:
    """The real CFPB extracts folder; skips when absent, fails instead if REQUIRE_REAL_DATA=1."""
    if not REAL_DATA_DIR.is_dir():
        reason = (
            f"real CFPB extracts not found at {REAL_DATA_DIR} (the project expects ../shared/data/cfpb "
            "beside the repository)"
        )
        if os.environ.get("REQUIRE_REAL_DATA") == "1":
            pytest.fail(f"REQUIRE_REAL_DATA=1 but {reason}")
        pytest.skip(reason)
    return REAL_DATA_DIR


def _names(code: CodeType) -> Iterator[str]:
    """Global and attribute names a function's code uses, its nested functions' included."""
    yield from code.co_names
    for constant in code.co_consts:
        if isinstance(constant, CodeType):
            yield from _names(constant)


def reads_real_data(item: pytest.Item) -> bool:
    """Whether a test needs the real extracts: through the fixture (its own or a fixture's
    dependency) or by naming the constant."""
    if "real_data_dir" in getattr(item, "fixturenames", ()):
        return True
    function = getattr(item, "function", None)
    code = getattr(function, "__code__", None)
    return code is not None and "REAL_DATA_DIR" in set(_names(code))


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    """Fail the collection of a module whose tests read the real extracts without the marker.

    Refused, not marked for the author: the marker stays visible where the test is read, and
    `-m real_data` selects what the source says. A collection error, not an error raised from
    `pytest_collection_modifyitems`: pytest-xdist's workers report the one with its message and
    would lose the other in an internal error."""
    report = yield
    unmarked = [
        node.nodeid
        for node in report.result
        if isinstance(node, pytest.Item)
        and reads_real_data(node)
        and node.get_closest_marker(REAL_DATA_MARKER) is None
    ]
    if unmarked and report.passed:
        report.outcome = "failed"
        report.longrepr = (
            f"{len(unmarked)} test(s) read the real CFPB extracts (the real_data_dir fixture or "
            f"REAL_DATA_DIR) without the {REAL_DATA_MARKER} marker: add "
            f"`@pytest.mark.{REAL_DATA_MARKER}` to each (or `pytestmark = "
            f"pytest.mark.{REAL_DATA_MARKER}` to the module):\n" + "\n".join(unmarked)
        )
        report.result = []
    return report
