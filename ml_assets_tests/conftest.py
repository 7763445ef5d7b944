"""Shared pytest fixtures of the ml_assets tests."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Nothing a test runs may write into the developer's project home: point it at a scratch folder
# before any project module resolves it.
os.environ["ML_ASSETS_HOME"] = tempfile.mkdtemp(prefix="ml_assets_test_home_")

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
