"""What logging a prediction costs the request path: the background `PredictionLog` against
writing each record synchronously, side by side in one run.

- `PredictionLog.append` (what the Serve replica calls): encode and enqueue; a thread writes
  batches (within the day's byte budget, the default's: never reached here).
- synchronous, file kept open: `json.dumps` + `write` + `flush` per record.
- synchronous, open per record: what a handler that opens its day's file per request pays.

    .venv/bin/python bench/prediction_log.py [--records N] [--repeats R] [--out FILE] [--smoke]

Prints microseconds per record (median of the repeats) and, as its last line, the ratios; writes
bench/results/prediction_log.md (`--smoke`: a temp folder). (Replaces a timed unit test: wall-clock thresholds in tests fail
on a loaded machine, ratios measured side by side do not.)
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ml_assets.serving.feedback import PredictionLog
from ml_assets.settings import Settings
from smoke import bench_parser, output_path, parse

SMOKE_SIZE = {"records": 200, "repeats": 1}
BUDGET = Settings.model_fields["prediction_log_max_bytes_per_day"].default
RECORD = {
    "request_time": "2026-11-24T10:00:00.000+00:00",
    "model_version": "1",
    "inputs": {"product": "Mortgage", "state": "CA", "consumer_complaint_narrative": "x" * 400},
    "dispute_probability": 0.2,
    "disputed": False,
}


def background(folder: Path, records: int) -> float:
    """Seconds the caller spends appending `records` to a PredictionLog (writes not included)."""
    log = PredictionLog(folder, BUDGET)
    began = time.perf_counter()
    for i in range(records):
        log.append({**RECORD, "i": i})
    spent = time.perf_counter() - began
    log.close()
    if log.written != records:
        raise RuntimeError(f"the log wrote {log.written} of {records} records")
    return spent


def synchronous_open_file(folder: Path, records: int) -> float:
    """Seconds to write each record to an open file and flush it, one by one."""
    began = time.perf_counter()
    with (folder / "sync.jsonl").open("a", encoding="utf-8") as handle:
        for i in range(records):
            handle.write(json.dumps({**RECORD, "i": i}) + "\n")
            handle.flush()
    return time.perf_counter() - began


def synchronous_open_per_record(folder: Path, records: int) -> float:
    """Seconds to open the day's file, append one record and close it, per record."""
    began = time.perf_counter()
    for i in range(records):
        with (folder / "per_record.jsonl").open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({**RECORD, "i": i}) + "\n")
    return time.perf_counter() - began


def median_us(case: Callable[[Path, int], float], records: int, repeats: int) -> float:
    """Median microseconds per record over `repeats` runs, each in a fresh folder."""
    runs = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as folder:
            runs.append(case(Path(folder), records) / records * 1e6)
    return statistics.median(runs)


def main() -> None:
    """Time the three cases; print and write the table, then the ratios."""
    parser = bench_parser(__doc__)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--out", help="the Markdown table (default bench/results/prediction_log.md)"
    )
    args = parse(parser, SMOKE_SIZE)
    cases = {
        "PredictionLog.append (background writer)": background,
        "synchronous, file kept open, flush per record": synchronous_open_file,
        "synchronous, open + append + close per record": synchronous_open_per_record,
    }
    results = {name: median_us(case, args.records, args.repeats) for name, case in cases.items()}
    base = results["PredictionLog.append (background writer)"]
    lines = [
        f"# Prediction log: cost on the request path ({args.records} records, median of "
        f"{args.repeats})",
        "",
        "| case | µs per record | times PredictionLog.append |",
        "| --- | ---: | ---: |",
        *(f"| {name} | {us:.2f} | {us / base:.1f} |" for name, us in results.items()),
    ]
    report = "\n".join(lines)
    print(report)
    out = output_path(args.out, "prediction_log.md", args.smoke)
    out.write_text(report + "\n")
    print(f"written {out}")
    values = list(results.values())
    print(
        f"prediction log ratios: sync_open_vs_append={values[1] / base:.2f} "
        f"sync_per_record_vs_append={values[2] / base:.2f}"
    )


if __name__ == "__main__":
    main()
