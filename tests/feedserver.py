"""A real HTTP server on 127.0.0.1 for tests: serves configured routes with ETag and
Last-Modified, answers conditional GETs with 304, can gzip, delay, trickle or redirect,
and records every request with its headers. No business logic."""

from __future__ import annotations

import gzip
import hashlib
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    body: bytes = b""
    content_type: str = "application/rss+xml; charset=utf-8"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    validators: bool = True  # send ETag and Last-Modified, honour conditional GETs
    encoding: str | None = None  # "gzip" or "deflate"
    delay_seconds: float = 0.0
    trickle_seconds_per_byte: float = 0.0
    # misbehaviour: send only this many body bytes (the full Content-Length is declared),
    # then close cleanly, or with a TCP reset when ``reset`` is set
    cut_after_bytes: int | None = None
    reset: bool = False
    hang: bool = False  # read the request, then never answer
    # misbehaviour in the headers: after the status line, send ``drip`` again and again,
    # one every ``drip_seconds``, never ending the headers (b"x": one byte at a time of a
    # header line; b"X-N: 1\r\n": one header at a time)
    drip: bytes = b""
    drip_seconds: float = 0.0
    precompressed: str | None = None  # body is already encoded so (a gzip bomb)
    last_modified: str = field(default_factory=lambda: formatdate(1643095471, usegmt=True))

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.body).hexdigest()[:16] + '"'


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    status: int
    started: float = 0.0  # time.monotonic()
    finished: float = 0.0


class _Server(ThreadingHTTPServer):
    # the default backlog of 5 drops SYNs when a dozen fetches connect at once while the
    # test process is busy, and a 1 s connect timeout then fails a healthy source
    request_queue_size = 128


class FeedServer:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.routes: dict[str, Route] = {}
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server._handle(self)

        self.httpd = _Server((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def requests_to(self, path: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        route = self.routes.get(handler.path)
        status = 404 if route is None else route.status
        if route is not None and route.validators and status == 200:
            inm = handler.headers.get("If-None-Match")
            ims = handler.headers.get("If-Modified-Since")
            if (inm and inm == route.etag) or (not inm and ims and ims == route.last_modified):
                status = 304
        record = Request(handler.path, dict(handler.headers.items()), status, time.monotonic())
        with self.lock:
            self.requests.append(record)
        try:
            self._respond(handler, route, status)
        finally:
            record.finished = time.monotonic()

    def _respond(self, handler: BaseHTTPRequestHandler, route: Route | None, status: int) -> None:
        if route is None:
            handler.send_response(404)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        if route.hang:
            self.stopping.wait(120)
            return
        if route.delay_seconds:
            time.sleep(route.delay_seconds)
        if route.drip:
            self._drip(handler, route)
            return
        body = route.body
        handler.send_response(status)
        for name, value in route.headers.items():
            handler.send_header(name, value)
        if route.validators:
            handler.send_header("ETag", route.etag)
            handler.send_header("Last-Modified", route.last_modified)
        if status in (304, 301, 302, 307, 308) or status >= 400:
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        if route.precompressed:
            handler.send_header("Content-Encoding", route.precompressed)
        elif route.encoding == "gzip":
            body = gzip.compress(body)
            handler.send_header("Content-Encoding", "gzip")
        elif route.encoding == "deflate":
            body = zlib.compress(body)
            handler.send_header("Content-Encoding", "deflate")
        handler.send_header("Content-Type", route.content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if route.cut_after_bytes is not None:
            handler.wfile.write(body[: route.cut_after_bytes])
            handler.wfile.flush()
            if route.reset:  # linger 0: close() sends RST instead of FIN
                handler.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
            handler.close_connection = True
            handler.connection.close()
            return
        try:
            if route.trickle_seconds_per_byte:
                for index in range(len(body)):
                    handler.wfile.write(body[index : index + 1])
                    handler.wfile.flush()
                    time.sleep(route.trickle_seconds_per_byte)
            else:
                handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _drip(self, handler: BaseHTTPRequestHandler, route: Route) -> None:
        handler.close_connection = True
        try:
            handler.wfile.write(b"HTTP/1.1 200 OK\r\n")
            handler.wfile.flush()
            # until the client gives up (a broken pipe), or a minute at most
            for _ in range(int(60 / max(route.drip_seconds, 0.01))):
                if self.stopping.wait(route.drip_seconds):
                    return
                handler.wfile.write(route.drip)
                handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass


@contextmanager
def serving(host: str = "127.0.0.1") -> Iterator[FeedServer]:
    server = FeedServer(host)
    server.thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        server.httpd.shutdown()
        server.httpd.server_close()
