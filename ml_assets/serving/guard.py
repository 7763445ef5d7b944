"""Limits enforced before any work: the body's size as it arrives, the complaint count as it parses,
and a 400 for whatever would make the app parse more than was counted.

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
    Complaint,
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
# The request's only key (PredictRequest forbids others): any other is refused at once, before
# the counter follows its value, however large.
REQUEST_KEY = "complaints"
# Keys one complaint may have: its fields, each once. More (unknown ones, repeats) would cost the
# app a parse and a validation error each: 700,000 in 8 MiB took it ~3 s and 0.5 GiB.
MAX_COMPLAINT_KEYS = len(Complaint.model_fields)
# The longest token `json.loads` may report an error at the start of only because the bytes so
# far end inside it: `-Infinity`, or an escaped surrogate pair (12 characters).
CUT_TOKEN_CHARS = 16
_NUMBER_BYTES = frozenset(b"0123456789+-.eE")
_VALUE_STARTS = frozenset({"start_map", "start_array", "string", "number", "boolean", "null"})


class BodyTooLarge(Exception):
    """The body grew past MAX_BODY_BYTES while it was received."""


class TooManyComplaints(Exception):
    """The complaint list passed its maximum while the body was received."""

    def __init__(self, count: int) -> None:
        super().__init__(count)
        self.count = count


class Uncountable(Exception):
    """The body is not a request the counter can follow to its end: a 400 saying why."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ComplaintCounter:
    """Counts the complaint list's items as the body's chunks arrive.

    ijson's push parser rather than `json.loads` on the whole body: a 7.7 MiB list of empty
    complaints takes about a second to parse whole, and the answer is known at item `limit + 1`,
    a few kilobytes in, before the rest has even arrived. Its basic events (no JSON paths, which
    ijson rebuilds per event and cost quadratic time on deep nesting), numbers as floats (its C
    backend crashes the process on integers of over 4,300 digits), and a depth limit: the state
    below is what a JSON-path library would otherwise keep.

    The count holds only if the app parses no more than was counted, so the counter follows the
    top-level object to its end and refuses (Uncountable) what it cannot vouch for: a duplicate
    key (the app's `json.loads` keeps the last, a list never counted), content after the object,
    a top-level value other than an object, and JSON ijson refuses where `json.loads` reads on.
    A top-level key other than REQUEST_KEY is refused at once too (the app would answer 422), and
    so is a complaint that is a list (its items would go uncounted) or has more keys than a
    complaint has fields: only then is the app's work bounded by the count, not by the bytes.
    """

    def __init__(self, limit: int = MAX_COMPLAINTS) -> None:
        import ijson

        self.limit = limit
        self.count = 0
        self._events = ijson.sendable_list()
        self._parser: Any = ijson.basic_parse_coro(self._events, use_float=True)
        self._received: list[bytes] = []  # the chunks fed so far, for `_unparsable`
        self._depth = 0
        self._key: str | None = None  # the top-level object's key, once read
        self._complaint_keys = 0  # the keys of the complaint being read
        self._ended = False  # the top-level object is complete
        self._done = False  # not JSON, where the app's parser stops too: the app answers

    def feed(self, chunk: bytes) -> None:
        """Parse one more chunk; raises TooManyComplaints or Uncountable as soon as it can tell."""
        # A server hands over whatever the socket had (often 64-256 KiB): parsed whole, that is
        # ~85,000 empty complaints' events built before the first is counted.
        for start in range(0, len(chunk), FEED_BYTES):
            if self._done:
                return
            try:
                self._parser.send(chunk[start : start + FEED_BYTES])
                failed = False
            except Exception:  # ijson's errors: IncompleteJSONError, UnicodeDecodeError and more
                failed = True
            for event, value in self._events:  # those before an error count too
                self._step(event, value)
            del self._events[:]
            if failed:
                self._unparsable(b"".join([*self._received, chunk[: start + FEED_BYTES]]))
        self._received.append(chunk)

    def _step(self, event: str, value: object) -> None:
        if self._depth == 0 and event != "start_map":
            raise Uncountable('the body is not a JSON object: send {"complaints": [...]}')
        in_list = self._depth == 2 and self._key == REQUEST_KEY
        if in_list and event in _VALUE_STARTS:
            self.count += 1
            if self.count > self.limit:
                raise TooManyComplaints(self.count)
            if event == "start_array":
                raise Uncountable("a complaint is a list: send each complaint as an object")
            self._complaint_keys = 0
        if event == "map_key" and self._depth == 3:
            self._complaint_keys += 1
            if self._complaint_keys > MAX_COMPLAINT_KEYS:
                raise Uncountable(
                    f"a complaint has over {MAX_COMPLAINT_KEYS} keys: send each of its fields once"
                )
        if event == "map_key" and self._depth == 1:
            if value != REQUEST_KEY:
                raise Uncountable(
                    f"the body has the key {value!r}: a request has the key {REQUEST_KEY!r} only"
                )
            if self._key is not None:
                raise Uncountable(
                    f"the key {REQUEST_KEY!r} appears twice in the body's object: a JSON parser "
                    "keeps only the last one, so send it once"
                )
            self._key = REQUEST_KEY
        elif event in ("start_map", "start_array"):
            self._depth += 1
            if self._depth > MAX_DEPTH:
                raise Uncountable(f"the body nests deeper than {MAX_DEPTH} levels: not a request")
        elif event in ("end_map", "end_array"):
            self._depth -= 1
            self._ended = self._depth == 0

    def _unparsable(self, received: bytes) -> None:
        """ijson stopped within `received`: leave the body to the app if its parser stops too."""
        if self._ended:
            raise Uncountable("content follows the body's JSON object: send the object alone")
        if self._depth:  # inside the object: only the app's parser can tell
            readable = _app_parser_fails_within(received)
        else:
            # No value began (a `{` or `[` is an event at once): `json.loads` reads one scalar at
            # most, unless it decodes the body as UTF-16 or -32 or past a byte-order mark.
            readable = json.detect_encoding(received) == "utf-8"
        if not readable:
            raise Uncountable(
                "the body is not JSON this endpoint can count: send UTF-8 without a byte-order "
                "mark, and no NaN, Infinity or numbers out of 64-bit range"
            )
        self._done = True  # the app answers 400 with its parser's reason


