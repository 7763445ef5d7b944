"""Run as a process: connect to a Ray cluster and, when asked, delete a Serve application.

Exits 0 once connected (and the application deleted), 3 when the connection was refused. Ray's
client retries a refused handshake and says why only at DEBUG: the test reads it from stderr."""

import logging
import sys

import ray

REFUSED = 3


def main(address: str, delete: str | None) -> int:
    """Connect to `address`; delete the Serve application `delete` when given."""
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("ray.util.client.worker").setLevel(logging.DEBUG)
    try:
        ray.init(address, logging_level="ERROR", log_to_driver=False)
    except ConnectionError as exc:
        print(f"refused: {exc}")
        return REFUSED
    if delete:
        from ray import serve

        serve.delete(delete)
    print("connected")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
