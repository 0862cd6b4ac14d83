"""Retrieving a source's bytes over HTTP(S) or from a file; no parsing here.

A fetch returns ``Retrieved`` (a body plus its HTTP facts) or ``NotModified`` (a 304,
which is a value, not an error), or raises a ``FetchError`` subclass whose message is one
line naming what happened. Limits that protect a worker:

* connect and read timeouts per socket operation, plus a total deadline over the whole
  fetch (connect, TLS, every redirect, the response headers and the body): a watchdog
  thread shuts down the sockets of a fetch whose deadline passed, whatever read it is
  blocked in, so a server trickling one byte a second, in the headers or in the body,
  cannot hold a worker;
* a body cap on the *decompressed* size (a 10 KB gzip bomb is refused at the cap);
* at most ``MAX_REDIRECTS`` redirects; a loop is an error, not a hang.

Every connection (the source's and each redirect's) is checked *after* it is made,
against the peer address the socket actually reached (``addresses.refusal`` with the
request's ``allow_networks``): a name that resolves to a public address for a check and
to 127.0.0.1 for the connect cannot get around it; a literal address that is refused
is not connected to at all. Link-local and cloud metadata addresses are always refused;
loopback, private and the other non-public ranges unless an allowed network covers
them. A connection the pool kept is checked again when a fetch takes it, so one
source's allowance never carries over to another's. Behind a
proxy from the environment the socket reaches the proxy, which ops chose, so that
connection is not checked; the target of each request and redirect is checked instead
before it goes to the proxy (a literal address, or what its name resolves to here; a
name that does not resolve here is left to the proxy).

Reads use ``urllib3``'s ``read1``: it returns what has arrived instead of waiting to fill a
buffer, so the body loop also checks the deadline between reads.
"""

from __future__ import annotations

import contextlib
import email.utils
import functools
import heapq
import ipaddress
import itertools
import os
import re
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.cookiejar import DefaultCookiePolicy
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import requests
import requests.adapters
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions
from requests.utils import select_proxy

from aggregator.addresses import Network, address_of, refusal
from aggregator.errors import (
    BodyTooLargeError,
    ConnectError,
    FetchError,
    FetchTimeoutError,
    HTTPStatusError,
)
from aggregator.model import FetchResult, HTTPFacts, NotModified, Retrieved

if TYPE_CHECKING:
    from urllib3._base_connection import BaseHTTPConnection

MAX_REDIRECTS = 10
READ_CHUNK_BYTES = 64 * 1024
_MAX_AGE = re.compile(r"(?:^|,)\s*(?:s-)?max-age\s*=\s*\"?(\d+)", re.IGNORECASE)
_PERMANENT = {301, 308}
_SSL_REASON = re.compile(r"\[SSL[^\]]*\][^'\")(]*[^'\")( ]|certificate verify failed[^'\")(]*")


@dataclass(frozen=True, slots=True)
class FetchRequest:
    """What to ask for: the URL, the validators we hold, and the limits."""

    url: str
    etag: str | None = None
    last_modified: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout_seconds: float = 20.0
    total_timeout_seconds: float = 60.0
    max_body_bytes: int = 10 * 1024 * 1024
    # non-public networks this fetch may reach (addresses.refusal); none: public only
    allow_networks: tuple[Network, ...] = ()


def _max_age(cache_control: str | None) -> int | None:
    if not cache_control:
        return None
    if "no-store" in cache_control.lower() or "no-cache" in cache_control.lower():
        return 0
    found = _MAX_AGE.search(cache_control)
    return int(found.group(1)) if found else None


def _permanent_target(response: requests.Response) -> str | None:
    """The final URL when every redirect hop was permanent (301/308), else None."""
    if response.history and all(hop.status_code in _PERMANENT for hop in response.history):
        return response.url
    return None


def _facts(response: requests.Response) -> HTTPFacts:
    headers = response.headers
    return HTTPFacts(
        status=response.status_code,
        final_url=response.url,
        permanent_redirect_url=_permanent_target(response),
        etag=headers.get("ETag"),
        last_modified=headers.get("Last-Modified"),
        retry_after=headers.get("Retry-After"),
        cache_max_age_seconds=_max_age(headers.get("Cache-Control")),
        expires=headers.get("Expires"),
        content_type=headers.get("Content-Type"),
    )


