"""The `ml-assets` command line in process, through click's CliRunner: help, usage errors, defaults."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import get_args

import click
import pytest
from click.testing import CliRunner, Result

from ml_assets.cli import cli, main
from ml_assets.cli.common import PACKAGED_MAPPINGS, ColumnMappingFile
from ml_assets.demo import DemoSettings, service_env
from ml_assets.model.training import SplitKind, TrainingWindow
from ml_assets.settings import SERVE_PORT, UI_PORT, Settings
from ml_assets.synthetic.drift import Drift
from ml_assets.synthetic.narratives import NARRATIVE_SHARE, NarrativeSignal
from resources.home import ProjectHome

COMMANDS = sorted(cli.commands)


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_every_help_has_a_one_line_summary_and_an_example(command: str | None) -> None:
    result = invoke(*([command] if command else []), "--help")
    assert result.exit_code == 0, result.output
    summary = (cli.commands[command] if command else cli).help or ""
    assert summary.splitlines()[0] in [line.strip() for line in result.output.splitlines()]
    examples = result.output.split("Example", 1)[1].split("Options:")[0]
    assert f"ml-assets {command or ''}".strip() in examples, result.output


def test_the_root_help_lists_every_command_once_by_group() -> None:
    output = invoke("--help").output
    rows = [line.split()[0] for line in output.splitlines() if re.match(r"^  [a-z-]+  ", line)]
    assert sorted(rows) == COMMANDS
    assert all(f"\n{title}:\n" in output for title in ("Data", "Model", "Serving", "Platform"))


def parameter(command: str, name: str) -> click.Parameter:
    (found,) = [p for p in cli.commands[command].params if p.name == name]
    return found


@pytest.mark.parametrize(
    ("command", "name", "expected"),
    [
        ("train", "window_days", TrainingWindow().window_days),
        ("train", "evaluation_days", TrainingWindow().evaluation_days),
        ("train", "split", TrainingWindow().split),
        ("generate", "narrative_share", NARRATIVE_SHARE),
        ("generate", "text_signal", NarrativeSignal().strength),
        ("generate", "drift_product", Drift.product),
        ("generate", "drift_product_share", Drift.product_share),
        ("generate", "drift_issue", Drift.issue),
        ("generate", "drift_wording_share", Drift.wording_share),
        ("demo", "days", DemoSettings().days),
        ("demo", "more_days", DemoSettings().more_days),
        ("demo", "ui_port", UI_PORT),
        ("up", "ui_port", UI_PORT),
        ("predict", "url", f"http://127.0.0.1:{SERVE_PORT}"),
    ],
)
def test_defaults_are_read_from_where_they_are_defined(
    command: str, name: str, expected: object
) -> None:
    ctx = click.Context(cli.commands[command])
    assert parameter(command, name).get_default(ctx) == expected
    # and the help shows the value, not click's "(dynamic)"
    assert f"[default: {expected}" in " ".join(invoke(command, "--help").output.split())


def test_the_split_choices_are_the_training_split_kinds() -> None:
    split = parameter("train", "split")
    assert isinstance(split.type, click.Choice)
    assert tuple(split.type.choices) == get_args(SplitKind)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["generate", "--start", "2016-13-01"], "'2016-13-01' is not a date in YYYY-MM-DD form"),
        (["generate", "--days", "0"], "Invalid value for '--days': 0 is not in the range x>=1"),
        (["generate", "--label-delay-days", "5-2"], "'5-2': need 0 <= MIN <= MAX"),
        (["generate", "--label-delay-days", "soon"], "'soon' is not MIN-MAX days, e.g. 2-5"),
        (["generate", "--narrative-share", "1.5"], "1.5 is not in the range 0<=x<=1"),
        (["train", "--split", "random"], "'random' is not one of 'time', 'hash'"),
        (["predict"], "give one of --file or --json"),
        (["predict", "--json", "{}", "--file", "x.jsonl"], "give one of --file or --json"),
        (["land-cfpb"], "Missing argument 'PATH'"),
        (["fly"], "No such command 'fly'"),
    ],
)
def test_a_usage_error_exits_2_and_says_what_is_wrong(
    args: list[str], message: str, tmp_path: Path
) -> None:
    result = invoke("--home", str(tmp_path), *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Usage: ml-assets" in result.stderr


def test_main_returns_the_exit_code_as_the_console_script_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--help"]) == 0
    assert "Usage: ml-assets" in capsys.readouterr().out
    assert main(["--home", str(tmp_path), "generate", "--days", "0"]) == 2
    assert main(["--home", str(tmp_path), "counts"]) == 1
    assert "no warehouse at" in capsys.readouterr().err


def test_a_bad_setting_is_an_error_line_and_exit_1(tmp_path: Path) -> None:
    env = {Settings.env_name("today"): "garbage", Settings.env_name("home"): str(tmp_path)}
    result = invoke("generate", "--days", "1", env=env)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ML_ASSETS_TODAY='garbage'")
    assert "Traceback" not in result.output
    assert not (tmp_path / "landing").exists()


def test_a_missing_file_is_an_error_line_and_exit_1(tmp_path: Path) -> None:
    result = invoke("--home", str(tmp_path), "land-cfpb", str(tmp_path / "nowhere.csv"))
    assert result.exit_code == 1
    assert (
        result.stderr
        == f"error: [Errno 2] No such file or directory: '{tmp_path / 'nowhere.csv'}'\n"
    )


def test_columns_names_a_packaged_mapping_and_a_file_still_works(tmp_path: Path) -> None:
    packaged = ColumnMappingFile().convert("camel_case", None, None)
    assert json.loads(packaged.read_text())["DateReceived"] == "Date received"
    # A path to a mapping file stays a path, also one named like a packaged mapping.
    (tmp_path / "camel_case").write_text("{}")
    assert ColumnMappingFile().convert(str(tmp_path / "camel_case"), None, None) == (
        tmp_path / "camel_case"
    )
    assert ColumnMappingFile().convert("elsewhere.json", None, None) == Path("elsewhere.json")
    assert {p.name for p in PACKAGED_MAPPINGS.iterdir()} >= {"camel_case.json"}


def test_land_cfpb_columns_camel_case_lands_a_republished_export(tmp_path: Path) -> None:
    home = ["--home", str(tmp_path / "home")]
    plain, camel = tmp_path / "complaints.csv", tmp_path / "camel.csv"
    period = ["--start", "2016-01-01", "--end", "2016-01-03"]
    assert invoke(*home, "generate", "--export", str(plain), "--rows", "60", *period).exit_code == 0
    to_camel = {
        official: name
        for name, official in json.loads(
            ColumnMappingFile().convert("camel_case", None, None).read_text()
        ).items()
        if official is not None
    }
    with (
        plain.open(newline="", encoding="utf-8") as source,
        camel.open("w", newline="", encoding="utf-8") as target,
    ):
        reader = csv.DictReader(source)
        assert reader.fieldnames is not None
        writer = csv.DictWriter(target, [to_camel[name] for name in reader.fieldnames])
        writer.writeheader()
        writer.writerows({to_camel[k]: v for k, v in row.items()} for row in reader)

    refused = invoke(*home, "land-cfpb", str(camel), "--source", "complaints")
    assert refused.exit_code == 1 and "--columns MAPPING.json" in refused.stderr
    landed = invoke(
        *home, "land-cfpb", str(camel), "--source", "complaints", "--columns", "camel_case"
    )
    assert landed.exit_code == 0, landed.output
    assert (
        "complaints: read 60 rows; landed 60 rows in 3 day files (2016-01-01..2016-01-03), 3 written"
        in landed.stdout
    )
    # The same rows as the official layout: landing that one changes nothing.
    again = invoke(*home, "land-cfpb", str(plain))
    assert "3 day files (2016-01-01..2016-01-03), 0 written, 3 unchanged" in again.stdout


def _export(folder: Path, name: str = "complaints.csv") -> Path:
    """A three-day export generated by the CLI, in `folder`."""
    export = folder / name
    period = ["--start", "2016-01-01", "--end", "2016-01-03"]
    done = invoke(
        "--home",
        str(folder / "unused"),
        "generate",
        "--export",
        str(export),
        "--rows",
        "30",
        *period,
    )
    assert done.exit_code == 0, done.output
    return export


def _files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    "source",
    ["../../../../escaped", ".hidden", "a/b", "a\\b", "", "nul\x00byte", "/tmp/absolute"],
)
def test_land_cfpb_refuses_a_source_that_is_not_a_simple_name(tmp_path: Path, source: str) -> None:
    exports = tmp_path / "exports"
    exports.mkdir()
    export = _export(exports)
    # The day folders are four levels under tmp_path: "../../../../escaped" would land in it.
    home = ProjectHome.at(tmp_path / "home")

    result = invoke("--home", str(home.root), "land-cfpb", str(export), "--source", source)

    assert result.exit_code == 2, result.output
    assert "Usage: ml-assets land-cfpb" in result.stderr
    assert f"Invalid value for '--source': {source!r} cannot name landing files" in result.stderr
    assert "letters, digits, '-' and '_'" in result.stderr
    # Refused before anything is written: no file anywhere, no landing zone.
    assert _files_under(tmp_path) == {export}
    assert not home.landing.exists()


def test_land_cfpb_asks_for_a_source_when_the_file_name_is_none(tmp_path: Path) -> None:
    export = _export(tmp_path, ".complaints.csv")

    result = invoke("--home", str(tmp_path / "home"), "land-cfpb", str(export))

    assert result.exit_code == 2
    assert "'.complaints' cannot name landing files" in result.stderr
    assert f"(from the file name of {export}: pass --source NAME)" in result.stderr
    assert _files_under(tmp_path) == {export}


@pytest.mark.parametrize("source", ["cfpb_2024", "CFPB-export-2"])
def test_land_cfpb_lands_a_simple_source_name_in_the_landing_zone(
    tmp_path: Path, source: str
) -> None:
    home = ProjectHome.at(tmp_path / "home")
    export = _export(tmp_path)

    result = invoke("--home", str(home.root), "land-cfpb", str(export), "--source", source)

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{source}: read 30 rows; landed 30 rows in 3 day files")
    landed = {p for p in _files_under(tmp_path) if p.name == f"{source}.csv"}
    days = home.landing / "complaints"
    assert landed == {days / f"2016-01-0{d}/{source}.csv" for d in (1, 2, 3)}


def test_services_allocate_arrow_memory_from_the_system_pool(tmp_path: Path) -> None:
    # pyarrow's own pool keeps freed memory for later allocations; the services' runs hand it
    # back (a run of the 45 busiest days peaked 0.1 GiB lower).
    probe = "import pyarrow as pa; print(pa.default_memory_pool().backend_name)"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env=service_env(ProjectHome.at(tmp_path)),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert done.stdout.strip() == "system"
