"""The Dagster UI in a real browser: headless Chromium (Debian's) driven by playwright-core.

Starts `dagster dev` on 127.0.0.1 for a project home with two ingested days and runs
`ml_assets_tests/ui/ui_check.mjs` against it. Skips without Chromium or `npm ci` in
ml_assets_tests/ui, fails there when REQUIRE_UI=1 (set by .ci/run). Screenshots: the home's
`screenshots/`, or ML_ASSETS_UI_SHOTS.
"""

import contextlib
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psutil
import pytest

from ml_assets.jobs import DATA_LAYER_KEYS
from ml_assets_tests.e2e.dagster_daemon import BIN, REPO, home_env, ml_assets
from ml_assets_tests.world import YESTERDAY
from resources.local_services import group_pids, start_service, stop_service, wait_http

pytestmark = [pytest.mark.e2e, pytest.mark.services, pytest.mark.timeout(900)]
UI_DIR = REPO / "ml_assets_tests" / "ui"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
GROUPS = ["data_layer", "features", "model"]
ASSETS = [k.to_user_string() for k in DATA_LAYER_KEYS] + [
    "training_dataset",
    "dispute_model",
    "model_evaluation",
    "champion_model",
    "deployed_model",
]
CHECKS = [
    "rows_reconcile",
    "typed_contract",
    "no_unmasked_pii",
    "rejected_rate",
    "label_balance",
]


def missing_tools() -> list[str]:
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append("chromium (apt-get install chromium)")
    if shutil.which("node") is None:
        missing.append("node")
    if not (UI_DIR / "node_modules" / "playwright-core").exists():
        missing.append(f"playwright-core (npm ci in {UI_DIR})")
    return missing


def alive(process: psutil.Process) -> bool:
    """Running, and not a zombie (dagster dev is this process's child until it is reaped)."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture(scope="module")
def ui_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    missing = missing_tools()
    if missing:
        message = f"the browser check needs {', '.join(missing)}"
        if os.environ.get("REQUIRE_UI") == "1":
            pytest.fail(message + " (REQUIRE_UI=1)")
        pytest.skip(message)
    home = tmp_path_factory.mktemp("ui") / "home"
    first = (YESTERDAY - timedelta(days=1)).isoformat()
    ml_assets(home, "generate", "--start", first, "--days", "2", "--rows-per-day", "50")
    ml_assets(home, "materialize")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    logs = home / "logs"
    argv = [str(BIN / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(port)]
    group = start_service(
        logs, "dagster-dev", [*argv, "-w", str(REPO / "workspace.yaml")], home_env(home)
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/server_info", 240, logs / "dagster-dev.log")
        yield url, home
    finally:
        # What `make down` does to dagster dev: its whole process group stops (webserver, daemon,
        # code servers), and none of their ports listens any more.
        processes, ports = [], set()
        for pid in group_pids(group):
            with contextlib.suppress(psutil.NoSuchProcess):  # a run worker may end meanwhile
                process = psutil.Process(pid)
                listening = process.net_connections("tcp")
                ports |= {c.laddr.port for c in listening if c.status == psutil.CONN_LISTEN}
                processes.append(process)
        stop_service(logs, "dagster-dev")
        assert port in ports and not any(alive(p) for p in processes)
        still = {
            c.laddr.port for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN
        }
        assert not ports & still


def test_the_ui_shows_the_pipeline_and_materializes_a_partition(
    ui_url: tuple[str, Path],
) -> None:
    url, home = ui_url
    shots = Path(os.environ.get("ML_ASSETS_UI_SHOTS") or home / "screenshots")
    done = subprocess.run(
        [
            "node",
            str(UI_DIR / "ui_check.mjs"),
            f"--url={url}",
            f"--shots={shots}",
            f"--partition={YESTERDAY.isoformat()}",
            f"--groups={','.join(GROUPS)}",
            f"--assets={','.join(ASSETS)}",
            f"--checks={','.join(CHECKS)}",
            f"--chromium={CHROMIUM}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\nscreenshots: {shots}"
    assert f"asset graph: all {len(ASSETS)} assets shown" in done.stdout
    assert "launched from the UI: Success" in done.stdout
    assert {p.name for p in shots.glob("*.png")} >= {"graph_data_layer.png", "runs.png"}
