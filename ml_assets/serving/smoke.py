"""A deployer's smoke requests, told apart from users' by an HMAC of their complaints.

The standard library's `hmac` and `hashlib` are all it takes (HMAC-SHA256, and a comparison in
constant time): one party signs, one verifies, with one shared key, so there is no token format,
key exchange or expiry for a library to bring. No timestamp either: a replayed smoke request can
only mark those same smoke complaints again, never a user's.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Final

from ml_assets.serving.schemas import PredictRequest, SmokeKey

SMOKE_SIGNATURE_HEADER: Final = "X-Smoke-Signature"


def signed_bytes(body: PredictRequest) -> bytes:
    """What a signature covers: the complaints as the request model reads them (the deployer
    signs before sending, the replica verifies after parsing, both through the same model)."""
    return body.model_dump_json().encode()


def sign(key: bytes, body: PredictRequest) -> str:
    """The signature header's value for a request: HMAC-SHA256, hex."""
    return hmac.new(key, signed_bytes(body), hashlib.sha256).hexdigest()


def is_smoke(key: bytes | None, body: PredictRequest, signature: str | None) -> bool:
    """Whether a request is the deployer's smoke request: signed with the deployment's key."""
    if key is None or signature is None:
        return False
    return hmac.compare_digest(sign(key, body).encode(), signature.encode())


def key_digest(key: bytes) -> str:
    """The SHA-256 hex digest the deployment's config keeps instead of the key."""
    return hashlib.sha256(key).hexdigest()


def read_key(path: Path) -> bytes:
    """The key a key file holds (its text, without surrounding whitespace)."""
    return path.read_text().strip().encode()


def smoke_key(path: Path) -> SmokeKey:
    """The config's reference to a key file: its path and the key's digest."""
    return SmokeKey(file=str(path), sha256=key_digest(read_key(path)))


def load_key(reference: SmokeKey) -> bytes:
    """The key a deployment was configured with, or an error saying what to do."""
    try:
        key = read_key(Path(reference.file))
    except OSError as exc:
        raise RuntimeError(
            f"cannot read the smoke-request key {reference.file} ({exc}): the replicas run where "
            "the deployer does not (serve from the project home's machine), or the file was "
            "removed; run deployment_job again, which writes a new one"
        ) from exc
    if not hmac.compare_digest(key_digest(key), reference.sha256):
        raise RuntimeError(
            f"the smoke-request key {reference.file} is not the one this deployment was "
            "configured with (a newer deployment replaced it): run deployment_job again"
        )
    return key
