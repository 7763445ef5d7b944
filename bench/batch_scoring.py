"""Batch scoring throughput of a home's whole history: one Ray node against two, side by side.

Scores every row of the home's `complaint_features` table with its champion, as `complaint_scores`
does (Ray Data `map_batches` over actors that score as the endpoint does), on a Ray cluster of the
run's own: first one node with all `--cpus`, then a head and a worker node with half each. Both
layouts hold the same CPUs: on one machine the ratio measures what spreading over nodes costs
(object transfer between the nodes' stores, a second raylet), not a speed-up; on separate
machines the second node brings its own cores.

    .venv/bin/python bench/batch_scoring.py [--home PATH] [--days N] [--cpus 2] [--out FILE] [--smoke]

Writes bench/results/batch_scoring.md (`--smoke`: a temp folder); the last line is
`batch scoring: one_node=R/s two_nodes=R/s ratio=X`.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from ml_assets.assets.history import with_history
from ml_assets.assets.keys import FEATURES_TABLE
from ml_assets.assets.serving import serving_config
from ml_assets.columns import INGESTION_DATE_COLUMN
from ml_assets.definitions import local_resources
from ml_assets.model.tracking import CHAMPION_ALIAS
from ml_assets.serving.batch import BatchScores, score_on_cluster
from ml_assets.serving.schemas import MAX_COMPLAINTS, ServingConfig
from ml_assets.settings import load_settings
from resources.compat.ray import free_cpus_per_node
from resources.home import ProjectHome
from resources.local_services import free_port
from resources.mlflow_registry import ModelRegistry
from resources.ray_cluster import RayCluster, start_head, start_worker, stop_head
from resources.warehouse import Warehouse
from smoke import bench_parser, output_path, parse

LAYOUTS = ("1 node", "2 nodes")


@dataclass(frozen=True)
class Measured:
    """One layout's scoring of the history."""

    layout: str
    nodes_started: int
    result: BatchScores


def history(home: ProjectHome, days: int) -> pd.DataFrame:
    """The features table's rows: all of them, or the newest `days` ingestion days (0: all)."""
    newest = (
        f"where {INGESTION_DATE_COLUMN} in (select distinct {INGESTION_DATE_COLUMN} "
        f"from {FEATURES_TABLE} order by 1 desc limit {days})"
        if days
        else ""
    )
    with duckdb.connect(str(home.warehouse), read_only=True) as conn:
        rows = conn.execute(
            f"select * from {FEATURES_TABLE} {newest} order by {INGESTION_DATE_COLUMN}"
        ).fetchdf()
    # Each with its company history as of the day before its own, as complaint_scores gives it.
    return with_history(Warehouse(database=str(home.warehouse)), rows)


@contextlib.contextmanager
def cluster(node_cpus: list[int], predictions_dir: str) -> Iterator[RayCluster]:
    """A head with the first CPU count and a worker node per further one, on free ports; every
    node stopped by its temp dir afterwards, the workers first."""
    import ray

    root = Path(tempfile.mkdtemp(prefix="bs", dir="/tmp"))  # unix socket paths: short
    token = root / "auth_token"
    gcs_port = free_port()
    nodes = [root / f"n{i}" for i in range(len(node_cpus))]
    try:
        start_head(nodes[0], token, node_cpus[0], port=gcs_port, client_port=free_port())
        address = f"127.0.0.1:{gcs_port}"
        for temp_dir, cpus in zip(nodes[1:], node_cpus[1:], strict=True):
            start_worker(address, temp_dir, token, cpus)
        found = RayCluster(address=address, token_path=str(token), predictions_dir=predictions_dir)
        found.connect()
        yield found
    finally:
        ray.shutdown()
        for temp_dir in reversed(nodes):
            stop_head(temp_dir)


def measure(
    layout: str, node_cpus: list[int], features: pd.DataFrame, config: ServingConfig
) -> Measured:
    """Score the rows on a new cluster of this layout (actors' start and model load included)."""
    import ray

    with cluster(node_cpus, config.predictions_dir or "") as _:
        # The worker's raylet registers with the head a moment after `ray start` returns.
        deadline = time.monotonic() + 60
        while len([n for n in ray.nodes() if n["Alive"]]) < len(node_cpus):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{layout}: the nodes did not all join within 60 s")
            time.sleep(0.5)
        result = score_on_cluster(features, config, free_cpus_per_node())
    return Measured(layout, len(node_cpus), result)


def report(measured: list[Measured], rows: int, days: int, cpus: int, agree: float) -> str:
    """The Markdown table of both layouts and the ratio."""
    one, two = measured
    lines = [
        "# Batch scoring: 1 node against 2 nodes",
        "",
        f"{rows:,} complaints ({days} ingestion days), the champion, {cpus} CPUs in each layout "
        "(2 nodes: half each), on one machine. Wall time includes starting the actors and "
        "loading the model in each.",
        "",
        "| layout | nodes used | actors | seconds | complaints/s |",
        "|---|---|---|---|---|",
        *(
            f"| {m.layout} | {m.result.nodes} | {m.result.actors} | {m.result.seconds:.1f} "
            f"| {m.result.rows_per_s:,.0f} |"
            for m in measured
        ),
        "",
        f"Ratio 2 nodes / 1 node: {two.result.rows_per_s / one.result.rows_per_s:.2f}. Both "
        "layouts share this machine's cores, so the ratio is what the second node costs "
        "(transfers between the nodes' object stores, another raylet), not a speed-up; on "
        "separate machines the second node brings its own cores.",
        "",
        f"The two layouts' probabilities differ by at most {agree:.1e}.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Score the home's history on each layout and write the comparison."""
    parser = bench_parser(__doc__)
    parser.add_argument("--home", help="project home (default: $ML_ASSETS_HOME or .ml_assets/)")
    parser.add_argument("--days", type=int, default=0, help="newest ingestion days (0: all)")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of each layout, in all")
    parser.add_argument("--out", help="the Markdown (default bench/results/batch_scoring.md)")
    args = parse(parser, {"days": 2})
    home = ProjectHome.at(args.home or load_settings().home)
    registry = local_resources(home)["model_registry"]
    assert isinstance(registry, ModelRegistry)
    champion = registry.version_for_alias(CHAMPION_ALIAS)
    if champion is None:
        raise SystemExit(f"no champion in {home.root}: run `ml-assets train` first")
    config = serving_config(registry, champion.version, str(home.predictions), MAX_COMPLAINTS)
    features = history(home, args.days)
    days = features[INGESTION_DATE_COLUMN].nunique()
    half = max(1, args.cpus // 2)
    measured = [
        measure(LAYOUTS[0], [args.cpus], features, config),
        measure(LAYOUTS[1], [half, half], features, config),
    ]
    for m in measured:
        print(
            f"{m.layout}: {len(features)} complaints in {m.result.seconds:.1f} s "
            f"({m.result.rows_per_s:.0f}/s), {m.result.nodes} nodes used"
        )
    one, two = (m.result.scores["dispute_probability"].to_numpy() for m in measured)
    agree = float(np.max(np.abs(one - two))) if len(one) else 0.0
    out = output_path(args.out, "batch_scoring.md", args.smoke)
    out.write_text(report(measured, len(features), days, args.cpus, agree))
    print(f"written {out}")
    rates = [m.result.rows_per_s for m in measured]
    print(
        f"batch scoring: one_node={rates[0]:.0f}/s two_nodes={rates[1]:.0f}/s "
        f"ratio={rates[1] / rates[0]:.2f}"
    )


if __name__ == "__main__":
    main()
