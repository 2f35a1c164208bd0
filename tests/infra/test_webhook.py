"""Webhooks against a real HTTP server on loopback: signed bodies, retries with backoff, refusals
that are final, unreachable receivers, and URLs that must not be called."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
from typing import TYPE_CHECKING

import pytest

from musedub.infra.errors import ConfigError
from musedub.infra.webhook import EVENT_HEADER, SECRET_ENV, SIGNATURE_HEADER, Webhook, check_url

if TYPE_CHECKING:
    from tests.conftest import WebhookReceiver

SECRET = b"test-signing-secret"


def test_events_arrive_in_order_signed_and_retried_after_server_errors(webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.answers = [503, 502]  # the first event needs three attempts
    hook = Webhook(webhook_receiver.url, SECRET, first_wait=0.01)
    hook.send("job", {"job_id": "a", "status": "done"})
    hook.send("batch", {"counts": {"done": 1}})
    hook.close(wait=10)
    assert hook.failed == 0 and len(webhook_receiver.received) == 4
    bodies = [json.loads(body) for _, body in webhook_receiver.received]
    assert [b["event"] for b in bodies] == ["job", "job", "job", "batch"]
    for headers, body in webhook_receiver.received:
        expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers[SIGNATURE_HEADER], expected)
        assert headers[EVENT_HEADER] == json.loads(body)["event"]


def test_a_refusal_is_final_and_the_log_keeps_the_url_path_secret(
    webhook_receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    webhook_receiver.answers = [400]
    hook = Webhook(webhook_receiver.url, SECRET, first_wait=0.01)
    with caplog.at_level(logging.WARNING):
        hook.send("job", {"job_id": "a"})
        hook.close(wait=10)
    assert hook.failed == 1 and len(webhook_receiver.received) == 1  # 4xx: not retried
    assert "job event not delivered (HTTP 400)" in caplog.text and "T0KEN" not in caplog.text


def test_an_unreachable_receiver_is_given_up_without_raising(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    hook = Webhook(f"http://127.0.0.1:{port}/x", SECRET, tries=3, first_wait=0.01)
    with caplog.at_level(logging.WARNING):
        hook.send("batch", {"counts": {}})
        hook.close(wait=20)
    assert hook.failed == 1 and "batch event not delivered" in caplog.text


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/hook", "not an http:// or https:// URL"),
        ("https://user:pw@example.com/hook", "carries credentials"),
        ("http://169.254.169.254/latest/meta-data/", "link-local or reserved"),
        ("http://[fe80::1]/hook", "link-local or reserved"),
        ("http://metadata.google.internal/computeMetadata/v1/", "cloud metadata service"),
        ("http://0.0.0.0:9/hook", "link-local or reserved"),
    ],
)
def test_urls_that_must_not_be_called_are_refused(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_url(url)


def test_loopback_is_allowed_and_private_addresses_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    assert check_url("http://127.0.0.1:8080/hook") == "http://127.0.0.1:8080/hook"
    assert check_url("http://169.254.169.254/x", allow_private=True) == "http://169.254.169.254/x"
    monkeypatch.delenv(SECRET_ENV, raising=False)
    with pytest.raises(ConfigError, match=SECRET_ENV):
        Webhook.from_env("http://127.0.0.1:8080/hook")
