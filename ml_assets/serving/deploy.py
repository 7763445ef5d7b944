"""Deploying the Serve app to a running cluster, and checking it over HTTP (imports Ray lazily)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import requests

from ml_assets.model.features import MISSING_TOKEN, TEXT_FEATURE
from ml_assets.serving.auth import bearer_headers, require_token_beyond_loopback
from ml_assets.serving.guard import proxy_middlewares
from ml_assets.serving.schemas import SMOKE_COMPLAINT_ID_PREFIX, PredictRequest, ServingConfig
from ml_assets.serving.smoke import SMOKE_SIGNATURE_HEADER, sign

APP_NAME = "dispute_model"
# Set on the head's processes (`ml-assets ray-up`): Serve's HTTP proxy then runs the request
# guard itself, and a refused body never reaches a replica.
PROXY_ENV = {
    "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH": (
        f"{proxy_middlewares.__module__}.{proxy_middlewares.__qualname__}"
    )
}
SMOKE_TOLERANCE = 1e-4  # |served - offline| allowed per probability (float32 math, same model)


# A deployment given its code version (`resources.compat.ray.with_code_version`, passed in by
# the callers above this pure layer); without one, Serve picks a random version per deploy.
Versioned = Callable[[Any], Any]


def _unversioned(deployment: Any) -> Any:
    return deployment


def deploy(
    config: ServingConfig, host: str, port: int, versioned: Versioned = _unversioned
) -> None:
    """Deploy the app, or move it to a new version by an in-place `user_config` change (when
    `versioned` gives every deploy of this code the same code version)."""
    from ray import serve

    from ml_assets.serving.app import ChallengerScorer, DisputeModelServer

    require_token_beyond_loopback(host, config.api_token_sha256)
    serve.start(http_options={"host": host, "port": port})
    # Same code (the same code version) and graph, new user_configs: Serve calls `reconfigure`
    # on the running replicas instead of replacing them, so requests in flight finish and none
    # fail during the swap. The challenger's deployment is always there (idle without one), so
    # that adding, changing or removing a challenger is a reconfigure too.
    challenger = versioned(
        ChallengerScorer.options(user_config=config.scorer_config().model_dump())
    ).bind()
    app = versioned(DisputeModelServer.options(user_config=config.model_dump())).bind(challenger)
    serve.run(app, name=APP_NAME, route_prefix="/", blocking=False)


def serving_code_version() -> str:
    """A digest of the serving package's source: replicas are replaced when it changes, and
    reconfigured in place when only their `user_config` does."""
    package = Path(__file__).parent
    digest = hashlib.sha256()
    for path in sorted(package.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def served_versions(endpoint: str, timeout_s: float = 5.0) -> tuple[str | None, str | None]:
    """The champion and challenger versions the endpoint serves (None: not up; no challenger)."""
    try:
        answer = requests.get(f"{endpoint}/healthz", timeout=timeout_s)
    except requests.RequestException:
        return None, None
    if not answer.ok:
        return None, None
    health = answer.json()
    return health.get("model_version"), health.get("challenger_version")


def served_version(endpoint: str, timeout_s: float = 5.0) -> str | None:
    """The model version the endpoint serves, or None when it is not up."""
    return served_versions(endpoint, timeout_s)[0]


def features_to_record(row: Mapping[Hashable, Any] | Mapping[str, Any]) -> dict[str, Any]:
    """A raw complaint that maps back to the given model inputs (for checking the live path)."""
    record: dict[str, Any] = {}
    for key, value in row.items():
        name = str(key)
        if value == MISSING_TOKEN or value is None:
            continue
        if name == "zip3":
            record["zip_code"] = f"{value}XX"
        elif name == TEXT_FEATURE:
            if value:
                record["consumer_complaint_narrative"] = value
        elif name == "timely_response":
            record[name] = value == "yes"
        else:
            record[name] = value
    return record


@dataclass(frozen=True)
class SmokeResult:
    """How the endpoint's answers compared with offline predictions."""

    requests: int
    max_difference: float
    latency_ms_p50: float
    version: str


