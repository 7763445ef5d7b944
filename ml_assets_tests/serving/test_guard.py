"""The request guard: limits enforced while the body arrives, before the app parses it."""

import asyncio
import importlib
import json
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
)
from ml_assets.serving.schemas import MAX_BODY_BYTES, MAX_COMPLAINTS, ValidationErrorResponse
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
    assert complaints_over_limit(b'{"complaints":[1,[2],"3",null,{"a":[4,5]}]}', limit=4) == 5


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"complaints": [{"product": "Mortgage"}] * MAX_COMPLAINTS}).encode(),
        b"not json at all",
        b'{"complaints": [{}], "other": [' + b"1," * 5000 + b"1]}",
    ],
    ids=["at-the-limit", "not-json", "other-lists-not-counted"],
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
