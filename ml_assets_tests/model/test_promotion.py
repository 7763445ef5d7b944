"""Promotion and rollback are pure: any registry with aliases and version tags will do.

The MLflow-backed registry is exercised in resources/test_mlflow_store.py and the model layer
tests; here an in-memory one shows the protocol is all the pure code needs.
"""

from dataclasses import dataclass, field

import pytest

from ml_assets.model.promotion import ChampionChange, promote, rollback
from ml_assets.model.tracking import CHAMPION_ALIAS, PREVIOUS_CHAMPION_TAG


@dataclass(frozen=True)
class Version:
    version: str
    tags: dict[str, str]


@dataclass
class InMemoryRegistry:
    model_name: str = "dispute"
    aliases: dict[str, str] = field(default_factory=dict)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)

    def version_for_alias(self, alias: str) -> Version | None:
        version = self.aliases.get(alias)
        return Version(version, self.tags.get(version, {})) if version else None

    def set_alias(self, alias: str, version: str) -> None:
        self.aliases[alias] = version

    def set_version_tag(self, version: str, key: str, value: str) -> None:
        self.tags.setdefault(version, {})[key] = value


def test_promotion_records_the_replaced_champion_and_rollback_returns_to_it() -> None:
    registry = InMemoryRegistry()
    assert promote(registry, "1") == ChampionChange(champion="1", previous=None)
    assert promote(registry, "2") == ChampionChange(champion="2", previous="1")
    assert registry.tags["2"][PREVIOUS_CHAMPION_TAG] == "1"
    # Promoting the champion again records nothing: it did not replace itself.
    assert promote(registry, "2") == ChampionChange(champion="2", previous=None)
    assert registry.tags["2"][PREVIOUS_CHAMPION_TAG] == "1"

    assert rollback(registry) == ChampionChange(champion="1", previous="2")
    assert registry.aliases[CHAMPION_ALIAS] == "1"


def test_rollback_refuses_without_a_champion_or_a_previous_one() -> None:
    registry = InMemoryRegistry()
    with pytest.raises(ValueError, match="no 'champion' alias"):
        rollback(registry)
    promote(registry, "1")
    with pytest.raises(ValueError, match="it was the first"):
        rollback(registry)
    assert registry.aliases[CHAMPION_ALIAS] == "1"
