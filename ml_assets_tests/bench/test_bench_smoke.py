"""The benches that need a trained model or a running endpoint run to their last line at their
`--smoke` size (bench/smoke.py); no figure is asserted. They share the e2e serving module's
`served` home: data layer, a champion, and the Serve app on a Ray head of its own (free ports).
The benches that build what they measure are in test_standalone_bench_smoke.py (a module of their
own, so that `make test` runs them beside this one)."""

import re
from pathlib import Path

import pytest

from ml_assets.settings import Settings
from ml_assets_tests.bench.smoke_runs import last_line
from ml_assets_tests.e2e.test_serving import TOKEN, Served
from ml_assets_tests.e2e.test_serving import served as served  # the fixture, shared

pytestmark = [pytest.mark.e2e, pytest.mark.services, pytest.mark.timeout(900)]


def test_baseline_logreg(served: Served, tmp_path: Path) -> None:
    out = tmp_path / "baseline.json"
    line = last_line("baseline_logreg.py", "--home", str(served.home.root), "--out", str(out))
    assert line == f"written {out}"


def test_ablation(served: Served, tmp_path: Path) -> None:
    out = tmp_path / "ablation.md"
    line = last_line("ablation.py", "--home", str(served.home.root), "--out", str(out))
    assert line == f"written {out}"


def test_search(served: Served, tmp_path: Path) -> None:
    out = tmp_path / "search.md"
    line = last_line("search.py", "--home", str(served.home.root), "--out", str(out))
    assert line == f"written {out}"


def test_batch_scoring(served: Served, tmp_path: Path) -> None:
    out = tmp_path / "batch_scoring.md"
    line = last_line("batch_scoring.py", "--home", str(served.home.root), "--out", str(out))
    assert re.fullmatch(r"batch scoring: one_node=[0-9]+/s two_nodes=[0-9]+/s ratio=[0-9.]+", line)
    assert "| 2 nodes |" in out.read_text()


def test_gate(served: Served, tmp_path: Path) -> None:
    out = tmp_path / "gate.md"
    line = last_line("gate.py", "--home", str(served.home.root), "--out", str(out))
    # Two seeds: each kind of challenger meets each other seed's champion once.
    assert re.fullmatch(r"gate rates: false_refusal=[0-9.]+ true_refusal=[0-9.]+ pairs=6", line)
    table = [
        row for row in out.read_text().splitlines() if row.startswith("| ") and "---" not in row
    ]
    assert [row.split(" | ")[2] for row in table[1:]] == ["2", "2", "2", "2"]


def test_serving(served: Served, tmp_path: Path) -> None:
    out = tmp_path / "serving"
    line = last_line("serving.py", "--home", str(served.home.root), "--out", str(out))
    assert line.startswith("serving ratios: endpoint_vs_naive=")
    assert out.with_suffix(".md").exists() and out.with_suffix(".json").exists()


def test_limits(served: Served) -> None:
    line = last_line(
        "limits.py", "--url", served.endpoint, env={Settings.env_name("api_token"): TOKEN}
    )
    assert line.startswith("limits ratios: refusal_ms=")


def test_soak(served: Served) -> None:
    line = last_line(
        "soak.py", "--url", served.endpoint, env={Settings.env_name("api_token"): TOKEN}
    )
    assert line.startswith("soak: errors=")
