"""Serving on two Ray nodes of one machine: replicas spread, and a node lost under load."""

import itertools
import json
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import psutil
import pytest
import requests

from ml_assets.jobs import MODEL_LAYER_ASSETS, SERVING_ASSETS
from ml_assets.serving.app import REPLICAS
from ml_assets.serving.deploy import APP_NAME, PROXY_ENV
from ml_assets.serving.schemas import MAX_COMPLAINTS
from ml_assets.synthetic.export import generate_landing
from ml_assets_tests.e2e.ray_cluster_helpers import materialize_data_layer, resources_on_head
from ml_assets_tests.e2e.test_serving import (
    AUTH,
    COMPLAINT,
    DAYS,
    TOKEN,
    command_line,
    materialize,
)
from ml_assets_tests.world import LEARNABLE
from resources.home import ProjectHome
from resources.local_services import free_port
from resources.ray_cluster import (
    cluster_pids,
    cluster_processes,
    start_head,
    start_worker,
    stop_head,
)

pytestmark = [pytest.mark.e2e, pytest.mark.services, pytest.mark.timeout(600)]
HEAD_CPUS, WORKER_CPUS = 2, 1
REPLICA_NAME = "ServeReplica:dispute_model:DisputeModelServer"
SPREAD_REQUESTS = 40
LOG_WAIT_S = 30.0
CLIENTS = 4
KILL_AFTER_S = 4.0  # the worker node is killed this far into the load
# Ray marks a raylet dead after its health checks fail (5 x 3 s by default); Serve then starts the
# lost replicas again. Measured some 20-30 s on 2 cores; this bounds a hang, not the speed.
RECOVERY_S = 180.0
SETTLED_S = 3.0  # load kept on once both replicas run again, to see the endpoint hold
MAX_FAILED_SHARE = 0.01


@dataclass
class TwoNodes:
    home: ProjectHome
    resources: dict
    endpoint: str
    head_dir: Path
    worker_dir: Path


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoNodes]:
    """A 2-CPU head and a 1-CPU worker node, the champion trained and served on them."""
    home = ProjectHome(tmp_path_factory.mktemp("multinode") / "home")
    # Ray's session paths end in unix sockets (at most 107 bytes): short temp dirs of our own.
    head_dir = Path(tempfile.mkdtemp(prefix="r", dir="/tmp"))
    worker_dir = Path(tempfile.mkdtemp(prefix="r", dir="/tmp"))
    token = head_dir / "auth_token"
    gcs_port, http_port = free_port(), free_port()
    try:
        start_head(
            head_dir,
            token,
            num_cpus=HEAD_CPUS,
            port=gcs_port,
            extra_env=PROXY_ENV,
            client_port=free_port(),
        )
        # Before the deploy, so that Serve has two nodes to place the replicas on.
        start_worker(f"127.0.0.1:{gcs_port}", worker_dir, token, WORKER_CPUS, extra_env=PROXY_ENV)
        generate_landing(home.landing, DAYS[0], len(DAYS), 300, seed=9, signal=LEARNABLE)
        resources = resources_on_head(home, gcs_port, token, http_port, TOKEN)
        with dg.instance_for_test() as instance:
            materialize_data_layer(instance, resources, DAYS)
            keys = [a.key for a in (*MODEL_LAYER_ASSETS, *SERVING_ASSETS)]
            assert materialize(home, instance, resources, keys).success
            endpoint = f"http://127.0.0.1:{http_port}"
            yield TwoNodes(home, resources, endpoint, head_dir, worker_dir)
    finally:
        import ray

        ray.shutdown()
        stop_head(worker_dir)
        stop_head(head_dir)
    # Outside `finally`: a failing setup's own error is not hidden by this one.
    assert cluster_pids(worker_dir) == [] and cluster_pids(head_dir) == []


def name_of(process: psutil.Process) -> str:
    """What a process is: Ray's workers carry their actor's name, its daemons their program's."""
    command = command_line(process).split()
    program = command[0] if command else "?"
    return Path(command[2] if program.endswith("python") and len(command) > 2 else program).name


def replicas_under(temp_dir: Path) -> list[psutil.Process]:
    """The model replicas' processes on the node that uses `temp_dir` (its raylet's children)."""
    return [p for p in cluster_processes(temp_dir) if REPLICA_NAME in command_line(p)]


def running_replicas() -> int:
    """Model replicas Serve reports RUNNING."""
    from ray import serve

    deployment = serve.status().applications[APP_NAME].deployments["DisputeModelServer"]
    # Keyed by state names (a private str enum, equal to its names): the name is the public part.
    return deployment.replica_states.get("RUNNING", 0)  # pyright: ignore[reportArgumentType]


def writers_of(nodes: TwoNodes, complaint_ids: set[str]) -> dict[str, int]:
    """Per prediction-log file (one per replica process): how many of these complaints it logged."""
    counts: dict[str, int] = {}
    for path in nodes.home.predictions.glob("*/*.jsonl"):
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        mine = sum(r["inputs"].get("complaint_id") in complaint_ids for r in lines)
        if mine:
            counts[path.name] = mine
    return counts


def post_complaint(endpoint: str, complaint_id: str) -> bool:
    """One prediction on a connection of its own; whether it was answered.

    A new connection each time: the kernel spreads connections over the nodes' proxies (they
    share the port through SO_REUSEPORT, as a load balancer in front of the nodes would), and a
    proxy routes to its own node's replica first."""
    try:
        answer = requests.post(
            f"{endpoint}/predict",
            json={"complaints": [{**COMPLAINT, "complaint_id": complaint_id}]},
            headers=AUTH,
            timeout=30,
        )
    except requests.RequestException:
        return False
    return answer.status_code == 200


