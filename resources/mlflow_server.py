"""The project home's MLflow tracking server, behind MLflow's own basic authentication.

Whoever can move the `champion` alias chooses the model the serving sensor deploys, so the REST
API any local user can reach on 127.0.0.1 asks for a login. (MLflow lets pages served from
localhost origins send credentials: a page on another loopback port, in a browser that already
logged in, could reuse that login; do not log in to it from a browser you also use for untrusted
local pages.)
MLflow's `basic-auth` app (the `mlflow[auth]` extra) rather than a proxy of our own: it keeps its
users in a database of its own and checks every REST, UI and artifact request, per experiment and
registered model. The password is generated into the home, readable by its owner only.
"""

from __future__ import annotations

import sys
from pathlib import Path

from resources.home import ProjectHome, ensure_secret
from resources.local_services import group_listens_on, running_pid, service_argv

# The service's PID and log file name (unchanged since it was the UI alone: a server that an
# older home runs is still found and stopped).
MLFLOW_SERVICE = "mlflow-ui"
# The admin that the platform's processes log in as; the first start of the server creates it.
REGISTRY_USER = "ml-assets"
# How long the server trusts a checked login (MLflow's default, 0, runs PBKDF2 on every request:
# a training run logs a few hundred).
LOGIN_CACHE_S = 60


def auth_folder(home: ProjectHome) -> Path:
    """The server's user store, its configuration and the generated secrets."""
    return home.mlflow / "auth"


def password_file(home: ProjectHome) -> Path:
    """The password of REGISTRY_USER, generated on first use (0600)."""
    path = auth_folder(home) / "password"
    ensure_secret(path)
    return path


def _auth_config(home: ProjectHome) -> Path:
    """Write the basic-auth app's configuration (no secret in it) and return its path."""
    folder = auth_folder(home)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "basic_auth.ini"
    path.write_text(
        "[mlflow]\n"
        # Users the admin adds later see nothing until they are granted a permission.
        "default_permission = NO_PERMISSIONS\n"
        f"database_uri = sqlite:///{folder / 'users.db'}\n"
        f"admin_username = {REGISTRY_USER}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        f"auth_cache_ttl_seconds = {LOGIN_CACHE_S}\n"
    )
    return path


def server_env(home: ProjectHome) -> dict[str, str]:
    """The server's own environment: its auth configuration, the admin's password on first start
    (ignored once the user exists), and the secret that signs its forms' CSRF tokens."""
    flask_secret = auth_folder(home) / "flask-secret"
    ensure_secret(flask_secret)
    return {
        "MLFLOW_AUTH_CONFIG_PATH": str(_auth_config(home)),
        "MLFLOW_AUTH_ADMIN_PASSWORD": password_file(home).read_text().strip(),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": flask_secret.read_text().strip(),
        # No background job runner: its consumers took ~2.5 GiB here for features this
        # project does not use.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }


def server_argv(home: ProjectHome, port: int) -> list[str]:
    """`mlflow server` with authentication, on the home's store, on 127.0.0.1:`port`."""
    mlflow = str(Path(sys.executable).parent / "mlflow")
    return [
        *(mlflow, "server", "--app-name", "basic-auth", "-h", "127.0.0.1", "-p", str(port)),
        *("--backend-store-uri", f"sqlite:///{home.mlflow / 'mlflow.db'}"),
        *("--default-artifact-root", str(home.mlflow / "artifacts")),
        # One user's registry: one worker.
        *("--workers", "1"),
    ]


def running_server(home: ProjectHome) -> str | None:
    """The URL of the home's tracking server while it runs and listens, else None."""
    argv = service_argv(home.logs, MLFLOW_SERVICE)
    pid = running_pid(home.logs, MLFLOW_SERVICE)
    if argv is None or pid is None or "--app-name" not in argv:
        # Not running, or an older home's unauthenticated UI: the platform keeps using the
        # store file, and `ml-assets down` / `up` replace the UI with the server.
        return None
    port = int(argv[argv.index("-p") + 1])
    # The login goes to whatever answers on the port: only to our own server, never to a
    # process another local user started there first.
    return f"http://127.0.0.1:{port}" if group_listens_on(pid, port) else None


def check_store_kept(home: ProjectHome) -> None:
    """Refuse a missing store beside the registry's artifacts: `mlflow server` would create an
    empty one, and the next model trained would become champion unchallenged."""
    artifacts = home.mlflow / "artifacts"
    store = home.mlflow / "mlflow.db"
    if not store.exists() and artifacts.is_dir() and any(artifacts.iterdir()):
        raise RuntimeError(
            f"the MLflow store {store} is missing, but {artifacts} holds the registry's "
            "artifacts: the registry and its champion were there. Restore the store from a "
            f"backup of {home.mlflow} and start again; to start a new registry on purpose, "
            f"move {artifacts} away first."
        )