class ForbiddenAddressError(urllib3.exceptions.NewConnectionError):
    """The connection reached an address the rule refuses.

    Internal: it is a urllib3 ``NewConnectionError`` so urllib3 and requests treat it as
    a failed connect (no request is sent). It never leaves this module: ``_fetch_http``
    gets it as the reason of a ``requests.ConnectionError`` (redirects included), which
    ``_wrap`` turns into a ``ConnectError`` ("refused: ..."). See the notes in errors.py.
    """

    def __init__(self, connection: urllib3.connection.HTTPConnection, detail: str) -> None:
        super().__init__(connection, detail)
        self.detail = detail


class ForbiddenTargetError(Exception):
    """A request through a proxy names an address the rule refuses.

    Internal, like ``ForbiddenAddressError``: raised in the adapter as the reason of a
    ``requests.ConnectionError``, which ``_wrap`` turns into a ``ConnectError``."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class _Watch:
    """One fetch's total deadline: the sockets its connections use, shut down at once if
    the deadline passes. A blocked read (of a TLS handshake, the headers or the body)
    then returns, and the fetch fails as timed out instead of waiting for the server.

    Each socket is watched through a duplicate of its descriptor, ours to close: the
    connection may close (and the number be reused) at any time, the duplicate stays the
    same socket until ``finish``."""

    __slots__ = ("_lock", "_sockets", "deadline", "expired", "finished")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.expired = False
        self.finished = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def add(self, sock: socket.socket) -> None:
        try:
            twin = socket.fromfd(sock.fileno(), sock.family, sock.type, sock.proto)
        except OSError:
            return  # closed already: nothing to cut
        with self._lock:
            if self.finished:
                twin.close()
                return
            self._sockets.append(twin)
            if self.expired:
                _cut(twin)

    def expire(self) -> None:
        with self._lock:
            if self.finished:
                return
            self.expired = True
            for twin in self._sockets:
                _cut(twin)

    def finish(self) -> None:
        with self._lock:
            self.finished = True
            for twin in self._sockets:
                twin.close()
            self._sockets.clear()


def _cut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # the peer closed it already
        sock.shutdown(socket.SHUT_RDWR)


class _Watchdog:
    """One thread that expires each fetch's ``_Watch`` at its deadline. It starts with
    the first HTTP fetch, not with the fetcher, so a pass can still fork before it
    fetches (shards.can_fork wants one thread). Finished watches leave the heap when
    their deadline comes."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Watch]] = []
        self._order = itertools.count()
        self._wakeup = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def watch(self, deadline: float) -> _Watch:
        watch = _Watch(deadline)
        with self._wakeup:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._run, name="fetch-deadlines", daemon=True
                )
                self._thread.start()
            heapq.heappush(self._heap, (deadline, next(self._order), watch))
            if self._heap[0][2] is watch:
                self._wakeup.notify()
        return watch

    def _run(self) -> None:
        with self._wakeup:
            while not self._closed:
                if not self._heap:
                    self._wakeup.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._wakeup.wait(wait)
                    continue
                heapq.heappop(self._heap)[2].expire()

    def close(self) -> None:
        with self._wakeup:
            self._closed = True
            self._heap.clear()
            self._wakeup.notify()
        if self._thread is not None:
            self._thread.join(timeout=5)


class _Fetching(threading.local):
    """What the connections of the fetch running on this thread answer to (requests is
    synchronous: a fetch, its redirects and its body all run on the calling thread).
    Outside a fetch: public addresses only, no deadline."""

    watch: _Watch | None = None
    allow_networks: tuple[Network, ...] = ()


_fetching = _Fetching()


def _refusal(sock: socket.socket) -> str | None:
    return _peer_refusal(sock.getpeername()[0], _fetching.allow_networks)


@functools.lru_cache(maxsize=1024)
def _peer_refusal(peer: str, allowed: tuple[Network, ...]) -> str | None:
    """``refusal`` of a peer address as the socket gives it: the same few hosts and
    allowances every fetch, and ``ipaddress`` takes microseconds over each."""
    return refusal(ipaddress.ip_address(peer), allowed)


