"""`ml-assets train --search` in process, its execution stubbed: the run config it hands Dagster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import ml_assets.definitions
from ml_assets.cli import cli, model
from resources.home import ProjectHome


class RecordedJob:
    """Stands for training_job: keeps the run config it is executed with, runs nothing."""

    def __init__(self) -> None:
        self.run_configs: list[dict[str, Any]] = []

    def resolve_job_def(self, name: str) -> RecordedJob:
        assert name == "training_job"
        return self

    def execute_in_process(self, *, run_config: dict[str, Any], **_: object) -> None:
        self.run_configs.append(run_config)


@pytest.fixture
def job(monkeypatch: pytest.MonkeyPatch) -> RecordedJob:
    recorded = RecordedJob()
    monkeypatch.setattr(ml_assets.definitions, "build_definitions", lambda _home: recorded)
    monkeypatch.setattr(model, "print_training_result", lambda _result, _seconds: 0)
    return recorded


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--search"], {"search": True}),
        (["--search", "--epochs", "3"], {"search": True, "epochs": 3}),
        (["--epochs", "3"], {"epochs": 3}),
    ],
)
def test_train_search_asks_dispute_model_for_the_search(
    job: RecordedJob, tmp_path: Path, args: list[str], expected: dict[str, object]
) -> None:
    home = ProjectHome.at(tmp_path / "home")
    result = CliRunner().invoke(
        cli, ["--home", str(home.root), "train", *args], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    (run_config,) = job.run_configs
    config = run_config["ops"]["dispute_model"]["config"]
    assert config == expected
    assert config.get("search") is expected.get("search")  # True itself, not a truthy 1
    # The window's own config goes along untouched.
    assert set(run_config["ops"]["training_dataset"]["config"]) >= {"window_days", "split"}


def test_train_without_flags_leaves_dispute_model_at_its_defaults(
    job: RecordedJob, tmp_path: Path
) -> None:
    home = ProjectHome.at(tmp_path / "home")
    result = CliRunner().invoke(cli, ["--home", str(home.root), "train"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (run_config,) = job.run_configs
    assert "dispute_model" not in run_config["ops"]
