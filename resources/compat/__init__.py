"""The private names of Dagster, dagster-duckdb and Ray this project uses: one module per library.

Every import of a private module or name of these libraries (a path segment or a name with a
leading underscore) lives in `dagster.py`, `dagster_duckdb.py` or `ray.py`, each with why no public
API serves and the upstream issue or pull request that would give one, where there is one;
`dagster_testing.py` holds Dagster's test helpers, for the tests only. An upgrade that moves a
name breaks the import here, with its reason beside it, instead of somewhere in the asset graph.
`make lint` keeps it so: the `private-imports-fenced` import contract (`.ci/import_contracts.py`)
reports a private import in any other module of the project, its line and the name.

This package re-exports nothing: importing `resources.compat.ray` does not load Dagster.
"""
