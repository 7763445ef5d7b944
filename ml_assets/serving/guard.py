"""Limits enforced before any work: the body's size as it arrives, the complaint count as it parses.

It runs twice on the local cluster: in Serve's HTTP proxy (`proxy_middlewares`), so a refused body
never travels to a replica, and in the app, for clusters whose proxy was started without it.
A plain ASGI middleware: `@api.middleware("http")` would wrap every request in Starlette's
BaseHTTPMiddleware (task group, memory stream, response wrapper), which bench/serving.py measured at
about a third of the replica's CPU per single-complaint request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from ml_assets.serving.schemas import (
    MAX_BODY_BYTES,
    MAX_COMPLAINTS,
    ErrorResponse,
    ValidationErrorItem,
    ValidationErrorResponse,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
# The JSON path of the complaint list's items, as ijson names it.
# {"complaints": [{"field": value}]}: object, list, complaint; a field's value nests no deeper.
MAX_DEPTH = 3
# Bytes parsed per step: past the limit after at most this much more (1,001 items take 3 KB).
FEED_BYTES = 4096
_VALUE_STARTS = frozenset({"start_map", "start_array", "string", "number", "boolean", "null"})


class BodyTooLarge(Exception):
    """The body grew past MAX_BODY_BYTES while it was received."""


class TooManyComplaints(Exception):
    """The complaint list passed its maximum while the body was received."""

    def __init__(self, count: int) -> None:
        super().__init__(count)
        self.count = count


class TooDeep(Exception):
    """The body nests deeper than any valid request (object, list, complaint, field)."""


class ComplaintCounter:
    """Counts the complaint list's items as the body's chunks arrive.

    ijson's push parser rather than `json.loads` on the whole body: a 7.7 MiB list of empty
    complaints takes about a second to parse whole, and the answer is known at item `limit + 1`,
    a few kilobytes in, before the rest has even arrived. Its basic events (no JSON paths, which
    ijson rebuilds per event and cost quadratic time on deep nesting), numbers as floats (its C
    backend crashes the process on integers of over 4,300 digits), and a depth limit: the state
    below is what a JSON-path library would otherwise keep.
    """

    def __init__(self, limit: int = MAX_COMPLAINTS) -> None:
        import ijson

        self.limit = limit
        self.count = 0
        self._events = ijson.sendable_list()
        self._parser: Any = ijson.basic_parse_coro(self._events, use_float=True)
        self._depth = 0
        self._key: str | None = None  # the last key of the top-level object
        self._done = False  # not JSON, or past the list: the app answers from here

    def feed(self, chunk: bytes) -> None:
        """Parse one more chunk; raises TooManyComplaints or TooDeep as soon as it can tell."""
        # A server hands over whatever the socket had (often 64-256 KiB): parsed whole, that is
        # ~85,000 empty complaints' events built before the first is counted.
        for start in range(0, len(chunk), FEED_BYTES):
            if self._done:
                return
            try:
                self._parser.send(chunk[start : start + FEED_BYTES])
            except Exception:  # any parse error: not JSON; the app answers 400 with its reason
                self._done = True
            for event, value in self._events:
                self._step(event, value)
                if self._done:
                    break
            del self._events[:]

    def _step(self, event: str, value: object) -> None:
        in_list = self._depth == 2 and self._key == "complaints"
        if in_list and event in _VALUE_STARTS:
            self.count += 1
            if self.count > self.limit:
                raise TooManyComplaints(self.count)
        if event == "map_key" and self._depth == 1:
            self._key = str(value)
        elif event in ("start_map", "start_array"):
            self._depth += 1
            if self._depth > MAX_DEPTH:
                raise TooDeep
        elif event in ("end_map", "end_array"):
            self._depth -= 1
            if in_list and event == "end_array":
                self._done = True  # the list is complete: nothing more to count


async def read_body(
    receive: Receive, counter: ComplaintCounter | None = None, limit: int = MAX_BODY_BYTES
) -> bytes:
    """The whole request body, counted while it arrives (chunked bodies included)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        if counter is not None:
            counter.feed(chunk)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _json_response(status: int, body: dict[str, Any]) -> tuple[Message, Message]:
    payload = json.dumps(body).encode()
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            # The rest of the body is never read: closing stops the client from sending it and
            # the server from receiving it (RFC 9110 allows it for 413; the same holds for 422).
            (b"connection", b"close"),
        ],
    }
    return start, {"type": "http.response.body", "body": payload}


class RequestGuard:
    """Refuse an oversized body (413) or complaint list (422) before the app parses it."""

    def __init__(self, app: ASGIApp, predict_path: str = "/predict") -> None:
        self.app = app
        self.predict_path = predict_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        refusal = self._declared_too_large(scope)
        body = b""
        if refusal is None:
            counter = ComplaintCounter() if scope["path"] == self.predict_path else None
            try:
                body = await read_body(receive, counter)
            except BodyTooLarge:
                refusal = self._too_large()
            except TooManyComplaints as exc:
                refusal = self._too_many(exc.count)
            except TooDeep:
                refusal = _json_response(
                    400,
                    ErrorResponse(
                        detail=f"the body nests deeper than {MAX_DEPTH} levels: not a request"
                    ).model_dump(),
                )
        if refusal is not None:
            for message in refusal:
                await send(message)
            return
        await self.app(scope, _replay(body, receive), send)

    def _declared_too_large(self, scope: Scope) -> tuple[Message, Message] | None:
        for name, value in scope["headers"]:
            if name == b"content-length":
                return (
                    self._too_large() if value.isdigit() and int(value) > MAX_BODY_BYTES else None
                )
        return None

    @staticmethod
    def _too_many(count: int) -> tuple[Message, Message]:
        item = ValidationErrorItem(
            loc=["body", "complaints"],
            msg=f"List should have at most {MAX_COMPLAINTS} items (counting stopped at {count})",
            type="too_long",
        )
        return _json_response(
            422, ValidationErrorResponse(detail=[item], error_count=1).model_dump()
        )

    @staticmethod
    def _too_large() -> tuple[Message, Message]:
        return _json_response(
            413, ErrorResponse(detail=f"body over {MAX_BODY_BYTES} bytes").model_dump()
        )


def _replay(body: bytes, original: Receive) -> Receive:
    """A `receive` that hands the app the body already read, then the connection's own events."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await original()

    return receive


def proxy_middlewares() -> list[Any]:
    """The guard for Serve's HTTP proxy (its RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH hook)."""
    # The proxy hands a body to the replica chunk by chunk over Ray calls: refusing in the app
    # cost ~85 ms of proxy and replica time per 7.7 MiB body, and other callers waited behind it.
    from starlette.middleware import Middleware

    return [Middleware(RequestGuard)]


class ComplaintBudget:
    """At most `limit` complaints held at once; a request waits for room for all of its own.

    Serve's `max_ongoing_requests` counts requests whatever their size; asyncio has no weighted
    semaphore, so this is one (a Condition and a counter).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def hold(self, count: int) -> AsyncIterator[None]:
        """Hold `count` complaints (at most `limit`) while the context is open."""
        count = min(count, self.limit)
        async with self._changed:
            await self._changed.wait_for(lambda: self.held + count <= self.limit)
            self.held += count
        try:
            yield
        finally:
            async with self._changed:
                self.held -= count
                self._changed.notify_all()
