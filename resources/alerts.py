"""Where run failures go: a JSON-lines file under the project home, and a webhook when set."""

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import dagster as dg

WEBHOOK_TIMEOUT_S = 10.0


class FailureNotifier(dg.ConfigurableResource, ABC):
    """Records one failed run (a JSON-able dict)."""

    @abstractmethod
    def notify(self, failure: dict[str, Any]) -> None: ...


class FileAndWebhookNotifier(FailureNotifier):
    """Appends each failure to `path`; also POSTs it as JSON to `webhook_url` when one is set."""

    path: str
    webhook_url: str = ""

    def notify(self, failure: dict[str, Any]) -> None:
        target = Path(self.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Written first: a webhook that is down must not lose the record.
        with target.open("a", encoding="utf-8") as out:
            out.write(json.dumps(failure, sort_keys=True) + "\n")
        if self.webhook_url:
            import requests

            answer = requests.post(self.webhook_url, json=failure, timeout=WEBHOOK_TIMEOUT_S)
            if not answer.ok:
                raise RuntimeError(
                    f"failure webhook {self.webhook_url} answered {answer.status_code}: "
                    f"{answer.text[:200]} (the failure is recorded in {target})"
                )
