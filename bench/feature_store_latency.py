"""Serving latency with the online store's lookup against without it, side by side in one run.

Two models of the same synthetic days, one taking the company history and one not, each in the
replica's `Predictor` (the model's tf.function; the first also looks each complaint's company up
in the online store it opens, as a Serve replica does). Clients in threads send one complaint
per call for `--seconds`, 1 and 32 at a time, the two models taking turns round after round so
that the machine's drift hits both. Reports p50 and p99 per model and client count, and the
ratios. Measured at the replica, not through Serve's HTTP proxy (bench/serving.py measures that
path; the proxy's share is the same for both models).

    .venv/bin/python bench/feature_store_latency.py [--seconds 8] [--rounds 2] [--out PREFIX]
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml_assets.columns import INGESTION_DATE_COLUMN
from ml_assets.ingest.cfpb_format import read_landing_day
from ml_assets.ingest.validation import split_valid_rejected
from ml_assets.model.features import LABEL, to_features
from ml_assets.model.history import (
    LOG_COLUMNS,
    day_contributions,
    history_snapshots,
    log_label_arrivals,
    with_history_from,
)
from ml_assets.model.network import ModelParams, build_model
from ml_assets.model.online_store import write_online_store
from ml_assets.serving.predictor import Predictor
from ml_assets.synthetic.export import generate_day
from smoke import bench_parser, output_path, parse

FIRST = date(2016, 3, 1)
CLIENTS = (1, 32)


def world(days: int, per_day: int, store: Path) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Features with history of `days` synthetic days, the store of the last, and raw records of
    the last day (the requests)."""
    validated = []
    for offset in range(days):
        day = FIRST + timedelta(days=offset)
        text = generate_day(day, per_day, seed=3)
        raw = read_landing_day([("d.csv", text.encode())], day.isoformat())
        validated.append(split_valid_rejected(raw).valid)
    valid = pd.concat(validated, ignore_index=True)
    today = FIRST + timedelta(days)
    features = with_history_from(valid, to_features(valid), today)
    # The store: the snapshot of the last day, as feature_store writes it.
    log = log_label_arrivals(valid, pd.DataFrame(columns=list(LOG_COLUMNS)), today)
    last = FIRST + timedelta(days=days - 1)
    write_online_store(history_snapshots(day_contributions(log), [last]), store)
    requests = valid[pd.to_datetime(valid[INGESTION_DATE_COLUMN]).dt.date == last]
    records = [
        dict(r) for r in requests.astype(object).where(requests.notna(), None).to_dict("records")
    ]
    return features.dropna(subset=[LABEL]), records


def latencies(
    predictor: Predictor, records: Sequence[dict[str, Any]], clients: int, seconds: float
) -> list[float]:
    """Milliseconds per call of `clients` threads each scoring one complaint per call."""
    timings: list[float] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def client(offset: int) -> None:
        mine: list[float] = []
        i = offset
        while time.perf_counter() < stop:
            began = time.perf_counter()
            predictor.predict_records([records[i % len(records)]])
            mine.append((time.perf_counter() - began) * 1000)
            i += clients
        with lock:
            timings.extend(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return timings


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--days", type=int, default=20, help="synthetic days of history")
    parser.add_argument("--rows", type=int, default=300, help="complaints per day")
    parser.add_argument(
        "--seconds", type=float, default=8.0, help="per model, client count and round"
    )
    parser.add_argument("--rounds", type=int, default=2, help="turns each model takes")
    parser.add_argument("--out", help="the results' path prefix")
    args = parse(parser, {"days": 4, "rows": 60, "seconds": 0.5, "rounds": 1})
    store = Path(tempfile.mkdtemp(prefix="fs_")) / "online.sqlite"
    rows, records = world(args.days, args.rows, store)
    predictors = {
        "without history": Predictor(build_model(rows, ModelParams(use_history=False))),
        "with the store's lookup": Predictor(build_model(rows, ModelParams()), str(store)),
    }
    for predictor in predictors.values():
        predictor.predict_records(records[:1])  # traced, as a replica is before traffic
    timings: dict[tuple[str, int], list[float]] = {(m, c): [] for m in predictors for c in CLIENTS}
    for _ in range(args.rounds):
        for clients in CLIENTS:
            for name, predictor in predictors.items():
                timings[(name, clients)] += latencies(predictor, records, clients, args.seconds)
    figures = {
        f"{name}|{clients}": {
            "calls": len(values),
            "p50_ms": round(float(np.percentile(values, 50)), 3),
            "p99_ms": round(float(np.percentile(values, 99)), 3),
        }
        for (name, clients), values in timings.items()
    }
    table = [
        "# Serving latency with the online store's lookup (replica level, one complaint a call)",
        "",
        f"{args.days} synthetic days of {args.rows} complaints; {args.rounds} round(s) of "
        f"{args.seconds:g} s per model and client count, the models taking turns.",
        "",
        "| clients | model | calls | p50 ms | p99 ms |",
        "|---|---|---|---|---|",
    ]
    for clients in CLIENTS:
        for name in predictors:
            f = figures[f"{name}|{clients}"]
            table.append(f"| {clients} | {name} | {f['calls']} | {f['p50_ms']} | {f['p99_ms']} |")
    ratios = {
        f"{q}_{clients}": round(
            figures[f"with the store's lookup|{clients}"][f"{q}_ms"]
            / figures[f"without history|{clients}"][f"{q}_ms"],
            2,
        )
        for clients in CLIENTS
        for q in ("p50", "p99")
    }
    table += ["", "Ratios with / without: " + ", ".join(f"{k} {v}" for k, v in ratios.items())]
    out = output_path(args.out, "feature_store_latency", args.smoke)
    out.with_suffix(".md").write_text("\n".join(table) + "\n")
    out.with_suffix(".json").write_text(
        json.dumps({"figures": figures, "ratios": ratios}, indent=2)
    )
    print("\n".join(table))
    print("feature store latency ratios: " + " ".join(f"{k}={v}" for k, v in ratios.items()))


if __name__ == "__main__":
    main()