def wait_for_logs(nodes: TwoNodes, complaint_ids: set[str], expected: int) -> dict[str, int]:
    """`writers_of` once at least `expected` of these complaints are logged (or after a while)."""
    deadline = time.monotonic() + LOG_WAIT_S
    counts = writers_of(nodes, complaint_ids)
    while sum(counts.values()) < expected and time.monotonic() < deadline:
        time.sleep(0.5)
        counts = writers_of(nodes, complaint_ids)
    return counts


def check_both_nodes_answer(nodes: TwoNodes) -> None:
    """One model replica per node, and both answer."""
    on_head, on_worker = replicas_under(nodes.head_dir), replicas_under(nodes.worker_dir)
    assert (len(on_head), len(on_worker)) == (1, 1), "Serve's SPREAD left a node without replica"
    assert running_replicas() == REPLICAS
    ids = {f"spread-{uuid.uuid4().hex[:8]}" for _ in range(SPREAD_REQUESTS)}
    assert all(post_complaint(nodes.endpoint, complaint_id) for complaint_id in ids)
    # Both nodes' proxies run the request guard (PROXY_ENV reached the worker node too): a body
    # over the limit is refused before any replica, whichever proxy took the connection (Serve
    # tags what a proxy forwards with x-request-id).
    oversized = {"complaints": [{}] * (MAX_COMPLAINTS * 100)}
    for _ in range(SPREAD_REQUESTS // 2):
        refused = requests.post(
            f"{nodes.endpoint}/predict", json=oversized, headers=AUTH, timeout=30
        )
        assert refused.status_code == 422 and "x-request-id" not in refused.headers
    # Each replica process logs to a file of its own: two files hold these complaints, so both
    # replicas answered, one per node.
    counts = wait_for_logs(nodes, ids, len(ids))
    print(f"answers per replica: {sorted(counts.values())}")
    assert sum(counts.values()) == len(ids) and len(counts) == REPLICAS


@dataclass
class Outage:
    answers: list[tuple[float, bool]]  # (finished at, answered)
    killed_at: float
    killed: list[psutil.Process]
    killed_names: list[str]  # what the killed processes were (read before the kill)
    recovered_after: float | None  # s from the kill until both replicas ran on the head again
    writers_before_kill: int  # replicas that had answered the load when the node was killed


def kill_the_worker_node_under_load(nodes: TwoNodes) -> Outage:
    """SIGKILL every process of the worker node while clients send; the load goes on until both
    replicas run on the head again, and a little longer."""
    answers: list[tuple[float, bool]] = []
    load_ids: list[str] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            complaint_id = f"load-{uuid.uuid4().hex[:12]}"
            load_ids.append(complaint_id)
            answers.append((time.monotonic(), post_complaint(nodes.endpoint, complaint_id)))

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    recovered_after: float | None = None
    try:
        time.sleep(KILL_AFTER_S)
        # The load reached both nodes' replicas (their logs flush every half second).
        writers_before_kill = len(wait_for_logs(nodes, set(load_ids), len(load_ids) // 2))
        killed = cluster_processes(nodes.worker_dir)
        killed_names = sorted(name_of(process) for process in killed)
        killed_at = time.monotonic()
        for process in killed:
            process.kill()
        deadline = killed_at + RECOVERY_S
        while time.monotonic() < deadline:
            on_head = len(replicas_under(nodes.head_dir))
            if on_head == REPLICAS and running_replicas() == REPLICAS:
                recovered_after = time.monotonic() - killed_at
                break
            time.sleep(0.5)
        time.sleep(SETTLED_S)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    return Outage(answers, killed_at, killed, killed_names, recovered_after, writers_before_kill)


def test_the_replicas_spread_over_two_nodes_and_survive_losing_one(two_nodes: TwoNodes) -> None:
    """Both nodes answer; then the worker node dies under load: the endpoint holds (at most 1 %
    failed) and Serve starts the lost replica again on the head."""
    # One test, in this order: the node kill leaves a one-node cluster behind.
    check_both_nodes_answer(two_nodes)
    outage = kill_the_worker_node_under_load(two_nodes)
    failed = sum(not ok for _, ok in outage.answers)
    successes = sorted(t for t, ok in outage.answers if ok)
    gap = max(later - earlier for earlier, later in itertools.pairwise(successes))
    recovered = "never" if outage.recovered_after is None else f"{outage.recovered_after:.1f} s"
    print(
        f"worker node killed ({len(outage.killed)} processes): {len(outage.answers)} requests, "
        f"{failed} failed, longest gap {gap * 1000:.0f} ms, both replicas running on the head "
        f"after {recovered}; killed: {outage.killed_names}"
    )
    assert outage.writers_before_kill == REPLICAS, "the load did not reach both nodes"
    assert not any(p.is_running() for p in outage.killed)
    assert outage.recovered_after is not None, f"the lost replica not back within {RECOVERY_S} s"
    assert failed <= MAX_FAILED_SHARE * len(outage.answers), f"longest gap {gap * 1000:.0f} ms"
    # Also over the outage alone (kill to recovery), not diluted by the calm before and after.
    during = [ok for t, ok in outage.answers if 0 <= t - outage.killed_at <= outage.recovered_after]
    assert sum(not ok for ok in during) <= MAX_FAILED_SHARE * len(during), (
        f"{sum(not ok for ok in during)} of {len(during)} requests failed during the outage"
    )
    assert any(t > outage.killed_at + outage.recovered_after for t in successes)
    assert replicas_under(two_nodes.worker_dir) == []
    assert post_complaint(two_nodes.endpoint, "after-the-outage")
