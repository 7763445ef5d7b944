"""The weighted split: sticky by complaint id, and the share it promises."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys

import pytest

from ml_assets.serving.routing import BUCKETS, bucket, to_challenger
from ml_assets.serving.schemas import SMOKE_COMPLAINT_ID_PREFIX


def _ids(count: int) -> list[str]:
    """Distinct ids shaped like the CFPB's (seven digits), in a fixed order."""
    return [str(i) for i in random.Random(27).sample(range(1_000_000, 10_000_000), count)]


@pytest.mark.parametrize("share", [0.1, 0.5])
def test_a_split_sends_its_share_within_sampling_error(share: float) -> None:
    ids = _ids(20_000)
    sent = sum(to_challenger(ids, share))
    # A binomial draw: within 4 standard deviations.
    sd = math.sqrt(len(ids) * share * (1 - share))
    assert abs(sent - len(ids) * share) < 4 * sd


def test_a_complaint_always_sees_the_same_version() -> None:
    ids = _ids(500)
    first = to_challenger(ids, 0.1)
    assert to_challenger(list(reversed(ids)), 0.1) == list(reversed(first))
    # A larger share keeps every complaint the smaller one sent, and adds others.
    wider = to_challenger(ids, 0.3)
    assert all(w for f, w in zip(first, wider, strict=True) if f) and sum(wider) > sum(first)


def test_another_process_puts_every_complaint_in_the_same_bucket() -> None:
    # Replicas are other processes, with Python's str hash salted differently in each.
    ids = _ids(50)
    code = (
        "import json, sys; from ml_assets.serving.routing import bucket; "
        "print(json.dumps([bucket(i) for i in json.loads(sys.argv[1])]))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code, json.dumps(ids)],
        env={**os.environ, "PYTHONHASHSEED": "12345"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(other.stdout) == [bucket(i) for i in ids]
    assert all(0 <= bucket(i) < BUCKETS for i in ids)


def test_no_share_and_no_id_stay_with_the_champion_and_a_smoke_id_is_any_id() -> None:
    ids = _ids(200)
    assert not any(to_challenger(ids, 0.0))
    assert all(to_challenger(ids, 1.0))
    # The prefix of the deployer's smoke requests hides nothing: only its signature keeps a
    # request on the champion (test_serving_units.py).
    smoke_ids = [f"{SMOKE_COMPLAINT_ID_PREFIX}{i}" for i in range(200)]
    assert to_challenger([None, *smoke_ids], 1.0) == [False] + [True] * 200
    assert to_challenger(smoke_ids, 0.5) == [bucket(i) < BUCKETS // 2 for i in smoke_ids]