def _app_parser_fails_within(received: bytes) -> bool:
    """Whether `json.loads`, the app's parser (Starlette's `Request.json`), fails within these
    bytes, whatever follows them: then it parses no more than the counter followed, plus at most
    the FEED_BYTES the counter stopped in.

    ijson (yajl) refuses some JSON that `json.loads` reads on: NaN, Infinity, integers of over 64
    bits, floats that overflow, UTF-16 and -32, surrogates encoded as UTF-8. Listing them would
    miss the next one; asking the app's own parser cannot, at the cost of one parse of the bytes
    received, only for bodies ijson refuses.
    """
    try:
        json.loads(received)
    except json.JSONDecodeError as exc:
        # A string or token cut at the end of `received` may still close in the rest.
        cut = exc.msg.startswith("Unterminated string") or exc.pos >= len(exc.doc) - CUT_TOKEN_CHARS
        return not cut
    except UnicodeDecodeError as exc:  # a sequence cut at the end may complete in the rest
        return exc.end < len(received)
    except ValueError:  # an integer over `sys.get_int_max_str_digits()`: the app's too, if whole
        return received[-1] not in _NUMBER_BYTES
    except RecursionError:  # nesting past where ijson stopped: the app's recursion limit may differ
        return False
    return False  # all of it parses: the app would read on past what was counted


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
    """Refuse an oversized body (413), complaint list (422) or one the count cannot follow (400)
    before the app parses it."""

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
            except Uncountable as exc:
                refusal = _json_response(400, ErrorResponse(detail=exc.detail).model_dump())
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
