"""Room on a Ray cluster's nodes, for the pure code that sizes its work by it (imports no Ray)."""

from __future__ import annotations

from collections.abc import Mapping


def freest_node_cpus(free_cpus: Mapping[str, float], needed: float, task: str) -> float:
    """The CPUs free on the freest node (`free_cpus` by node id), at least `needed`: a task
    (`task` names it in the error) runs on one node, and Ray leaves it pending forever when no
    node has its CPUs free."""
    largest = max(free_cpus.values(), default=0.0)
    if largest < needed:
        raise RuntimeError(
            f"no Ray node has {needed:g} CPUs free for {task} (the freest has {largest:g}, "
            f"{len(free_cpus)} nodes): add a node (`ml-assets ray-up --workers 1`) or wait for "
            "the work that holds them"
        )
    return largest
