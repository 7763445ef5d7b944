"""The endpoint's optional bearer token: stored as a digest, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket

from ml_assets.settings import Settings

LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})


def token_digest(token: str) -> str:
    """The SHA-256 hex digest a deployment keeps instead of the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(given: str | None, expected_digest: str) -> bool:
    """Whether a presented token has the expected digest (constant-time comparison)."""
    return given is not None and hmac.compare_digest(token_digest(given), expected_digest)


def bearer_headers(token: str | None) -> dict[str, str]:
    """The Authorization header a client sends (none without a token)."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def is_loopback(host: str) -> bool:
    """Whether a bind address only accepts connections from this machine."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        # A host name: loopback only if every address it resolves to is.
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
        return all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


def require_token_beyond_loopback(host: str, digest: str | None) -> None:
    """Refuse to serve beyond loopback without a token: anyone on the network could use the model."""
    if digest is None and not is_loopback(host):
        raise ValueError(
            f"refusing to bind the endpoint to {host} without a token: anyone who can reach it "
            f"could use the model. Set {Settings.env_name('api_token')} (clients then send 'Authorization: Bearer "
            "<token>'), or serve on 127.0.0.1."
        )
