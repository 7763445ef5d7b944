"""The run-failure sensor: a failed run is recorded in the file, and posted to a real webhook."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import dagster as dg
import pytest

from resources.alerts import FileAndWebhookNotifier
from sensors.run_failures import make_run_failure_sensor

sensor = make_run_failure_sensor()


@dg.asset
def broken_asset() -> None:
    raise RuntimeError("the source is gone")


class Webhook:
    """A real HTTP server on 127.0.0.1 that keeps what it is sent and answers `status`."""

    def __init__(self, status: int) -> None:
        self.received: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append(json.loads(body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def webhook(request: pytest.FixtureRequest) -> Iterator[Webhook]:
    hook = Webhook(request.param)
    yield hook
    hook.server.shutdown()


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


@pytest.mark.parametrize("webhook", [200], indirect=True)
def test_a_failed_run_is_recorded_and_posted(tmp_path: Path, webhook: Webhook) -> None:
    path = tmp_path / "failures.jsonl"
    with dg.instance_for_test() as instance:
        tick(instance, FileAndWebhookNotifier(path=str(path), webhook_url=webhook.url))
    (recorded,) = [json.loads(line) for line in path.read_text().splitlines()]
    assert recorded["failed_steps"] == ["broken_asset"]
    assert recorded["assets"] == ["broken_asset"]
    assert "broken_asset" in recorded["message"]
    # No retry tags on this run: failed for good.
    assert (recorded["will_retry"], recorded["retry_number"]) == (False, 0)
    assert webhook.received == [recorded]


@pytest.mark.parametrize("webhook", [500], indirect=True)
def test_a_failing_webhook_fails_the_tick_but_keeps_the_record(
    tmp_path: Path, webhook: Webhook
) -> None:
    path = tmp_path / "failures.jsonl"
    with dg.instance_for_test() as instance, pytest.raises(Exception, match="answered 500"):
        tick(instance, FileAndWebhookNotifier(path=str(path), webhook_url=webhook.url))
    assert len(path.read_text().splitlines()) == 1