def _smoke_headers(token: str | None, key: bytes | None, payload: dict[str, Any]) -> dict[str, str]:
    """A smoke request's headers: the token, and the signature that marks it as the deployer's
    (without a key it is logged as any request)."""
    headers = bearer_headers(token)
    if key is not None:
        headers[SMOKE_SIGNATURE_HEADER] = sign(key, PredictRequest.model_validate(payload))
    return headers


def smoke_test(
    endpoint: str,
    records: Sequence[Mapping[str, Any]],
    expected: np.ndarray,
    version: str,
    token: str | None = None,
    smoke_key: bytes | None = None,
) -> SmokeResult:
    """Send records one by one and in one batch, signed with the deployment's `smoke_key` (so
    that monitoring leaves them out); raise when answers or version disagree."""
    latencies, served = [], []
    records = [
        {**record, "complaint_id": f"{SMOKE_COMPLAINT_ID_PREFIX}{i}"}
        for i, record in enumerate(records)
    ]
    for record in records:
        payload = {"complaints": [dict(record)]}
        began = time.perf_counter()
        answer = requests.post(
            f"{endpoint}/predict",
            json=payload,
            headers=_smoke_headers(token, smoke_key, payload),
            timeout=30,
        )
        latencies.append((time.perf_counter() - began) * 1000)
        answer.raise_for_status()
        body = answer.json()
        if body["model_version"] != version:
            raise RuntimeError(
                f"endpoint answered with version {body['model_version']}, expected {version}"
            )
        served.append(body["predictions"][0]["dispute_probability"])
    payload = {"complaints": [dict(r) for r in records]}
    batch = requests.post(
        f"{endpoint}/predict",
        json=payload,
        headers=_smoke_headers(token, smoke_key, payload),
        timeout=60,
    )
    batch.raise_for_status()
    batched = [p["dispute_probability"] for p in batch.json()["predictions"]]
    difference = float(
        np.max(
            np.abs(np.concatenate([np.asarray(served), np.asarray(batched)]) - np.tile(expected, 2))
        )
    )
    if difference > SMOKE_TOLERANCE:
        raise RuntimeError(
            f"served probabilities differ from offline ones by up to {difference:.2e} "
            f"(tolerance {SMOKE_TOLERANCE:.0e}) on {len(records)} evaluation complaints"
        )
    return SmokeResult(len(records) + 1, difference, float(np.median(latencies)), version)


class SmokeTestFailed(RuntimeError):
    """A deployed version answered wrongly; the version served before it serves again."""


def deploy_checked(
    wanted: ServingConfig,
    config_for: Callable[[str], ServingConfig],
    endpoint: str,
    host: str,
    port: int,
    records: Sequence[Mapping[str, Any]],
    expected: np.ndarray,
    token: str | None = None,
    versioned: Versioned = _unversioned,
    smoke_key: bytes | None = None,
) -> tuple[str | None, SmokeResult]:
    """Deploy `wanted` and smoke-test it; on failure put back the version served before.

    Returns the version served before (None: nothing was) and the smoke result. `config_for`
    builds the configuration of that earlier version, only when it has to come back.
    """
    previous = served_version(endpoint)
    deploy(wanted, host, port, versioned)
    try:
        smoke = smoke_test(endpoint, records, expected, wanted.model_version, token, smoke_key)
    # ValueError: a record the request model refuses, found when its request is signed (the
    # endpoint's 422 otherwise).
    except (RuntimeError, OSError, ValueError) as exc:
        if previous and previous != wanted.model_version:
            deploy(config_for(previous), host, port, versioned)
        raise SmokeTestFailed(
            f"version {wanted.model_version} failed its smoke test ({exc}); "
            f"version {previous or 'none'} serves again"
        ) from exc
    return previous, smoke
