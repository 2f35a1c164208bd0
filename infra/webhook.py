"""Webhooks: a JSON event POSTed to a URL the user gave, signed, retried, never blocking the caller.

The body is signed with HMAC-SHA256 under a secret from the environment (`MUSEDUB_WEBHOOK_SECRET`);
the receiver recomputes it over the raw body and compares it with the `X-Musedub-Signature`
header (`sha256=<hex>`). Events go out from one background thread in order; a delivery that
keeps failing is given up with a warning and the batch goes on. Webhook URLs are often secrets
themselves (a token in the path), so logs name only their scheme and host.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import os
import queue
import socket
import threading
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from musedub.infra.errors import ConfigError

SECRET_ENV = "MUSEDUB_WEBHOOK_SECRET"
SIGNATURE_HEADER = "X-Musedub-Signature"
EVENT_HEADER = "X-Musedub-Event"
METADATA_HOSTS = frozenset({"metadata", "metadata.google.internal", "metadata.azure.com"})
TRIES = 4
FIRST_WAIT = 0.5  # seconds before the first retry; doubles each time
TIMEOUT = 5.0  # seconds per attempt

log = logging.getLogger(__name__)


def shown(url: str) -> str:
    """What a log may say about a webhook URL: its scheme and host, never its path or query."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}/..."


def check_url(url: str, allow_private: bool = False) -> str:
    """An http(s) URL whose host is not a link-local or cloud-metadata address (unless allowed):
    a webhook must not become a way to read the instance's credentials."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"webhook {shown(url)} is not an http:// or https:// URL: give one")
    if parts.username or parts.password:
        raise ConfigError(f"webhook {shown(url)} carries credentials: sign with {SECRET_ENV} instead")
    if allow_private:
        return url
    if parts.hostname.lower() in METADATA_HOSTS:
        raise ConfigError(f"webhook {shown(url)} is a cloud metadata service: give another host")
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, parts.port or 443)}
    except (socket.gaierror, UnicodeError):
        raise ConfigError(f"webhook host {parts.hostname!r} does not resolve: check the URL") from None
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if ip.is_link_local or ip.is_multicast or ip.is_unspecified or ip.is_reserved:
            raise ConfigError(
                f"webhook {shown(url)} resolves to {ip}, a link-local or reserved address (where cloud "
                "metadata lives): give another host, or --webhook-allow-private if you mean it"
            )
    return url


def signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect could point the POST at an address the URL check refused."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Webhook:
    """Posts events from a background thread; `close()` waits (bounded) for those still queued."""

    def __init__(self, url: str, secret: bytes, tries: int = TRIES, first_wait: float = FIRST_WAIT) -> None:
        self.url, self.secret, self.tries, self.first_wait = url, secret, tries, first_wait
        self.failed = 0  # events given up
        self._queue: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()
        self._opener = urllib.request.build_opener(_NoRedirects)
        self._thread = threading.Thread(target=self._run, name="musedub-webhook", daemon=True)
        self._thread.start()

    @classmethod
    def from_env(cls, url: str, allow_private: bool = False) -> Webhook:
        secret = os.environ.get(SECRET_ENV, "")
        if not secret:
            raise ConfigError(f"--webhook needs a signing secret: set {SECRET_ENV} in the environment")
        return cls(check_url(url, allow_private), secret.encode())

    def send(self, event: str, body: dict[str, Any]) -> None:
        self._queue.put((event, body))

    def close(self, wait: float = 60.0) -> None:
        """Deliver what is queued (at most `wait` seconds more), then stop."""
        self._queue.put(None)
        self._thread.join(wait)
        if self._thread.is_alive():
            log.warning("webhook %s: undelivered events left after %.0f s", shown(self.url), wait)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            event, body = item
            if not self._deliver(event, json.dumps({"event": event, **body}, sort_keys=True).encode()):
                self.failed += 1

    def _deliver(self, event: str, data: bytes) -> bool:
        headers = {
            "Content-Type": "application/json",
            EVENT_HEADER: event,
            SIGNATURE_HEADER: signature(self.secret, data),
            "User-Agent": "musedub-webhook",
        }
        wait = self.first_wait
        for attempt in range(1, self.tries + 1):
            request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with self._opener.open(request, timeout=TIMEOUT) as response:
                    if 200 <= response.status < 300:
                        return True
                    reason = f"HTTP {response.status}"
            except urllib.error.HTTPError as exc:
                reason = f"HTTP {exc.code}"
                if exc.code < 500 and exc.code not in (408, 429):
                    break  # the receiver refuses this event: retrying will not help
            except (urllib.error.URLError, OSError) as exc:
                reason = type(exc).__name__
            if attempt < self.tries:
                time.sleep(wait)
                wait *= 2
        log.warning("webhook %s: %s event not delivered (%s); the batch goes on", shown(self.url), event, reason)
        return False
