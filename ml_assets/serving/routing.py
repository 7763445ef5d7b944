"""Which version answers a complaint under a weighted split: sticky by complaint id."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

# Buckets of the hash: a share is honoured to 1/10,000.
BUCKETS = 10_000


def bucket(complaint_id: str) -> int:
    """The complaint's bucket in [0, BUCKETS): the same on every replica and every day."""
    # blake2b, not hash(): Python salts str hashes per process, and replicas must agree.
    digest = hashlib.blake2b(complaint_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def to_challenger(complaint_ids: Sequence[str | None], share: float) -> list[bool]:
    """Whether each complaint goes to the challenger: its bucket below `share` of them.

    A complaint without an id always goes to the champion; every id is routed alike (a
    deployment's smoke request, told by its signature, is not split at all: the app's choice)."""
    cut = round(share * BUCKETS)
    return [cid is not None and bucket(cid) < cut for cid in complaint_ids]
