"""The run-failure sensor: a failed run is recorded in the file, and posted to a real webhook
whose URL (a secret) no error shows."""

import json
import socket
import threading
import traceback
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import dagster as dg
import pytest

from ml_assets.settings import Settings
from resources.alerts import (
    ANSWER_CHARS,
    TOKEN_MIN_CHARS,
    URL_MASK,
    FileAndWebhookNotifier,
    without_url,
)
from sensors.run_failures import make_run_failure_sensor

sensor = make_run_failure_sensor()
# The variable the definitions name; its value is the secret.
WEBHOOK_ENV = Settings.env_name("failure_webhook_url")
# A webhook URL's secret parts, as chat services put them: a token in the path and in the query.
PATH_TOKEN = "T0KEN-in-the-path-7f3a9c"
QUERY_TOKEN = "FAKE-query-token-51d2e8"


@dg.asset
def broken_asset() -> None:
    raise RuntimeError("the source is gone")


class Webhook:
    """A real HTTP server on 127.0.0.1 that keeps what it is sent and answers `status`; an error
    answer echoes the path it was posted to, as some services' error pages do."""

    def __init__(self, status: int, padding: str = "") -> None:
        self.received: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append(json.loads(body))
                echo = b"" if status < 400 else f"{padding}no hook at {self.path}".encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(echo)))
                self.end_headers()
                self.wfile.write(echo)

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = (
            f"http://127.0.0.1:{self.server.server_port}/hooks/{PATH_TOKEN}?key={QUERY_TOKEN}"
        )
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def webhook(request: pytest.FixtureRequest) -> Iterator[Webhook]:
    hook = Webhook(request.param)
    yield hook
    hook.server.shutdown()


def notifier(path: Path) -> FileAndWebhookNotifier:
    """The notifier as the definitions build it: it names the variable, never holds the URL."""
    return FileAndWebhookNotifier(path=str(path), webhook_url_env=WEBHOOK_ENV)


def tick(instance: dg.DagsterInstance, notifier: FileAndWebhookNotifier) -> None:
    result = dg.materialize([broken_asset], instance=instance, raise_on_error=False)
    assert not result.success
    context = dg.build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
        resources={"failure_notifier": notifier},
    ).for_run_failure()
    sensor(context)


def everything_shown(error: BaseException) -> str:
    """All an error can show: each exception of its chain, its message and traceback as logged."""
    shown, seen = [], set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        shown += [str(current), repr(current), *traceback.format_exception(current)]
        pending += [current.__cause__, current.__context__]
    return "\n".join(shown)


def assert_url_not_shown(error: BaseException, url: str) -> None:
    shown = everything_shown(error)
    for secret in (url, PATH_TOKEN, QUERY_TOKEN):
        assert secret not in shown
    assert WEBHOOK_ENV in str(error)


