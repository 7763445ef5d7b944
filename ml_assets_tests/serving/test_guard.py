"""The request guard: limits enforced while the body arrives, before the app parses it."""

import asyncio
import importlib
import json
from collections.abc import Callable
from typing import Any

import pytest

from ml_assets.serving.auth import (
    bearer_headers,
    is_loopback,
    require_token_beyond_loopback,
    token_digest,
    token_matches,
)
from ml_assets.serving.deploy import PROXY_ENV
from ml_assets.serving.guard import (
    FEED_BYTES,
    ComplaintBudget,
    ComplaintCounter,
    RequestGuard,
    TooManyComplaints,
    _app_parser_fails_within,
)
from ml_assets.serving.schemas import (
    MAX_BODY_BYTES,
    MAX_COMPLAINTS,
    ErrorResponse,
    ValidationErrorResponse,
)
from ml_assets.settings import Settings, load_settings

MIB = 1024 * 1024


def complaints_over_limit(
    body: bytes, limit: int = MAX_COMPLAINTS, chunk_size: int = 64 * 1024
) -> int | None:
    """The count at which a body's complaint list passed `limit` (fed in chunks), else None."""
    counter = ComplaintCounter(limit)
    try:
        for start in range(0, len(body), chunk_size):
            counter.feed(body[start : start + chunk_size])
    except TooManyComplaints as exc:
        return exc.count
    return None


