import json
import socket
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from ml_assets.ingest.cfpb_format import read_landing_day
from ml_assets.ingest.validation import split_valid_rejected
from ml_assets.model.features import FEATURE_COLUMNS, records_to_arrays, to_features
from ml_assets.serving.deploy import features_to_record
from ml_assets.serving.feedback import PredictionLog
from ml_assets.serving.predictor import split_by_lengths
from ml_assets.synthetic.export import generate_day
from resources.ray_cluster import RayCluster


def test_evaluation_rows_map_back_to_records_with_the_same_model_inputs() -> None:
    raw = read_landing_day(
        [("d.csv", generate_day(pd.Timestamp("2016-01-05").date(), 300, seed=3).encode())],
        "2016-01-05",
    )
    features = to_features(split_valid_rejected(raw).valid)[list(FEATURE_COLUMNS)]
    records = [features_to_record(row) for row in features.to_dict("records")]
    arrays = records_to_arrays(records)
    for name in FEATURE_COLUMNS:
        assert list(arrays[name]) == list(features[name].astype(str)), name


def test_the_prediction_log_writes_every_record_once_under_its_request_day(
    tmp_path: Path,
) -> None:
    # What an append costs the request path is measured by bench/prediction_log.py.
    log = PredictionLog(tmp_path)
    for i in range(1000):
        day = "2026-11-24" if i % 2 else "2026-11-25"
        log.append({"request_time": f"{day}T23:59:59", "model_version": "1", "inputs": {"i": i}})
    log.close()
    by_day = {
        folder.name: sorted(
            json.loads(line)["inputs"]["i"]
            for f in folder.glob("*.jsonl")
            for line in f.read_text().splitlines()
        )
        for folder in tmp_path.iterdir()
    }
    assert by_day == {"2026-11-24": list(range(1, 1000, 2)), "2026-11-25": list(range(0, 1000, 2))}
    assert (log.written, log.dropped) == (1000, 0)


def test_an_unwritable_log_folder_never_raises(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    log = PredictionLog(blocker)
    log.append({"request_time": "2026-11-24T10:00:00"})
    log.close()
    assert log.dropped == 1 and log.written == 0


def test_no_reachable_cluster_fails_with_how_to_start_one(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cluster = RayCluster(
        address=f"127.0.0.1:{port}", token_path=str(tmp_path / "t"), predictions_dir=str(tmp_path)
    )
    with pytest.raises(dg.Failure, match="make serve-up"):
        cluster.connect()


def test_probabilities_of_a_batch_split_back_in_request_order() -> None:
    parts = split_by_lengths(np.arange(6, dtype=float), [3, 1, 2])
    assert [list(p) for p in parts] == [[0, 1, 2], [3], [4, 5]]
    with pytest.raises(ValueError, match="6 values for 5"):
        split_by_lengths(np.arange(6, dtype=float), [3, 2])
