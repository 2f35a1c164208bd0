"""A counting HTTP proxy in front of the test S3 server: what every client of every process
(driver, Ray workers, subprocesses) fetched per object, without trusting the client to say.

Requests are forwarded verbatim to the upstream endpoint (moto on loopback); per object path the
proxy counts GET requests, HEAD requests and body bytes returned by GETs.
"""

from __future__ import annotations

import http.client
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

HOP_HEADERS = frozenset({"connection", "keep-alive", "transfer-encoding", "proxy-connection"})


class ObjectCounts:
    """GETs, HEADs and GET body bytes per request path (`/bucket/key`), thread-safe."""

    def __init__(self) -> None:
        self.gets: Counter[str] = Counter()
        self.heads: Counter[str] = Counter()
        self.bytes: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, method: str, path: str, size: int) -> None:
        key = unquote(urlsplit(path).path)
        with self._lock:
            if method == "GET":
                self.gets[key] += 1
                self.bytes[key] += size
            elif method == "HEAD":
                self.heads[key] += 1

    def of(self, bucket: str, key: str) -> tuple[int, int, int]:
        """(GET bytes, GETs, HEADs) of s3://bucket/key."""
        path = f"/{bucket}/{key}"
        with self._lock:
            return self.bytes[path], self.gets[path], self.heads[path]

    def reset(self) -> None:
        with self._lock:
            self.gets.clear()
            self.heads.clear()
            self.bytes.clear()


def _handler(upstream: tuple[str, int], counts: ObjectCounts) -> type[BaseHTTPRequestHandler]:
    class Forward(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
            connection = http.client.HTTPConnection(*upstream, timeout=60)
            try:
                connection.request(self.command, self.path, body=body, headers=headers)
                reply = connection.getresponse()
                data = reply.read()
            finally:
                connection.close()
            counts.add(self.command, self.path, len(data))
            self.send_response(reply.status, reply.reason)
            for name, value in reply.getheaders():
                if name.lower() not in HOP_HEADERS and (name.lower() != "content-length" or self.command == "HEAD"):
                    self.send_header(name, value)
            if self.command != "HEAD":
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward

        def log_message(self, *args: object) -> None:
            pass

    return Forward


@contextmanager
def counting_proxy(upstream_endpoint: str) -> Iterator[tuple[str, ObjectCounts]]:
    """Yield (the proxy's endpoint URL on loopback, its counts) while it serves."""
    parts = urlsplit(upstream_endpoint)
    counts = ObjectCounts()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler((parts.hostname or "127.0.0.1", parts.port or 80), counts))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", counts
    finally:
        server.shutdown()
        server.server_close()