def _watched_pools(checked: bool) -> dict[str, type[urllib3.HTTPConnectionPool]]:
    """Connection pools whose sockets the running fetch's deadline watches (new ones when
    they connect, pooled ones when they are taken again) and, when ``checked``, whose
    connections must reach an address the running fetch may reach. (Unchecked: the
    connections to a proxy from the environment.)"""

    def before_connect(connection: urllib3.connection.HTTPConnection) -> None:
        # A literal address that is refused is not even connected to: no SYN to the
        # metadata service, and no "connection refused" against "refused" to tell
        # which local ports are open. A name is checked once connected (below).
        literal = address_of(connection.host) if checked else None
        if literal is not None and (why := _peer_refusal(str(literal), _fetching.allow_networks)):
            raise ForbiddenAddressError(connection, f"{connection.host}:{connection.port}: {why}")

    def admit(connection: urllib3.connection.HTTPConnection, sock: socket.socket) -> None:
        if checked and (why := _refusal(sock)):
            sock.close()
            raise ForbiddenAddressError(connection, f"{connection.host}:{connection.port}: {why}")
        if _fetching.watch is not None:
            _fetching.watch.add(sock)

    def reuse(connection: BaseHTTPConnection) -> None:
        sock: socket.socket | None = getattr(connection, "sock", None)
        if sock is None:
            return  # it connects (and is admitted) when used
        if checked and _refusal(sock):
            connection.close()  # kept for a fetch allowed more: this one connects anew
        elif _fetching.watch is not None:
            _fetching.watch.add(sock)

    class HTTPConnection(urllib3.connection.HTTPConnection):
        def _new_conn(self) -> socket.socket:
            before_connect(self)
            sock = super()._new_conn()
            admit(self, sock)
            return sock

    class HTTPSConnection(urllib3.connection.HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            before_connect(self)
            sock = super()._new_conn()
            admit(self, sock)
            return sock

    class HTTPPool(urllib3.connectionpool.HTTPConnectionPool):
        ConnectionCls = HTTPConnection

        def _get_conn(self, timeout: float | None = None) -> BaseHTTPConnection:
            connection = super()._get_conn(timeout)
            reuse(connection)
            return connection

    class HTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
        ConnectionCls = HTTPSConnection

        def _get_conn(self, timeout: float | None = None) -> BaseHTTPConnection:
            connection = super()._get_conn(timeout)
            reuse(connection)
            return connection

    return {"http": HTTPPool, "https": HTTPSPool}


def _proxied_target_refusal(url: str) -> str | None:
    """Why a request through a proxy must not go to ``url``: its host is an address the
    running fetch may not reach, or a name that resolves here to one. A name that does
    not resolve here is the proxy's to resolve."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    literal = address_of(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            found = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError):
            return None
        addresses = [ipaddress.ip_address(info[4][0]) for info in found]
    for address in addresses:
        if why := refusal(address, _fetching.allow_networks):
            return f"{host}: {why}"
    return None


class _Adapter(requests.adapters.HTTPAdapter):
    """Connections through a proxy from the environment are watched too, and what each
    request asks the proxy for is checked first."""

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        proxies = kwargs.get("proxies") or (args[4] if len(args) > 4 else None)
        if proxies and request.url and select_proxy(request.url, proxies):
            why = _proxied_target_refusal(request.url)
            if why:
                raise requests.exceptions.ConnectionError(ForbiddenTargetError(why))
        return super().send(request, *args, **kwargs)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = _watched_pools(checked=False)
        return manager


_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
# requests' own order (``Session.merge_environment_settings``)
_CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def ca_bundle(environ: Mapping[str, str]) -> str | None:
    """The CA bundle the environment names for requests, if any."""
    return next((environ[name] for name in _CA_BUNDLE_VARIABLES if environ.get(name)), None)


def needs_environment(environ: Mapping[str, str], home: Path) -> bool:
    """Whether requests must read the environment on every request: proxies (and their
    per-URL ``no_proxy`` exceptions) or a netrc file. A CA bundle alone does not need it:
    it is read once, here, into the session."""
    if any(name.lower() in _PROXY_VARIABLES for name, value in environ.items() if value):
        return True
    return (home / ".netrc").exists() or (home / "_netrc").exists()


class Fetcher:
    """One pooled ``requests`` session shared by every worker thread.

    Cookies are refused: one source's cookies must never reach another source's requests.
    """

    def __init__(self, user_agent: str, pool_size: int = 16) -> None:
        self.session = requests.Session()
        self.session.max_redirects = MAX_REDIRECTS
        self.session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        self.session.headers.update(
            {
                "User-Agent": user_agent,
                "Accept": "application/rss+xml, application/atom+xml, application/feed+json, "
                "application/json;q=0.9, application/xml;q=0.9, text/xml;q=0.8, */*;q=0.5",
                "Accept-Encoding": "gzip, deflate",
            }
        )
        adapter = _Adapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
        # A trusted environment (proxies, CA bundle, ~/.netrc) is read again on every
        # request: os.environ scans and netrc file checks on the hot path (3% of a warm
        # pass in a profile). A CA bundle is read once into the session; only proxies and
        # netrc, which depend on the URL, need the per-request reading.
        bundle = ca_bundle(os.environ)
        if bundle:
            self.session.verify = bundle
        self.session.trust_env = needs_environment(os.environ, Path.home())
        adapter.poolmanager.pool_classes_by_scheme = _watched_pools(checked=True)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.watchdog = _Watchdog()

    def close(self) -> None:
        self.session.close()
        self.watchdog.close()

    def fetch(self, request: FetchRequest) -> FetchResult:
        started = time.monotonic()
        if urlsplit(request.url).scheme == "file":
            return _fetch_file(request, started)
        return self._fetch_http(request, started)

    def _fetch_http(self, request: FetchRequest, started: float) -> FetchResult:
        watch = _fetching.watch = self.watchdog.watch(started + request.total_timeout_seconds)
        _fetching.allow_networks = request.allow_networks
        try:
            return self._get(request, started, watch)
        finally:
            _fetching.watch = None
            _fetching.allow_networks = ()
            watch.finish()

    def _get(self, request: FetchRequest, started: float, watch: _Watch) -> FetchResult:
        headers = dict(request.headers)
        if request.etag:
            headers["If-None-Match"] = request.etag
        if request.last_modified:
            headers["If-Modified-Since"] = request.last_modified
        try:
            response = self.session.get(
                request.url,
                headers=headers,
                timeout=(request.timeout_seconds, request.timeout_seconds),
                stream=True,
                allow_redirects=True,
            )
        except requests.exceptions.RequestException as e:
            if watch.expired:
                raise _deadline_passed(request, "before the response headers arrived") from e
            raise _wrap(e, request) from e
        complete = False
        try:
            if watch.expired:  # the headers were cut short: what arrived is not the answer
                raise _deadline_passed(request, "before the response headers arrived")
            facts = _facts(response)
            if response.status_code == 304:
                complete = True
                return NotModified(http=facts, duration_seconds=time.monotonic() - started)
            if not 200 <= response.status_code < 300:
                raise HTTPStatusError(
                    response.status_code, response.reason or "", facts.retry_after
                )
            body = _read_capped(response, request, watch)
            complete = True
            return Retrieved(body=body, http=facts, duration_seconds=time.monotonic() - started)
        finally:
            # A response read to its end gives its connection back to the pool for the
            # next fetch (``Response.close`` would close it: the body was read from
            # ``raw``, so requests thinks it unread). Anything cut short is closed.
            if complete:
                response.raw.release_conn()
            else:
                response.close()


def _deadline_passed(request: FetchRequest, when: str) -> FetchTimeoutError:
    return FetchTimeoutError(
        f"total deadline of {request.total_timeout_seconds:g}s passed {when} (server too slow)"
    )


def _read_capped(response: requests.Response, request: FetchRequest, watch: _Watch) -> bytes:
    declared = response.headers.get("Content-Length", "")
    encoded = response.headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
    if declared.isdigit() and not encoded and int(declared) > request.max_body_bytes:
        raise BodyTooLargeError(
            f"body of {int(declared)} bytes is over the cap of {request.max_body_bytes} bytes"
        )
    chunks: list[bytes] = []
    total = 0
    try:
        while True:
            # an end cut by the watchdog looks like the end of a body sent without a length
            if watch.expired or time.monotonic() > watch.deadline:
                raise _deadline_passed(request, f"after {total} bytes")
            chunk = response.raw.read1(READ_CHUNK_BYTES, decode_content=True)
            if not chunk:
                if watch.expired:
                    raise _deadline_passed(request, f"after {total} bytes")
                break
            total += len(chunk)
            if total > request.max_body_bytes:
                what = "decompressed body" if encoded else "body"
                raise BodyTooLargeError(f"{what} is over the cap of {request.max_body_bytes} bytes")
            chunks.append(chunk)
    except (urllib3.exceptions.HTTPError, OSError) as e:
        if watch.expired:
            raise _deadline_passed(request, f"after {total} bytes") from e
        raise _wrap_read(e, request) from e
    return b"".join(chunks)


def _wrap_read(error: Exception, request: FetchRequest) -> FetchError:
    name = type(error).__name__
    if isinstance(error, urllib3.exceptions.ReadTimeoutError | TimeoutError):
        return FetchTimeoutError(f"read timeout after {request.timeout_seconds:g}s ({name})")
    if isinstance(error, urllib3.exceptions.DecodeError):
        return FetchError(f"cannot decompress the body ({name})")
    text = str(error)
    if "reset" in text.lower():
        return ConnectError(f"connection reset while reading the body ({name})")
    if "IncompleteRead" in text:
        return ConnectError(f"connection closed before the whole body arrived ({name})")
    return ConnectError(f"connection broken while reading the body ({name})")


def _wrap(error: requests.exceptions.RequestException, request: FetchRequest) -> FetchError:
    """One clear line for every way ``requests`` can fail."""
    text = str(error)
    name = type(error).__name__
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return FetchTimeoutError(f"connect timeout after {request.timeout_seconds:g}s ({name})")
    if isinstance(error, requests.exceptions.ReadTimeout):
        return FetchTimeoutError(f"read timeout after {request.timeout_seconds:g}s ({name})")
    if isinstance(error, requests.exceptions.TooManyRedirects):
        return ConnectError(f"redirect loop: more than {MAX_REDIRECTS} redirects ({name})")
    if isinstance(error, requests.exceptions.SSLError):
        reason = _SSL_REASON.search(text)
        return ConnectError(f"TLS failure: {reason.group(0) if reason else _short(text)} ({name})")
    if isinstance(error, requests.exceptions.ConnectionError):
        cause = error.args[0] if error.args else None
        reason = getattr(cause, "reason", cause)
        if isinstance(reason, ForbiddenAddressError | ForbiddenTargetError):
            return ConnectError(f"refused: {reason.detail} ({type(reason).__name__})")
        if "NameResolution" in text or "Name or service not known" in text:
            host = urlsplit(request.url).hostname
            return ConnectError(f"host name {host!r} does not resolve ({name})")
        if "Connection refused" in text:
            return ConnectError(f"connection refused ({name})")
        if "reset" in text.lower():
            return ConnectError(f"connection reset ({name})")
        return ConnectError(f"cannot connect ({name}: {_short(text)})")
    if isinstance(error, requests.exceptions.ContentDecodingError):
        return FetchError(f"cannot decompress the body ({name})")
    return FetchError(f"{name}: {_short(text)}")


def _short(text: str, limit: int = 160) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _fetch_file(request: FetchRequest, started: float) -> FetchResult:
    """A ``file://`` source: Last-Modified is the file's mtime, so polling it is cheap."""
    parts = urlsplit(request.url)
    path = Path(unquote(parts.path))
    try:
        stat = path.stat()
        modified = email.utils.format_datetime(
            datetime.fromtimestamp(int(stat.st_mtime), tz=UTC), usegmt=True
        )
        facts = HTTPFacts(status=200, final_url=request.url, last_modified=modified)
        if request.last_modified == modified:
            facts = HTTPFacts(status=304, final_url=request.url, last_modified=modified)
            return NotModified(http=facts, duration_seconds=time.monotonic() - started)
        if stat.st_size > request.max_body_bytes:
            raise BodyTooLargeError(
                f"file of {stat.st_size} bytes is over the cap of {request.max_body_bytes} bytes"
            )
        body = path.read_bytes()
    except FileNotFoundError as e:
        raise HTTPStatusError(404, f"file not found: {path}") from e
    except OSError as e:
        raise FetchError(f"cannot read {path}: {e.strerror or e}") from e
    return Retrieved(body=body, http=facts, duration_seconds=time.monotonic() - started)
