"""The import contracts of `pyproject.toml` cover the whole project and break on a forbidden import.

`make lint` runs `lint-imports` on the repository; these tests run it on a copy with one import
added, the way a careless change would add it, and read what it reports.
"""

import importlib
import json
import os
import pkgutil
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import ml_assets

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("ml_assets", "resources", "sensors")
# Where the project's own import-linter contract types live (pyproject.toml's `contract_types`).
CONTRACT_TYPES = ".ci"
LINT_TIMEOUT_S = 120
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def importlinter_config() -> dict:
    """The `[tool.importlinter]` table of pyproject.toml."""
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]


def contracts() -> dict[str, dict]:
    """The contracts of pyproject.toml, by id."""
    return {c["id"]: c for c in importlinter_config()["contracts"]}


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` on the packages and the pyproject.toml under `root`."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache", "--no-logo"],
        cwd=root,
        # The copy first on the path, ahead of the editable install's finder; .ci/ for the
        # project's own contract type, as `make lint` runs it. Wide lines: without a terminal,
        # the report wraps at 80 columns.
        env={
            **os.environ,
            "PYTHONPATH": f"{root}{os.pathsep}{root / CONTRACT_TYPES}",
            "COLUMNS": "200",
        },
        capture_output=True,
        text=True,
        timeout=LINT_TIMEOUT_S,
    )


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """The packages lint-imports reads, the contract types and pyproject.toml, copied to change
    freely."""
    ignore = shutil.ignore_patterns("*.pyc", "__pycache__", "node_modules")
    for folder in [*importlinter_config()["root_packages"], CONTRACT_TYPES]:
        shutil.copytree(REPO / folder, tmp_path / folder, ignore=ignore)
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    return tmp_path


def append_line(root: Path, module: str, line: str) -> int:
    """Append `line` (an import, or a function holding one) to a module; the import's line."""
    with (root / module).open("a") as source:
        source.write(f"\n{line}  # noqa: E402, F401\n")
    return len((root / module).read_text().splitlines())


def verdicts(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """KEPT or BROKEN, by contract name, as lint-imports reports them."""
    return dict(re.findall(r"^(.+?) (KEPT|BROKEN)$", result.stdout, re.MULTILINE))


def test_every_module_of_ml_assets_has_a_layer() -> None:
    """A new module under ml_assets/ must be placed in the layers, or nothing would check it."""
    layered = {
        name.strip()
        for layer in contracts()["layers"]["layers"]
        for name in re.split(r"[|:]", layer)
    }
    modules = {f"ml_assets.{m.name}" for m in pkgutil.iter_modules(ml_assets.__path__)}
    assert modules | {"resources", "sensors"} == layered


def test_the_unchanged_project_keeps_every_contract(project_copy: Path) -> None:
    result = lint_imports(project_copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(contracts())} kept, 0 broken." in result.stdout


# Each forbidden import, appended to a module, and the contracts that must report it.
VIOLATIONS = [
    ("ml_assets/model/features.py", "import dagster", {"pure-code-knows-no-dagster"}),
    # Dagster's other distributions count too.
    ("ml_assets/serving/auth.py", "import dagster_shared", {"pure-code-knows-no-dagster"}),
    # Through a resource: serving code would load Dagster, and reach above its layer.
    (
        "ml_assets/serving/predictor.py",
        "import resources.warehouse",
        {"pure-code-knows-no-dagster", "layers"},
    ),
    ("resources/home.py", "import ml_assets.columns", {"resources-are-a-leaf"}),
    ("ml_assets/ingest/quality.py", "import ml_assets.model.metrics", {"data-apart-from-model"}),
    ("ml_assets/model/metrics.py", "import ml_assets.serving.schemas", {"layers"}),
    # The leak this contract was written after: a sensor using the CLI's helpers.
    ("sensors/run_failures.py", "import ml_assets.operations", {"layers"}),
    ("sensors/serving.py", "import sensors.run_failures", {"sensors-independent"}),
]


@pytest.mark.parametrize(("module", "line", "broken"), VIOLATIONS)
def test_a_forbidden_import_breaks_its_contract(
    project_copy: Path, module: str, line: str, broken: set[str]
) -> None:
    number = append_line(project_copy, module, line)

    result = lint_imports(project_copy)

    assert result.returncode == 1, result.stdout + result.stderr
    assert verdicts(result) == {
        c["name"]: "BROKEN" if key in broken else "KEPT" for key, c in contracts().items()
    }, result.stdout
    # The report names the offending module and line, so the fix is one look away.
    importer = module.removesuffix(".py").replace("/", ".")
    assert f"{importer} -> {line.split()[1]} (l.{number})" in result.stdout, result.stdout


# Each private import (a module path segment or a name with one leading underscore) of Dagster,
# Ray or another fenced package, added outside resources/compat/, and the name the report gives.
PRIVATE_IMPORTS = [
    (
        "ml_assets/runs.py",
        "from dagster._core.storage.tags import PARTITION_NAME_TAG",
        "dagster._core.storage.tags.PARTITION_NAME_TAG",
    ),
    # A private name of a public module, in a bench script.
    (
        "bench/serving_ray.py",
        "from ray.serve.context import _get_global_client",
        "ray.serve.context._get_global_client",
    ),
    # A resource beside the compat modules, importing a whole private module.
    ("resources/event_log.py", "import dagster._serdes", "dagster._serdes"),
    # Lazy, inside a test's function, and of another Dagster distribution.
    (
        "ml_assets_tests/test_event_log.py",
        "def _late() -> None:\n    from dagster_duckdb.io_manager import _get_cleanup_statement",
        "dagster_duckdb.io_manager._get_cleanup_statement",
    ),
    ("sensors/serving.py", "import mlflow.store._unity_catalog", "mlflow.store._unity_catalog"),
]


@pytest.mark.parametrize(("module", "line", "name"), PRIVATE_IMPORTS)
def test_a_private_import_outside_compat_breaks_its_contract(
    project_copy: Path, module: str, line: str, name: str
) -> None:
    number = append_line(project_copy, module, line)

    result = lint_imports(project_copy)

    assert result.returncode == 1, result.stdout + result.stderr
    fenced = contracts()["private-imports-fenced"]["name"]
    assert verdicts(result) == {
        c["name"]: "BROKEN" if c["name"] == fenced else "KEPT" for c in contracts().values()
    }, result.stdout
    importer = module.removesuffix(".py").replace("/", ".")
    assert f"{importer} is not allowed to import private names of {name.split('.')[0]}:" in (
        result.stdout
    )
    assert f"{importer} -> {name} (l.{number})" in result.stdout, result.stdout


@pytest.mark.parametrize(
    ("module", "line"),
    [
        # The fence itself.
        ("resources/compat/dagster.py", "from dagster._core.test_utils import freeze_time"),
        # Public: a dunder, and a private module of a package that is not fenced.
        ("ml_assets/runs.py", "from dagster import __version__"),
        ("ml_assets/runs.py", "from pandas._libs import lib"),
    ],
)
def test_imports_the_fence_allows_keep_every_contract(
    project_copy: Path, module: str, line: str
) -> None:
    append_line(project_copy, module, line)

    result = lint_imports(project_copy)

    assert result.returncode == 0, result.stdout + result.stderr
    assert set(verdicts(result).values()) == {"KEPT"}
    assert len(verdicts(result)) == len(contracts())


def test_importing_all_pure_code_loads_no_dagster() -> None:
    """At run time too (a Serve replica's process): no import of the pure code pulls Dagster in."""
    pure = contracts()["pure-code-knows-no-dagster"]["source_modules"]
    # walk_packages lists every module of a package (importing only its subpackages here,
    # where Dagster is loaded anyway); the fresh interpreter below imports them all.
    expected = set(pure) | {
        found.name
        for name in pure
        for found in pkgutil.walk_packages(
            getattr(importlib.import_module(name), "__path__", []), f"{name}."
        )
    }
    program = (
        "import importlib, json, sys\n"
        f"for name in {sorted(expected)!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules if m.startswith('dagster')})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=LINT_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stderr
    assert {
        "ml_assets.serving.app",
        "ml_assets.model.network",
        "ml_assets.columns",
        "ml_assets.settings",
    } <= expected
    assert json.loads(result.stdout) == []


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of a module graph: its strongly connected parts of more than one module."""
    # Tarjan's algorithm, iteratively (a recursive walk of ~150 modules is fine too, but needs
    # no recursion limit this way).
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                part = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    part.append(member)
                    if member == node:
                        break
                if len(part) > 1:
                    cycles.append(sorted(part))
    return cycles


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_cycles(graph) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_itself_back() -> None:
    """No import cycle between the project's modules, lazy imports inside functions included.

    The layers contract cannot see a cycle inside one layer (the asset modules were one:
    training -> evidence -> evaluation -> training, held open by a lazy import)."""
    import grimp

    graph = grimp.build_graph(*PACKAGES)
    modules = set(graph.modules)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) & modules for m in modules}
    assert import_cycles(edges) == []
