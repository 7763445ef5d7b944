"""Moving the champion alias: promotion of a blessed version, and rollback to the one it replaced."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from ml_assets.model.tracking import CHAMPION_ALIAS, PREVIOUS_CHAMPION_TAG


class TaggedVersion(Protocol):
    """A registered model version: its number and its tags."""

    @property
    def version(self) -> str: ...

    @property
    def tags(self) -> Mapping[str, str]: ...


class AliasRegistry(Protocol):
    """What moving the champion needs of a model registry (`resources.ModelRegistry` has it)."""

    @property
    def model_name(self) -> str: ...

    def version_for_alias(self, alias: str) -> TaggedVersion | None: ...

    def set_alias(self, alias: str, version: str) -> None: ...

    def set_version_tag(self, version: str, key: str, value: str) -> None: ...


@dataclass(frozen=True)
class ChampionChange:
    """Which version serves as champion now, and which one did before."""

    champion: str
    previous: str | None


def promote(registry: AliasRegistry, version: str) -> ChampionChange:
    """Make `version` the champion, recording the current champion on it for rollback."""
    current = registry.version_for_alias(CHAMPION_ALIAS)
    previous = current.version if current and current.version != version else None
    if previous is not None:
        registry.set_version_tag(version, PREVIOUS_CHAMPION_TAG, previous)
    registry.set_alias(CHAMPION_ALIAS, version)
    return ChampionChange(champion=version, previous=previous)


def rollback(registry: AliasRegistry) -> ChampionChange:
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
