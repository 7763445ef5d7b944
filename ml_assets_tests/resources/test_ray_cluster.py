"""RayCluster.connect against real Ray heads on 127.0.0.1 (free ports, a temp dir and token each)."""

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from resources.local_services import free_port
from resources.ray_cluster import RayCluster, start_head, stop_head

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
