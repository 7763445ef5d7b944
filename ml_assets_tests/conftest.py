"""Shared pytest fixtures of the ml_assets tests."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

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
