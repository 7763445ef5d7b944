"""Secrets never show in the UI: the resources' config as the Dagster UI gets it, over GraphQL
from the code location loaded the way `dagster dev` loads it (a code server process)."""

import json
from pathlib import Path

import dagster as dg
import pytest

from ml_assets.settings import SECRET_FIELDS, Settings

REPO = Path(__file__).resolve().parents[1]
# What the UI's Resources pages ask for: every top-level resource, its fields and their values.
RESOURCES_QUERY = """
query Resources($selector: RepositorySelector!) {
  allTopLevelResourceDetailsOrError(repositorySelector: $selector) {
    __typename
    ... on ResourceDetailsList {
      results {
        name
        description
        resourceType
        configFields { name description isRequired defaultValueAsJson configTypeKey }
        configuredValues { key value type }
      }
    }
    ... on PythonError { message stack }
  }
}
"""
# Distinctive values, so that any trace of them in the answer is theirs.
SECRETS = {
    "failure_webhook_url": "https://hooks.example/services/T0KEN-in-the-path-7f3a9c?key=FAKE-query-token-51d2e8",
    "api_token": "FAKE-api-token-0c9b44d1",
}
# Each secret's parts, as a leak may show them apart (a quoted path, a query value).
SECRET_PARTS = ["T0KEN-in-the-path-7f3a9c", "FAKE-query-token-51d2e8", "FAKE-api-token-0c9b44d1"]


def workspace(folder: Path) -> Path:
    """A workspace file loading the project's code location, as the repository's own does."""
    path = folder / "workspace.yaml"
    path.write_text(
        "load_from:\n"
        "  - python_module:\n"
        "      module_name: ml_assets.definitions\n"
        "      location_name: ml_assets\n"
        f"      working_directory: {REPO}\n"
    )
    return path


def resources_as_the_ui_gets_them(workspace_file: Path) -> dict:
    """The answer of the UI's GraphQL API to the resources query."""
    from dagster_graphql.test.utils import (
        define_out_of_process_context,
        execute_dagster_graphql,
        infer_repository_selector,
    )

    with (
        dg.instance_for_test() as instance,
        define_out_of_process_context(str(workspace_file), None, instance) as context,
    ):
        answer = execute_dagster_graphql(
            context, RESOURCES_QUERY, {"selector": infer_repository_selector(context)}
        )
    assert not answer.errors, answer.errors
    return answer.data


@pytest.mark.services  # a code server over gRPC, as the UI reads it
def test_the_ui_shows_secret_variables_by_name_never_their_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert set(SECRETS) == SECRET_FIELDS
    monkeypatch.setenv(Settings.env_name("home"), str(tmp_path / "home"))
    for field, value in SECRETS.items():
        monkeypatch.setenv(Settings.env_name(field), value)

    data = resources_as_the_ui_gets_them(workspace(tmp_path))

    shown = json.dumps(data)
    answer = data["allTopLevelResourceDetailsOrError"]
    assert answer["__typename"] == "ResourceDetailsList", answer
    for secret in [*SECRETS.values(), *SECRET_PARTS]:
        assert secret not in shown
    values = {
        (resource["name"], value["key"]): (value["type"], value["value"])
        for resource in answer["results"]
        for value in resource["configuredValues"]
    }
    # Each secret's variable is there by name, where its value would be.
    webhook_env, token_env = (Settings.env_name(f) for f in ("failure_webhook_url", "api_token"))
    assert values[("failure_notifier", "webhook_url_env")] == ("VALUE", json.dumps(webhook_env))
    assert values[("ray_cluster", "api_token")] == ("ENV_VAR", token_env)
