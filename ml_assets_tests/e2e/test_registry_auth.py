"""The home's MLflow server asks for a login: whoever reaches it cannot choose what is served."""

from __future__ import annotations

import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from ml_assets.definitions import local_resources
from ml_assets.demo import start_registry
from ml_assets.model.tracking import MODEL_NAME, PASSWORD_ENV, USERNAME_ENV
from resources.home import ProjectHome
from resources.local_services import free_port, stop_service
from resources.mlflow_registry import ModelRegistry
from resources.mlflow_server import (
    MLFLOW_SERVICE,
    REGISTRY_USER,
    auth_folder,
    password_file,
    running_server,
)

ALIAS = "champion"


@pytest.fixture
def registry_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ProjectHome]:
    """A project home whose authenticated MLflow server runs; the login it gave this process is
    taken back afterwards."""
    forget_registry_login(monkeypatch)
    home = ProjectHome.at(tmp_path / "home")
    start_registry(home, free_port())
    try:
        yield home
    finally:
        assert stop_service(home.logs, MLFLOW_SERVICE)


def forget_registry_login(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset MLflow's login variables now, and again when the test ends: set first, so that
    monkeypatch records them (it records nothing it deletes that was not there)."""
    for name in (USERNAME_ENV, PASSWORD_ENV):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


def _alias_move(url: str, version: str, auth: tuple[str, str] | None) -> requests.Response:
    """The REST call the review used to choose the served model: move the champion alias."""
    return requests.post(
        f"{url}/api/2.0/mlflow/registered-models/alias",
        json={"name": MODEL_NAME, "alias": ALIAS, "version": version},
        auth=auth,
        timeout=30,
    )


def test_an_alias_move_needs_the_login_and_the_platform_has_it(
    registry_server: ProjectHome,
) -> None:
    home = registry_server
    # The platform's resources go through the running server, logged in.
    registry = local_resources(home)["model_registry"]
    assert isinstance(registry, ModelRegistry)
    url = registry.tracking_uri
    assert url.startswith("http://127.0.0.1:") and registry.username == REGISTRY_USER
    client = registry.client()
    client.create_registered_model(MODEL_NAME)
    run = client.create_run(registry.experiment_id()).info
    for _ in range(2):
        client.create_model_version(MODEL_NAME, f"{run.artifact_uri}/model", run_id=run.run_id)
    registry.set_alias(ALIAS, "1")

    password = password_file(home).read_text().strip()
    assert _alias_move(url, "2", None).status_code == 401
    assert _alias_move(url, "2", (REGISTRY_USER, password[::-1])).status_code == 401
    assert _alias_move(url, "2", ("admin", "password1234")).status_code == 401
    # Refused calls changed nothing; the UI and the artifacts ask for the login too.
    version = registry.version_for_alias(ALIAS)
    assert version is not None and version.version == "1"
    assert requests.get(url, timeout=30).status_code == 401
    assert requests.get(f"{url}/get-artifact", timeout=30).status_code == 401

    accepted = _alias_move(url, "2", (REGISTRY_USER, password))
    assert accepted.status_code == 200, accepted.text
    version = registry.version_for_alias(ALIAS)
    assert version is not None and version.version == "2"

    # The password and the user store are the owner's alone.
    for path in (password_file(home), auth_folder(home) / "users.db"):
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


def test_without_the_server_the_platform_uses_the_store_file(tmp_path: Path) -> None:
    registry = local_resources(ProjectHome.at(tmp_path / "home"))["model_registry"]
    assert isinstance(registry, ModelRegistry)
    assert registry.tracking_uri.startswith("sqlite:///") and registry.username == ""


def test_a_port_another_process_holds_is_refused_before_any_login_is_sent(tmp_path: Path) -> None:
    home = ProjectHome.at(tmp_path / "home")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(RuntimeError, match=f"127.0.0.1:{port} is taken by a process"):
            start_registry(home, port)
    assert running_server(home) is None


def test_a_missing_store_beside_the_registrys_artifacts_is_refused(tmp_path: Path) -> None:
    home = ProjectHome.at(tmp_path / "home")
    (home.mlflow / "artifacts" / "1").mkdir(parents=True)
    with pytest.raises(RuntimeError, match=r"mlflow\.db is missing"):
        start_registry(home, free_port())
    assert running_server(home) is None and not (home.mlflow / "mlflow.db").exists()
