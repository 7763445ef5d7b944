"""MkDocs hook: the configuration tables, generated from the code when the site is built.

`<!-- settings-table -->` becomes the environment variables of `ml_assets.settings.Settings`,
`<!-- config-table -->` the Dagster config classes of the assets: names, defaults and meanings
come from the classes themselves, so the docs cannot drift from them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

SETTINGS_MARKER = "<!-- settings-table -->"
CONFIG_MARKER = "<!-- config-table -->"


def _default(field: Any) -> str:
    """A field's default as the docs show it."""
    if field.default_factory is not None:
        value = field.default_factory()
        # A path under the user's home folder: show where, not whose.
        if isinstance(value, Path) and value.is_relative_to(Path.home()):
            return f"`~/{value.relative_to(Path.home())}`"
        return f"`{value}`"
    if field.is_required():
        return "required"
    if field.default is None:
        return "unset"
    return f"`{field.default}`"


def settings_table() -> str:
    """The environment variables: name, default, meaning."""
    from ml_assets.settings import Settings

    rows = ["| variable | default | what it sets |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        rows.append(
            f"| `{Settings.env_name(name)}` | {_default(field)} | {field.description or ''} |"
        )
    return "\n".join(rows)


def _fields(model: type[BaseModel]) -> str:
    """A config class's fields with their defaults, in one cell."""
    return ", ".join(f"`{name}` ({_default(field)})" for name, field in model.model_fields.items())


def config_table() -> str:
    """The Dagster config of each asset: its class and fields with defaults."""
    from ml_assets.assets.evaluation import BlessingConfig
    from ml_assets.assets.monitoring import DriftConfig, LiveConfig
    from ml_assets.assets.serving import DeploymentConfig
    from ml_assets.assets.training import ModelConfig, TrainingWindowConfig

    configs: list[tuple[str, type[BaseModel]]] = [
        ("training_dataset", TrainingWindowConfig),
        ("dispute_model", ModelConfig),
        ("model_evaluation (and its check `blessing`)", BlessingConfig),
        ("deployed_model", DeploymentConfig),
        ("input_drift", DriftConfig),
        ("live_performance", LiveConfig),
    ]
    rows = ["| asset | config | fields (defaults) |", "| --- | --- | --- |"]
    rows += [f"| `{asset}` | `{cls.__name__}` | {_fields(cls)} |" for asset, cls in configs]
    return "\n".join(rows)


def on_page_markdown(markdown: str, **_: Any) -> str:
    """Replace the markers of a page with the generated tables."""
    if SETTINGS_MARKER in markdown:
        markdown = markdown.replace(SETTINGS_MARKER, settings_table())
    if CONFIG_MARKER in markdown:
        markdown = markdown.replace(CONFIG_MARKER, config_table())
    return markdown