class Echo:
    """An app that records the body it was handed."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        self.bodies.append(message.get("body", b""))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def call(
    chunks: list[bytes], headers: list[tuple[bytes, bytes]] | None = None, method: str = "POST"
) -> tuple[int, bytes, Echo, int]:
    """Run the guard on a request sent in `chunks`: status, body, the app, chunks consumed."""
    app, sent, consumed = Echo(), [], 0

    async def receive() -> dict[str, Any]:
        nonlocal consumed
        consumed += 1
        index = consumed - 1
        if index >= len(chunks):
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": chunks[index], "more_body": index < len(chunks) - 1}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": "/predict", "headers": headers or []}
    asyncio.run(RequestGuard(app)(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body, app, consumed


def test_a_chunked_body_over_the_limit_is_refused_before_the_rest_is_read() -> None:
    chunks = [b" " * MIB] * 64
    status, body, app, consumed = call(chunks)
    assert status == 413 and b"body over" in body
    assert app.bodies == [] and consumed == MAX_BODY_BYTES // MIB + 1


def test_a_declared_oversized_body_is_refused_without_reading_it() -> None:
    status, _, app, consumed = call(
        [b"{}"], [(b"content-length", str(MAX_BODY_BYTES + 1).encode())]
    )
    assert (status, consumed, app.bodies) == (413, 0, [])


def test_one_complaint_too_many_gets_the_schema_error_and_the_app_never_parses() -> None:
    body = json.dumps({"complaints": [{}] * (MAX_COMPLAINTS + 1)}).encode()
    status, answer, app, _ = call([body[:1000], body[1000:]])
    assert status == 422 and app.bodies == []
    error = ValidationErrorResponse.model_validate_json(answer)
    assert error.error_count == 1
    assert error.detail[0].loc == ["body", "complaints"] and error.detail[0].type == "too_long"


def test_a_long_list_is_refused_before_the_rest_of_the_body_arrives() -> None:
    body = b'{"complaints":[' + b",".join([b"{}"] * 2_700_000) + b"]}"
    chunks = [body[i : i + 64 * 1024] for i in range(0, len(body), 64 * 1024)]
    status, _, app, consumed = call(chunks)
    # Item 1,001 ends about 4 KB in: the first chunk decides, the other 123 are never read.
    assert (status, app.bodies, consumed) == (422, [], 1) and len(chunks) == 124


def test_a_large_chunk_is_parsed_only_up_to_the_limit() -> None:
    # A server may hand over 256 KiB at once: parsing it whole costs ~85,000 items' events.
    body = b'{"complaints":[' + b",".join([b"{}"] * 100_000) + b"]}"
    counter = ComplaintCounter()
    parser, fed = counter._parser, []

    class Recording:
        def send(self, data: bytes) -> None:
            fed.append(len(data))
            parser.send(data)

    counter._parser = Recording()
    with pytest.raises(TooManyComplaints):
        counter.feed(body[: 256 * 1024])
    assert max(fed) <= FEED_BYTES and sum(fed) <= 2 * FEED_BYTES


def test_a_refusal_closes_the_connection_so_the_rest_is_never_sent() -> None:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b" " * (MAX_BODY_BYTES + 1), "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/predict", "headers": []}
    asyncio.run(RequestGuard(Echo())(scope, receive, send))
    assert sent[0]["status"] == 413 and (b"connection", b"close") in sent[0]["headers"]


def test_serves_proxy_hook_names_the_guard() -> None:
    # Serve imports this path in its proxy actor: a rename must not silently drop the guard.
    module, _, name = PROXY_ENV["RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"].rpartition(".")
    middlewares = getattr(importlib.import_module(module), name)()
    assert [m.cls for m in middlewares] == [RequestGuard]


def test_counting_stops_at_the_limit_however_long_the_list() -> None:
    body = b'{"complaints":[' + b",".join([b"{}"] * 2_700_000) + b"]}"
    assert len(body) > 7 * MIB
    assert complaints_over_limit(body) == MAX_COMPLAINTS + 1
    assert complaints_over_limit(b'{"complaints":[1,{},"3",null,{"a":4}]}', limit=4) == 5


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"complaints": [{"product": "Mortgage"}] * MAX_COMPLAINTS}).encode(),
        b"not json at all",
    ],
    ids=["at-the-limit", "not-json"],
)
def test_bodies_within_the_limits_reach_the_app_intact(body: bytes) -> None:
    status, _, app, _ = call([body[:7], body[7:]])
    assert status == 200 and app.bodies == [body]


def test_requests_without_a_body_pass_through() -> None:
    status, _, app, consumed = call([], method="GET")
    assert (status, app.bodies, consumed) == (200, [b""], 1)


def test_the_token_is_kept_as_a_digest_and_compared_exactly() -> None:
    digest = token_digest("s3cret")
    assert "s3cret" not in digest and len(digest) == 64
    assert token_matches("s3cret", digest)
    assert not token_matches("s3cret ", digest)
    assert not token_matches(None, digest)
    assert bearer_headers("s3cret") == {"Authorization": "Bearer s3cret"}
    assert bearer_headers(None) == {}


def test_clients_read_the_token_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ML_ASSETS_API_TOKEN", " t ")
    assert load_settings().token() == "t"
    monkeypatch.setenv("ML_ASSETS_API_TOKEN", "")
    assert load_settings().token() is None
    assert "s3cret" not in repr(Settings(api_token="s3cret"))  # a secret never shows in logs


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.1.2.3", False),
    ],
)
def test_serving_beyond_loopback_needs_a_token(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    require_token_beyond_loopback(host, token_digest("t"))  # with a token: any address
    if loopback:
        require_token_beyond_loopback(host, None)
    else:
        with pytest.raises(ValueError, match="ML_ASSETS_API_TOKEN"):
            require_token_beyond_loopback(host, None)


def test_the_complaint_budget_makes_a_request_wait_for_room_for_all_its_complaints() -> None:
    events: list[str] = []

    async def scenario() -> None:
        budget = ComplaintBudget(10)
        first_in, release_first = asyncio.Event(), asyncio.Event()

        async def first() -> None:
            async with budget.hold(6):
                events.append("first in")
                first_in.set()
                await release_first.wait()
            events.append("first out")

        async def second() -> None:
            await first_in.wait()
            async with budget.hold(6):  # 6 + 6 > 10: waits for the first
                events.append(f"second in, {budget.held} held")

        async def huge() -> None:
            async with budget.hold(50):  # more than the budget: waits for all of it
                events.append(f"huge in, {budget.held} held")

        tasks = [asyncio.create_task(c()) for c in (first, second)]
        await first_in.wait()
        await asyncio.sleep(0.01)
        events.append(f"{budget.held} held while the second waits")
        release_first.set()
        await asyncio.gather(*tasks)
        await huge()
        assert budget.held == 0

    asyncio.run(scenario())
    assert events == [
        "first in",
        "6 held while the second waits",
        "first out",
        "second in, 6 held",
        "huge in, 10 held",
    ]


def test_a_body_nested_deeper_than_a_request_is_refused_as_it_arrives() -> None:
    body = b'{"complaints":[{"product":' + b"[" * 100_000 + b"]" * 100_000 + b"}]}"
    chunks = [body[i : i + 16 * 1024] for i in range(0, len(body), 16 * 1024)]
    status, answer, app, consumed = call(chunks)
    assert (status, app.bodies, consumed) == (400, [], 1)
    assert b"nests deeper" in answer


def test_a_number_too_long_for_python_is_left_to_the_app_without_crashing() -> None:
    # ijson's C backend would abort the whole process on an integer of over 4,300 digits.
    body = b'{"complaints":[' + b"9" * 5000 + b"]}"
    status, _, app, _ = call([body])
    assert status == 200 and app.bodies == [body]


CHUNK = (
    64 * 1024
)  # what a server hands over per receive() (uvicorn reads the socket 64 KiB at once)


def chunked(body: bytes, size: int = CHUNK) -> list[bytes]:
    """The body as a server hands it to the app, `size` bytes per receive()."""
    return [body[i : i + size] for i in range(0, len(body), size)]


def filled_list(head: bytes, tail: bytes = b"]}", item: bytes = b"{}") -> bytes:
    """`head` + as many `item`s as MAX_BODY_BYTES leaves room for + `tail`: the largest body."""
    count = (MAX_BODY_BYTES - len(head) - len(tail) + 1) // (len(item) + 1)
    body = head + b",".join([item] * count) + tail
    assert MAX_BODY_BYTES - len(item) - 1 < len(body) <= MAX_BODY_BYTES
    return body


# Each would have the app parse more than the guard counted: it stopped counting after the first
# list, or at what its parser refuses and `json.loads` reads on. Each fills MAX_BODY_BYTES (built
# when a test asks: 90 MB in all).
BYPASSES: dict[str, Callable[[], bytes]] = {
    # json.loads keeps the last of duplicate keys: the list the guard never counted.
    "second-complaints-list": lambda: filled_list(b'{"complaints":[{}],"complaints":['),
    "second-list-escaped-key": lambda: filled_list(b'{"complaints":[{}],"compl\\u0061ints":['),
    "trailing-nesting": lambda: filled_list(b'{"complaints":[{}]} ', b"", b"["),
    "not-an-object": lambda: filled_list(b"[", b"]"),
    # yajl stops at these; json.loads reads them and the list after them.
    "nan-led-list": lambda: filled_list(b'{"complaints":[NaN,'),
    "negative-infinity-led-list": lambda: filled_list(b'{"complaints":[-Infinity,'),
    "int-over-64-bits-led-list": lambda: filled_list(b'{"complaints":[18446744073709551616,'),
    "float-overflow-led-list": lambda: filled_list(b'{"complaints":[1e999,'),
    "utf-8-surrogate-led-list": lambda: filled_list(b'{"complaints":["\xed\xa0\x80",'),
    "byte-order-mark": lambda: filled_list(b'\xef\xbb\xbf{"complaints":['),
    "utf-16": lambda: ('{"complaints":[' + ",".join(["{}"] * 1_300_000) + "]}").encode("utf-16-le"),
    # One counted complaint whose inside the app parses whole: a list, or 700,000 keys (a
    # validation error each).
    "a-complaint-that-is-a-list": lambda: filled_list(b'{"complaints":[[', b"]]}", b"0"),
    "a-complaint-of-many-keys": lambda: filled_list(b'{"complaints":[{"k":0,', b"}]}", b'"k":0'),
}


@pytest.mark.parametrize("name", BYPASSES)
def test_a_body_the_count_cannot_vouch_for_is_refused_in_its_first_chunk(name: str) -> None:
    body = BYPASSES[name]()
    chunks = chunked(body)
    status, answer, app, consumed = call(chunks)
    assert status == 400 and app.bodies == []
    # Refused at the first chunk: the other ~127 (up to MAX_BODY_BYTES) are never read.
    assert consumed == 1 and len(chunks) >= 100
    assert json.loads(answer)["detail"]  # the ErrorResponse shape, saying why


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"complaints":[{}],"complaints":[{}]}', "the key 'complaints' appears twice"),
        (b'{"complaints":[{}],"other":1,"other":2}', "the body has the key 'other'"),
        (b'{"other":[' + b"1," * 5000 + b'1],"complaints":[{}]}', "the body has the key 'other'"),
        (b'{"complaints":[{}]} [[[[', "content follows the body's JSON object"),
        (b'{"complaints":[{}]}{"complaints":[{}]}', "content follows the body's JSON object"),
        (b'{"complaints":[{}],"x":[[[[[]]]]]}', "the body has the key 'x'"),
        (b'{"complaints":[{"a":[[]]}]}', "nests deeper than 3 levels"),
        (b'{"complaints":[{},[1]]}', "a complaint is a list"),
        (b'{"complaints":[{' + b",".join([b'"product":"a"'] * 19) + b"}]}", "over 18 keys"),
        (b'"complaints"', "not a JSON object"),
        (b"[]", "not a JSON object"),
        (b'{"complaints":[NaN]}', "NaN, Infinity"),
    ],
    ids=[
        "duplicate-complaints",
        "unknown-key",
        "unknown-key-first",
        "trailing-nesting",
        "second-object",
        "nesting-under-another-key",
        "nesting-in-the-list",
        "a-complaint-that-is-a-list",
        "a-complaint-of-many-keys",
        "string",
        "list",
        "nan",
    ],
)
def test_each_refusal_says_what_was_wrong(body: bytes, reason: str) -> None:
    status, answer, app, _ = call([body])
    assert status == 400 and app.bodies == []
    assert reason in ErrorResponse.model_validate_json(answer).detail


def test_what_reveals_the_bypass_decides_the_chunk_it_is_refused_in() -> None:
    # A full request's worth of complaints first, then a second list: the counter reads on until
    # the duplicate key (chunk 3 of 64 KiB), not one chunk more.
    complaint = json.dumps({"product": "Mortgage", "consumer_complaint_narrative": "x" * 100})
    head = b'{"complaints":[' + b",".join([complaint.encode()] * MAX_COMPLAINTS) + b"]"
    body = filled_list(head + b',"complaints":[')
    chunks = chunked(body)
    assert len(head) // CHUNK == 2 and (len(head) + 14) // CHUNK == 2  # the key ends in chunk 3
    status, _, app, consumed = call(chunks)
    assert (status, app.bodies, consumed) == (400, [], 3)
    # The same body ending after its first list is a request like any other.
    valid = head + b"}"
    status, _, app, consumed = call(chunked(valid))
    assert (status, app.bodies, consumed) == (200, [valid], 3)


@pytest.mark.parametrize(
    "body",
    [
        b'{"complaints":[{"product":"a","product":"b"}]}',
        b'{"complaints":[{}]}  \r\n\t',
        b'{"complaints":["\xff"]}',
        b'{"complaints":[{}], ',
        b"",
    ],
    ids=[
        "duplicate-field-in-a-complaint",
        "trailing-whitespace",
        "invalid-utf-8",
        "cut-short",
        "empty",
    ],
)
def test_bodies_whose_parse_the_app_bounds_itself_still_reach_it(body: bytes) -> None:
    # A duplicate field keeps one value (each capped at MAX_TEXT_CHARS); invalid UTF-8 stops
    # json.loads before it parses anything; a body cut short stops it where the guard stopped.
    status, _, app, _ = call([body])
    assert status == 200 and app.bodies == [body]


@pytest.mark.parametrize(
    ("received", "fails_whatever_follows"),
    [
        (b'{"complaints":[NaN,x,{},{},{},{},{},{},{},{}', True),  # an error no byte mends
        (b'{"complaints":[NaN,x', False),  # within a token's length of the end: unsure
        (b'{"complaints":[NaN,{}]} {"complaints":[]}', True),  # extra data: json.loads stops
        (b'{"complaints":[NaN,{},{}]}', False),  # all of it parses: the app would read it
        (b'{"complaints":[NaN,{},{},{},{},{},{},{},{},{}', False),  # more may follow
        (b'{"complaints":[NaN,{},{},{},{},{},{},{},' + b"-Infinit", False),  # a token cut short
        (b'{"complaints":[NaN,{},{},{},{},{},{},{},"' + b"x" * 100, False),  # a string cut short
        (b'{"complaints":[NaN,{},{},{},{},{},{},{},"\xc3', False),  # a UTF-8 sequence cut short
        (b'{"complaints":[NaN,{},{},{},{},{},{},{},"\xc3(",{}]}', True),  # one never complete
        (b'{"complaints":[' + b"9" * 5000 + b"]}", True),  # int() refuses it, whole
        (b'{"complaints":[' + b"9" * 5000, False),  # ... but `.5` may follow: a float
        (b'{"complaints":[NaN,' + b"[" * 5000, False),  # past the recursion limit: unsure
    ],
    ids=[
        "error",
        "error-at-the-end",
        "extra-data",
        "complete",
        "open",
        "cut-token",
        "cut-string",
        "cut-utf-8",
        "invalid-utf-8",
        "long-int",
        "cut-long-int",
        "deep",
    ],
)
def test_a_body_ijson_refuses_reaches_the_app_only_if_its_parser_stops_there_too(
    received: bytes, fails_whatever_follows: bool
) -> None:
    assert _app_parser_fails_within(received) is fails_whatever_follows
