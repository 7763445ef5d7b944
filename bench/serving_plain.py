"""Cases (4) and (5) of bench/serving.py: the naive and the plain server (serving_servers.py), each
a process of its own on a free port, started together, checked, then measured one at a time."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from serving_measure import Measurements, Server, free_port, wait_healthy
from serving_model import ModelUnderTest

SERVERS = Path(__file__).with_name("serving_servers.py")
STOP_TIMEOUT_S = 15
CASES = {"naive": "(4) naive FastAPI + model.predict", "plain": "(5) plain FastAPI + tf.function"}
CASE_NUMBER = {"naive": "4", "plain": "5"}


@dataclass
class Running:
    """A started server process, its URL and its log."""

    kind: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def wait_ready(self) -> None:
        """Until it answers with its model loaded; its log's end in the error otherwise."""
        try:
            wait_healthy(self.url, lambda: self.process.poll() is None)
        except Exception as exc:
            # The log lives in the run's scratch folder, which is removed before the run ends.
            raise RuntimeError(
                f"the {self.kind} server did not come up ({exc}):\n{self.log.read_text()[-3000:]}"
            ) from exc


@contextlib.contextmanager
def started(kind: str, spec: Path, port: int, log: Path) -> Iterator[Running]:
    """`serving_servers.py --kind KIND` on 127.0.0.1:port, stopped (SIGTERM, then SIGKILL) after."""
    command = [
        sys.executable,
        str(SERVERS),
        "--kind",
        kind,
        "--spec",
        str(spec),
        "--port",
        str(port),
    ]
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=out)
    try:
        yield Running(kind, f"http://127.0.0.1:{port}", process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def server_spec(model: ModelUnderTest, kind: str, workdir: Path, feedback: bool) -> Path:
    """The version's ServingConfig for one server: its own feedback log under `workdir`."""
    # Not under the Ray head's temp dir: Ray's processes are found by the files they hold there.
    folder = str(workdir / f"predictions_{kind}") if feedback else None
    path = workdir / f"{kind}_spec.json"
    path.write_text(model.config.model_copy(update={"predictions_dir": folder}).model_dump_json())
    return path


def measure_plain(
    bench: Measurements,
    model: ModelUnderTest,
    kinds: list[str],
    concurrencies: dict[str, list[int]],
    ports: dict[str, int],
) -> None:
    """Start the servers together (model loading overlaps), check, then measure one at a time.

    `kinds`: some of naive and plain; `ports`: each one's preferred port."""
    feedback = model.config.predictions_dir is not None
    with contextlib.ExitStack() as stack:
        running = [
            stack.enter_context(
                started(
                    kind,
                    server_spec(model, kind, bench.workdir, feedback),
                    free_port(ports[kind]),
                    bench.workdir / f"{kind}.log",
                )
            )
            for kind in kinds
        ]
        for server in running:
            server.wait_ready()
            bench.check(server.kind, server.url, model)
        for server in running:
            processes = [psutil.Process(server.process.pid)]
            case = CASES[server.kind]
            measured = Server(case, [server.url], lambda p=processes: p)
            bench.levels(case, CASE_NUMBER[server.kind], measured, 1, concurrencies[server.kind])
