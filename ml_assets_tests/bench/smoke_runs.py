"""Running a bench at its `--smoke` size, as a user would: `python bench/SCRIPT --smoke ...`."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[2] / "bench"
# A smoke run takes seconds to a couple of minutes; far longer means it hangs.
TIMEOUT_S = 420


def bench_module(name: str) -> ModuleType:
    """`bench/NAME.py` imported: a bench script, not a package module, so loaded from its file."""
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def last_line(
    script: str, *args: str, env: dict[str, str] | None = None, timeout_s: float = TIMEOUT_S
) -> str:
    """Run `bench/SCRIPT --smoke ARGS`; its last line, once it exited 0."""
    result = subprocess.run(
        [sys.executable, str(BENCH / script), "--smoke", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert result.returncode == 0, (
        f"{script} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout.strip().splitlines()[-1]
