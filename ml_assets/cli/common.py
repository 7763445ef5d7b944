"""What the command groups share: parameter types, deferred defaults, the project home."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import date
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec

import click

from resources.home import ProjectHome, make_private

if TYPE_CHECKING:
    from click.types import OptionHelpExtra

    from ml_assets.demo import DemoSettings
    from ml_assets.model.training import TrainingWindow
    from ml_assets.synthetic.drift import Drift
    from ml_assets.synthetic.narratives import NarrativeSignal

P = ParamSpec("P")

# Step events go to the Dagster instance (and UI); the terminal gets warnings and a line per day.
QUIET_RUN_CONFIG: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# The column mappings shipped as package data (pyproject.toml), chosen by name on the command line.
PACKAGED_MAPPINGS = files("ml_assets.ingest") / "column_mappings"


class Day(click.ParamType):
    """A calendar day written YYYY-MM-DD."""

    name = "day"

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        return "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> date:
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(value)
        except ValueError:
            self.fail(f"{value!r} is not a date in YYYY-MM-DD form", param, ctx)


class DayRange(click.ParamType):
    """MIN-MAX days (e.g. 2-5), or one number N for N-N."""

    name = "day range"

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        return "MIN-MAX"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        low, _, high = str(value).partition("-")
        try:
            bounds = (int(low), int(high or low))
        except ValueError:
            self.fail(f"{value!r} is not MIN-MAX days, e.g. 2-5", param, ctx)
        if not 0 <= bounds[0] <= bounds[1]:
            self.fail(f"{value!r}: need 0 <= MIN <= MAX", param, ctx)
        return bounds


class ColumnMappingFile(click.ParamType):
    """A packaged column mapping by name (`camel_case`), or the path of a JSON mapping file."""

    name = "mapping"

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        return "NAME|MAPPING.json"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> Traversable:
        if not isinstance(value, str):
            return value
        packaged = PACKAGED_MAPPINGS / f"{value}.json"
        if Path(value).is_file() or not packaged.is_file():
            return Path(value)  # a missing file fails where it is read, with the loader's message
        return packaged


def packaged_mapping_names() -> list[str]:
    """Names of the column mappings shipped with the package."""
    return sorted(p.name.removesuffix(".json") for p in PACKAGED_MAPPINGS.iterdir())


class ProjectDefault(click.Option):
    """An option whose default is a function reading it from where the project defines it.

    Importing those modules (pandas, Dagster) takes seconds: a function defers that until the
    default is needed, and this class shows its value in the command's help, where click shows
    "(dynamic)".
    """

    def get_help_extra(self, ctx: click.Context) -> OptionHelpExtra:
        extra = super().get_help_extra(ctx)
        if callable(self.default) and "default" in extra:
            extra["default"] = str(self.get_default(ctx, call=True))
        return extra


def training_window() -> TrainingWindow:
    """The training window's defaults (`ml_assets.model.training`)."""
    from ml_assets.model.training import TrainingWindow

    return TrainingWindow()


def drift_defaults() -> Drift:
    """The synthetic drift's defaults (the generator's `Drift`)."""
    from ml_assets.synthetic.drift import Drift

    return Drift(date.min)


def narrative_defaults() -> NarrativeSignal:
    """The synthetic narratives' defaults (the generator's `NarrativeSignal`)."""
    from ml_assets.synthetic.narratives import NarrativeSignal

    return NarrativeSignal()


def demo_defaults() -> DemoSettings:
    """What the demo lands and where its services listen, by default (`ml_assets.demo`)."""
    from ml_assets.demo import DemoSettings

    return DemoSettings()


def project_home(home: Path | None) -> ProjectHome:
    """The project home (`--home`, else the settings'), created owner-only for this process."""
    if home is None:
        from ml_assets.settings import load_settings

        home = load_settings().home
    resolved = ProjectHome.at(home)
    make_private(resolved)
    return resolved


def with_home(command: Callable[Concatenate[ProjectHome, P], int]) -> Callable[P, None]:
    """Call a command with the project home as its first argument; exit with the code it returns."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        ctx = click.get_current_context()
        ctx.exit(command(project_home(ctx.find_root().params["home"]), *args, **kwargs))

    return run
