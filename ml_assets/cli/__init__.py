"""`ml-assets`: generate or land data, materialize the data layer, train, serve, run the platform.

One module per group of commands (data, model, serving, platform); each command's body imports
what it needs, so that `ml-assets --help` answers at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import click

from ml_assets.cli import data, model, platform, serving

# The groups of commands, in the order `ml-assets --help` lists them.
SECTIONS: tuple[tuple[str, tuple[click.Command, ...]], ...] = (
    ("Data", data.COMMANDS),
    ("Model", model.COMMANDS),
    ("Serving", serving.COMMANDS),
    ("Platform", platform.COMMANDS),
)


def user_errors() -> tuple[type[Exception], ...]:
    """Errors that are the user's to fix (a file, a setting): shown as `error: ...`, exit 1."""
    from ml_assets.ingest.cfpb_format import LandingFileError
    from ml_assets.settings import SettingsError

    return (LandingFileError, FileNotFoundError, SettingsError)


class UserError(click.ClickException):
    """A user's error, reported in one line without a traceback."""

    exit_code = 1

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", file=file, err=True)


class CommandGroups(click.Group):
    """The root command: its commands listed by group, and a user's error as `error: ...`."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # in the order of SECTIONS, not alphabetical

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Click lists one "Commands" section; this lists one per group, as the modules are, with
        # the names padded alike so that the sections line up.
        width = max(len(name) for name in self.commands)
        limit = formatter.width - 6 - width
        for title, commands in SECTIONS:
            with formatter.section(title):
                formatter.write_dl(
                    [((c.name or "").ljust(width), c.get_short_help_str(limit)) for c in commands]
                )

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            if isinstance(exc, user_errors()):
                raise UserError(str(exc)) from exc
            raise


@click.group(
    "ml-assets",
    cls=CommandGroups,
    context_settings={"help_option_names": ["-h", "--help"], "show_default": True},
)
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    help="The project home [default: ML_ASSETS_HOME, else ~/.ml_assets].",
)
def cli(home: Path | None) -> None:
    """Land complaints, materialize the data layer, train, serve, run the platform.

    \b
    Examples:
      ml-assets demo                    # the whole platform on synthetic data
      ml-assets generate --days 30 && ml-assets materialize && ml-assets train
      ml-assets --home /tmp/home counts --by-day
      ml-assets COMMAND --help
    """
    # The home is resolved by each command (`with_home`): help and usage errors need no settings.


for _, commands in SECTIONS:
    for command in commands:
        cli.add_command(command)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `ml-assets` console script: run a command line, return its exit code."""
    try:
        cli.main(args=argv, prog_name="ml-assets")
    except SystemExit as done:  # click's standalone mode ends every command line with one
        return done.code if isinstance(done.code, int) else int(done.code is not None)