@pytest.mark.parametrize("webhook", [200], indirect=True)
def test_a_failed_run_is_recorded_and_posted(
    tmp_path: Path, webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(WEBHOOK_ENV, webhook.url)
    path = tmp_path / "failures.jsonl"
    with dg.instance_for_test() as instance:
        tick(instance, notifier(path))
    (recorded,) = [json.loads(line) for line in path.read_text().splitlines()]
    assert recorded["failed_steps"] == ["broken_asset"]
    assert recorded["assets"] == ["broken_asset"]
    assert "broken_asset" in recorded["message"]
    # No retry tags on this run: failed for good.
    assert (recorded["will_retry"], recorded["retry_number"]) == (False, 0)
    assert webhook.received == [recorded]


@pytest.mark.parametrize("value", [None, "", "  "])
@pytest.mark.parametrize("webhook", [200], indirect=True)
def test_without_a_webhook_url_the_failure_is_only_recorded(
    tmp_path: Path, webhook: Webhook, monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv(WEBHOOK_ENV, raising=False)
    else:
        monkeypatch.setenv(WEBHOOK_ENV, value)
    path = tmp_path / "failures.jsonl"
    with dg.instance_for_test() as instance:
        tick(instance, notifier(path))
    assert len(path.read_text().splitlines()) == 1
    assert webhook.received == []


@pytest.mark.parametrize("webhook", [200], indirect=True)
def test_the_url_is_read_when_a_failure_is_posted(
    tmp_path: Path, webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(WEBHOOK_ENV, raising=False)
    built = notifier(tmp_path / "failures.jsonl")
    monkeypatch.setenv(WEBHOOK_ENV, webhook.url)
    built.notify({"run_id": "r1"})
    assert webhook.received == [{"run_id": "r1"}]


@pytest.mark.parametrize("webhook", [500], indirect=True)
def test_a_failing_webhook_fails_the_tick_but_keeps_the_record_and_shows_no_url(
    tmp_path: Path, webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(WEBHOOK_ENV, webhook.url)
    path = tmp_path / "failures.jsonl"
    with dg.instance_for_test() as instance, pytest.raises(Exception) as failed:
        tick(instance, notifier(path))
    assert len(path.read_text().splitlines()) == 1
    assert_url_not_shown(failed.value, webhook.url)
    # The answer is quoted, with what it echoed of the URL masked.
    assert f"failure webhook ({WEBHOOK_ENV}) answered 500: no hook at {URL_MASK}" in str(
        failed.value
    )
    assert f"(the failure is recorded in {path})" in str(failed.value)


@pytest.mark.parametrize("cut_at", [20, 40, 60])
def test_an_answer_cut_through_the_echoed_url_shows_none_of_its_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cut_at: int
) -> None:
    # The quoted answer ends ANSWER_CHARS in: the echoed path straddles that point.
    padding = "x" * (ANSWER_CHARS - len("no hook at /hooks/") - cut_at)
    hook = Webhook(500, padding)
    try:
        monkeypatch.setenv(WEBHOOK_ENV, hook.url)
        with pytest.raises(RuntimeError) as failed:
            notifier(tmp_path / "failures.jsonl").notify({"run_id": "r1"})
    finally:
        hook.server.shutdown()
    for token in (PATH_TOKEN, QUERY_TOKEN):
        for prefix in range(TOKEN_MIN_CHARS, len(token) + 1):
            assert token[:prefix] not in str(failed.value), (cut_at, token[:prefix])


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(
    ("url", "error"),
    [
        # The port is chosen in the test: a test's id must be the same in every xdist worker.
        (f"http://127.0.0.1:CLOSED_PORT/hooks/{PATH_TOKEN}?key={QUERY_TOKEN}", "ConnectionError"),
        # requests' message for a URL without a scheme quotes the whole URL.
        (f"127.0.0.1/hooks/{PATH_TOKEN}?key={QUERY_TOKEN}", "MissingSchema"),
    ],
)
def test_an_unreachable_webhook_keeps_the_record_and_shows_no_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, error: str
) -> None:
    url = url.replace("CLOSED_PORT", str(closed_port()))
    monkeypatch.setenv(WEBHOOK_ENV, url)
    path = tmp_path / "failures.jsonl"
    with pytest.raises(RuntimeError) as failed:
        notifier(path).notify({"run_id": "r1"})
    assert path.read_text() == '{"run_id": "r1"}\n'
    assert str(failed.value) == (
        f"failure webhook ({WEBHOOK_ENV}) could not be reached ({error}): check the URL it holds "
        f"and that the service is up (the failure is recorded in {path})"
    )
    assert_url_not_shown(failed.value, url)
    # Nothing chained: the exception requests raised (which quotes the URL) is not kept either.
    assert failed.value.__cause__ is None and failed.value.__context__ is None


def test_without_url_masks_the_url_and_its_token_like_parts() -> None:
    url = f"https://user:p4ssw0rd-secret@hooks.example/services/{PATH_TOKEN}?key={QUERY_TOKEN}&v=1"
    echoed = f"bad {url}; path /services/{PATH_TOKEN}; key {QUERY_TOKEN}; pass p4ssw0rd-secret"
    masked = without_url(echoed, url)
    for secret in (url, PATH_TOKEN, QUERY_TOKEN, "p4ssw0rd-secret"):
        assert secret not in masked
    # Short words of the path stay readable: they are no tokens.
    assert without_url("the hook said v=1", url) == "the hook said v=1"
