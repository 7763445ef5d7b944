"""The project's own import-linter contract type (`contract_types` in pyproject.toml).

import-linter's `forbidden` contract sees an external package as one node (`dagster._core.storage`
is `dagster` to it), so it cannot tell a private import from a public one. This contract reads
the lines grimp recorded for each import of an external package and reports those that reach a
private name. `make lint` puts this folder on PYTHONPATH for `lint-imports`.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import cast

from grimp import ImportGraph
from importlinter import Contract, ContractCheck, fields, output
from importlinter.application import contract_utils
from importlinter.domain.imports import Module


@dataclass(frozen=True, order=True)
class PrivateImport:
    """One import statement of a source module that reaches a private name of a package."""

    importer: str
    package: str
    line_number: int
    name: str  # the private module or name, dotted in full


def is_private(segment: str) -> bool:
    """Whether a module path segment or an imported name is private: one leading underscore."""
    return segment.startswith("_") and not (segment.startswith("__") and segment.endswith("__"))


def private_names(node: ast.Import | ast.ImportFrom, package: str) -> list[str]:
    """The private modules and names of `package` an import statement reaches, dotted in full."""

    def in_package(module: str) -> bool:
        return module == package or module.startswith(f"{package}.")

    if isinstance(node, ast.Import):
        return [
            alias.name
            for alias in node.names
            if in_package(alias.name) and any(map(is_private, alias.name.split(".")))
        ]
    if node.level or node.module is None or not in_package(node.module):
        return []  # a relative import stays inside the project
    module_is_private = any(map(is_private, node.module.split(".")))
    return [
        f"{node.module}.{alias.name}"
        for alias in node.names
        if module_is_private or is_private(alias.name)
    ]


def source_file(module: str) -> Path | None:
    """The file of a module of the project, found as Python (and grimp) find it."""
    root, *rest = module.split(".")
    spec = importlib.util.find_spec(root)
    if spec is None:
        return None
    if spec.submodule_search_locations is None:  # a top-level module
        return Path(spec.origin) if spec.origin and not rest else None
    for location in spec.submodule_search_locations:
        candidate = Path(location, *rest)
        for path in (candidate / "__init__.py", candidate.with_suffix(".py")):
            if path.is_file():
                return path
    return None  # a namespace package: no file, no imports


@cache
def import_statements(path: Path) -> dict[int, list[ast.Import | ast.ImportFrom]]:
    """A file's import statements (lazy ones inside functions too), by first line."""
    statements: dict[int, list[ast.Import | ast.ImportFrom]] = {}
    for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
        if isinstance(node, ast.Import | ast.ImportFrom):
            statements.setdefault(node.lineno, []).append(node)
    return statements


class PrivateImportsContract(Contract):
    """Source modules import no private module or name of the given external packages, except
    in the allowed modules (the fence that holds them, each with its reason).

    Private: a segment of the imported module's path, or an imported name, that starts with a
    single underscore (`dagster._core.storage.tags`, `dagster_duckdb.io_manager._get_cleanup_…`),
    dunders (`__version__`) excepted. Every import counts: lazy ones inside functions and those
    under `if TYPE_CHECKING:` too (unless the graph excludes them).

    Configuration options:
        - source_modules:    The modules checked, each with its descendants.
        - external_packages: The external packages whose private names are fenced in, as
                             patterns of their top-level names (`dagster*`, `ray`).
        - allowed_modules:   The modules, each with its descendants, that may import them.
                             (Optional.)
        - broken_contract_guidance: How to fix the contract, shown after the violations.
                             (Optional.)
    """

    source_modules = fields.ListField(subfield=fields.ModuleField())
    external_packages = fields.ListField(subfield=fields.StringField())
    allowed_modules = fields.ListField(subfield=fields.ModuleField(), required=False, default=[])
    broken_contract_guidance = fields.TextField(required=False)

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        if str(self.session_options.get("include_external_packages")).lower() != "true":
            raise ValueError(
                "This contract needs include_external_packages = true in the top level "
                "configuration: without it the graph holds no import of an external package."
            )
        # A field holds its parsed value once the contract is built (import-linter's own
        # contracts read them the same way).
        patterns = cast("list[str]", self.external_packages)
        sources = self._modules_with_descendants(graph, cast("list[Module]", self.source_modules))
        allowed = self._modules_with_descendants(graph, cast("list[Module]", self.allowed_modules))
        roots = set(self.session_options["root_packages"])
        found: set[PrivateImport] = set()
        for importer in sorted(sources - allowed):
            for package in graph.find_modules_directly_imported_by(importer):
                top = package.split(".")[0]
                if top in roots or not any(fnmatch.fnmatchcase(top, p) for p in patterns):
                    continue
                found |= self._private_imports(graph, importer, package)
        output.verbose_print(
            verbose, f"Found {len(found)} private imports in {len(sources - allowed)} modules."
        )
        return ContractCheck(
            kept=not found,
            metadata={"private_imports": sorted(found)},
        )

    def render_broken_contract(self, check: ContractCheck) -> None:
        private_imports: list[PrivateImport] = check.metadata["private_imports"]
        groups: dict[tuple[str, str], list[PrivateImport]] = {}
        for found in private_imports:
            groups.setdefault((found.importer, found.package), []).append(found)
        for (importer, package), imports in groups.items():
            output.print_error(f"{importer} is not allowed to import private names of {package}:")
            output.new_line()
            for found in imports:
                output.print_error(
                    f"-   {importer} -> {found.name} (l.{found.line_number})", bold=False
                )
            output.new_line()
            output.new_line()
        contract_utils.render_broken_contract_guidance(
            cast("str | None", self.broken_contract_guidance)
        )

    @staticmethod
    def _modules_with_descendants(graph: ImportGraph, modules: list[Module]) -> set[str]:
        names: set[str] = set()
        for module in modules:
            if module.name not in graph.modules:
                raise ValueError(f"Module '{module.name}' does not exist.")
            names |= {module.name, *graph.find_descendants(module.name)}
        return names

    @staticmethod
    def _private_imports(graph: ImportGraph, importer: str, package: str) -> set[PrivateImport]:
        path = source_file(importer)
        if path is None:
            return set()
        statements = import_statements(path)
        return {
            PrivateImport(importer, package, line, name)
            for detail in graph.get_import_details(importer=importer, imported=package)
            if (line := detail["line_number"]) is not None
            for node in statements.get(line, [])
            for name in private_names(node, package)
        }
