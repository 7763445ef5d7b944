"""What every bench's command line shares: `--smoke`, and where its results go.

`--smoke` runs a bench at a tiny size, in seconds: it proves the bench still runs to its last line
(ml_assets_tests/bench/test_bench_smoke.py runs each one) and measures nothing worth keeping, so
its files go to a temp folder, never over the real results in bench/results/.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def bench_parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser described by the first line of a bench's docstring, with `--smoke`."""
    parser = argparse.ArgumentParser(description=(doc or "").strip().partition("\n")[0])
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a tiny size that runs in seconds, to check the bench runs (its results go to a "
        "temp folder); options given explicitly still apply",
    )
    return parser


def parse(
    parser: argparse.ArgumentParser,
    smoke_size: Mapping[str, Any],
    argv: Sequence[str] | None = None,
) -> argparse.Namespace:
    """The options; with `--smoke`, `smoke_size` replaces the defaults (not what was given)."""
    args = parser.parse_args(argv)
    if args.smoke:
        parser.set_defaults(**smoke_size)
        args = parser.parse_args(argv)
    return args


def output_path(given: str | None, name: str, smoke: bool) -> Path:
    """Where a bench writes `name`: the given path, a temp folder for a smoke run, or RESULTS."""
    if given:
        path = Path(given)
    elif smoke:
        path = Path(tempfile.mkdtemp(prefix="bench_smoke_")) / name
    else:
        path = RESULTS / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
