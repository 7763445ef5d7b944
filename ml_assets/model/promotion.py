"""Moving the champion alias: promotion of a blessed version, and rollback to the one it replaced."""

from __future__ import annotations

from dataclasses import dataclass

from ml_assets.constants import CHAMPION_ALIAS, PREVIOUS_CHAMPION_TAG
from resources.mlflow_registry import ModelRegistry


@dataclass(frozen=True)
class ChampionChange:
    """Which version serves as champion now, and which one did before."""

    champion: str
    previous: str | None


def promote(registry: ModelRegistry, version: str) -> ChampionChange:
    """Make `version` the champion, recording the current champion on it for rollback."""
    current = registry.version_for_alias(CHAMPION_ALIAS)
    previous = current.version if current and current.version != version else None
    if previous is not None:
        registry.set_version_tag(version, PREVIOUS_CHAMPION_TAG, previous)
    registry.set_alias(CHAMPION_ALIAS, version)
    return ChampionChange(champion=version, previous=previous)


def rollback(registry: ModelRegistry) -> ChampionChange:
    """Move the champion alias back to the version the current champion replaced."""
    current = registry.version_for_alias(CHAMPION_ALIAS)
    if current is None:
        raise ValueError(
            f"model {registry.model_name!r} has no '{CHAMPION_ALIAS}' alias: nothing to roll back"
        )
    previous = current.tags.get(PREVIOUS_CHAMPION_TAG)
    if not previous:
        raise ValueError(
            f"champion version {current.version} records no previous champion: it was the first, "
            "so there is nothing to roll back to"
        )
    registry.set_alias(CHAMPION_ALIAS, previous)
    return ChampionChange(champion=previous, previous=current.version)
