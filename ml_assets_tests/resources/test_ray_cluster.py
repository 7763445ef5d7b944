"""RayCluster.connect against real Ray heads on 127.0.0.1 (free ports, a temp dir and token each)."""

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from resources.home import ensure_secret
from resources.local_services import free_port
from resources.ray_cluster import RayCluster, cluster_pids, start_head, start_worker, stop_head

pytestmark = [pytest.mark.e2e, pytest.mark.services]


@pytest.fixture
def two_heads() -> Iterator[list[RayCluster]]:
    """Two one-CPU heads, each with a token of its own."""
    # Ray's session paths end in unix sockets (at most 107 bytes): short temp dirs.
    dirs = [Path(tempfile.mkdtemp(prefix="r", dir="/tmp")) for _ in range(2)]
    try:
        clusters = []
        for folder in dirs:
            port = free_port()
            start_head(folder, folder / "auth_token", 1, port=port, client_port=free_port())
            clusters.append(
                RayCluster(
                    address=f"127.0.0.1:{port}",
                    token_path=str(folder / "auth_token"),
                    predictions_dir=str(folder / "predictions"),
                )
            )
        yield clusters
    finally:
        import ray

        ray.shutdown()
        for folder in dirs:
            stop_head(folder)


def test_a_process_joins_a_second_cluster_with_its_own_token(two_heads: list[RayCluster]) -> None:
    import ray

    first, second = two_heads
    assert Path(first.token_path).read_text() != Path(second.token_path).read_text()
    for cluster in (first, second):
        cluster.connect()  # Ray caches the first token it reads: the second must not get it
        assert ray.cluster_resources()["CPU"] == 1
        ray.shutdown()


def test_a_worker_node_joins_with_the_heads_token_only_and_stops_alone(tmp_path: Path) -> None:
    import ray

    # Sibling temp dirs, one a prefix of the other's name: each node is still found alone.
    head_dir = Path(tempfile.mkdtemp(prefix="r", dir="/tmp"))
    worker_dir, stranger_dir = Path(f"{head_dir}-w"), Path(f"{head_dir}-x")
    token, other_token = head_dir / "auth_token", tmp_path / "other_token"
    ensure_secret(other_token)
    port = free_port()
    try:
        start_head(head_dir, token, 1, port=port, client_port=free_port())
        with pytest.raises(RuntimeError, match="InvalidAuthToken"):
            start_worker(f"127.0.0.1:{port}", stranger_dir, other_token, 1)
        start_worker(f"127.0.0.1:{port}", worker_dir, token, 1)
        cluster = RayCluster(
            address=f"127.0.0.1:{port}", token_path=str(token), predictions_dir=str(tmp_path)
        )
        cluster.connect()
        assert ray.cluster_resources()["CPU"] == 2 and len(ray.nodes()) == 2
        ray.shutdown()
        head_pids, worker_pids = cluster_pids(head_dir), cluster_pids(worker_dir)
        assert head_pids and worker_pids and not set(head_pids) & set(worker_pids)
        assert stop_head(worker_dir) == len(worker_pids)
        assert cluster_pids(worker_dir) == [] and cluster_pids(head_dir) == head_pids
    finally:
        ray.shutdown()
        for folder in (stranger_dir, worker_dir, head_dir):
            stop_head(folder)
