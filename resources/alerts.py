"""Where run failures go: a JSON-lines file under the project home, and a webhook when set."""

import json
import re
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dagster as dg
from pydantic import Field

WEBHOOK_TIMEOUT_S = 10.0
# How much of a webhook's error answer a message quotes.
ANSWER_CHARS = 200
# What a quoted answer shows where it echoes the webhook URL or a secret part of it.
URL_MASK = "<webhook URL>"
# Parts of a URL's path or query this long may be tokens; shorter ones are words (`hook`, `v1`)
# that masking would only garble.
TOKEN_MIN_CHARS = 8


class FailureNotifier(dg.ConfigurableResource, ABC):
    """Records one failed run (a JSON-able dict)."""

    @abstractmethod
    def notify(self, failure: dict[str, Any]) -> None: ...


def without_url(text: str, url: str) -> str:
    """`text` with the URL and its secret-looking parts (credentials, path, query) masked."""
    parts = urlsplit(url)
    pieces = re.split(r"[/?&=;]", f"{parts.path}?{parts.query}")
    secrets = {
        url,
        parts.path,
        parts.query,
        f"{parts.path}?{parts.query}",
        parts.username or "",
        parts.password or "",
        *pieces,
    }
    for secret in sorted((s for s in secrets if len(s) >= TOKEN_MIN_CHARS), key=len, reverse=True):
        text = text.replace(secret, URL_MASK)
    return text


class FileAndWebhookNotifier(FailureNotifier):
    """Appends each failure to `path`; also POSTs it as JSON to the URL in the environment
    variable `webhook_url_env`, when that is set."""

    path: str
    # The variable's name, not the URL: a webhook URL holds its token, and a resource's config is
    # shown in the UI. Read through dg.EnvVar when a failure is posted, so an unset variable means
    # no webhook; as an EnvVar field it would fail the resource's init, and its resolved value no
    # longer knows the name that messages give instead of it.
    webhook_url_env: str = Field(
        default="",
        description="The environment variable holding the failure webhook's URL (a secret, "
        "read when a failure is posted); unset or blank: failures go to the file only.",
    )

    def webhook_url(self) -> str:
        """The webhook's URL as the environment holds it now ("" for none)."""
        if not self.webhook_url_env:
            return ""
        return (dg.EnvVar(self.webhook_url_env).get_value() or "").strip()

    def notify(self, failure: dict[str, Any]) -> None:
        target = Path(self.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Written first: a webhook that is down must not lose the record.
        with target.open("a", encoding="utf-8") as out:
            out.write(json.dumps(failure, sort_keys=True) + "\n")
        url = self.webhook_url()
        if not url:
            return
        import requests

        try:
            answer = requests.post(url, json=failure, timeout=WEBHOOK_TIMEOUT_S)
        except requests.RequestException as exc:
            failed = (
                f"could not be reached ({type(exc).__name__}): check the URL it holds and that "
                "the service is up"
            )
        else:
            if answer.ok:
                return
            # Masked whole, then cut: a URL echoed across the cut would keep a token's prefix.
            quoted = without_url(answer.text, url)[:ANSWER_CHARS]
            failed = f"answered {answer.status_code}: {quoted}"
        # Raised here, after the handler: requests' messages carry the URL (host, path and query,
        # where the token is). Raised inside it, even `from None`, the new error would keep
        # requests' as its __context__ for any logger or tracker that walks the chain.
        raise RuntimeError(
            f"failure webhook ({self.webhook_url_env}) {failed} (the failure is recorded in "
            f"{target})"
        )
