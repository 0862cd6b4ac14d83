"""The fetcher against a real HTTP server on 127.0.0.1 (requests is never mocked)."""

from __future__ import annotations

import gzip
import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aggregator.errors import (
    BodyTooLargeError,
    ConnectError,
    FetchTimeoutError,
    HTTPStatusError,
)
from aggregator.ingest.fetcher import (
    Fetcher,
    FetchRequest,
    ca_bundle,
    needs_environment,
)
from aggregator.model import NotModified, Retrieved
from tests.feedserver import FeedServer, Route, serving

BODY = "<rss version='2.0'><channel><title>中文</title></channel></rss>".encode()
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)


def local(url: str, **options: Any) -> FetchRequest:
    """A request to the test servers on 127.0.0.1, which only an allowance reaches."""
    return FetchRequest(url, allow_networks=LOOPBACK, **options)


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    client = Fetcher("aggregator-test/1")
    yield client
    client.close()


def test_plain_get_carries_facts_and_user_agent(fetcher: Fetcher, feed_server: FeedServer) -> None:
    feed_server.routes["/f"] = Route(BODY, headers={"Cache-Control": "public, max-age=600"})
    result = fetcher.fetch(local(feed_server.url("/f")))
    assert isinstance(result, Retrieved)
    assert result.body == BODY
    assert result.http.status == 200
    assert result.http.etag == feed_server.routes["/f"].etag
    assert result.http.last_modified == feed_server.routes["/f"].last_modified
    assert result.http.cache_max_age_seconds == 600
    (request,) = feed_server.requests_to("/f")
    assert request.headers["User-Agent"] == "aggregator-test/1"
    assert "gzip" in request.headers["Accept-Encoding"]


def test_conditional_get_gives_not_modified(fetcher: Fetcher, feed_server: FeedServer) -> None:
    route = feed_server.routes["/f"] = Route(BODY)
    result = fetcher.fetch(
        local(feed_server.url("/f"), etag=route.etag, last_modified=route.last_modified)
    )
    assert isinstance(result, NotModified)
    assert result.http.status == 304


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_bodies_are_decoded(
    fetcher: Fetcher, feed_server: FeedServer, encoding: str
) -> None:
    feed_server.routes["/f"] = Route(BODY * 100, encoding=encoding)
    result = fetcher.fetch(local(feed_server.url("/f")))
    assert isinstance(result, Retrieved)
    assert result.body == BODY * 100


def test_body_cap(fetcher: Fetcher, feed_server: FeedServer) -> None:
    feed_server.routes["/big"] = Route(b"x" * 5000)
    with pytest.raises(BodyTooLargeError, match="5000 bytes is over the cap of 1000 bytes"):
        fetcher.fetch(local(feed_server.url("/big"), max_body_bytes=1000))


def test_cap_applies_after_decompression(fetcher: Fetcher, feed_server: FeedServer) -> None:
    bomb = b"\0" * (20 * 1024 * 1024)
    feed_server.routes["/bomb"] = Route(bomb, encoding="gzip")
    assert len(gzip.compress(bomb)) < 100_000  # small on the wire
    with pytest.raises(BodyTooLargeError, match="decompressed body is over the cap"):
        fetcher.fetch(local(feed_server.url("/bomb"), max_body_bytes=1024 * 1024))


def test_trickling_server_hits_the_total_deadline(
    fetcher: Fetcher, feed_server: FeedServer
) -> None:
    feed_server.routes["/slow"] = Route(b"x" * 100, trickle_seconds_per_byte=0.2)
    started = time.monotonic()
    with pytest.raises(FetchTimeoutError, match="total deadline of 1s passed"):
        fetcher.fetch(local(feed_server.url("/slow"), timeout_seconds=5, total_timeout_seconds=1))
    assert time.monotonic() - started < 10  # generous: a hung read would take 20 s


@pytest.mark.parametrize(
    "drip",
    [
        pytest.param(b"x", id="one byte of a header line at a time"),
        pytest.param(b"X-N: 1\r\n", id="one header at a time"),
    ],
)
@pytest.mark.parametrize("pooled", [False, True], ids=["new connection", "pooled connection"])
def test_trickled_headers_hit_the_total_deadline(
    fetcher: Fetcher, feed_server: FeedServer, drip: bytes, pooled: bool
) -> None:
    """Each byte arrives well within the read timeout, so only the total deadline can
    end the fetch; it covers the response headers, not just the body (issue 13), on a
    new connection and on one the pool kept from a fetch before."""
    feed_server.routes["/slow-headers"] = Route(drip=drip, drip_seconds=0.1)
    if pooled:
        feed_server.routes["/f"] = Route(BODY)
        assert isinstance(fetcher.fetch(local(feed_server.url("/f"))), Retrieved)
    started = time.monotonic()
    with pytest.raises(
        FetchTimeoutError, match=r"total deadline of 1s passed before the response headers"
    ):
        fetcher.fetch(
            local(feed_server.url("/slow-headers"), timeout_seconds=5, total_timeout_seconds=1)
        )
    # generous: the server would go on dripping for a minute
    assert time.monotonic() - started < 10
    (request,) = feed_server.requests_to("/slow-headers")
    deadline = time.monotonic() + 5
    while not request.finished and time.monotonic() < deadline:
        time.sleep(0.05)  # the server notices the closed connection at its next drip
    assert request.finished, "the connection was left open"


def test_silent_server_hits_the_read_timeout(fetcher: Fetcher) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True)
    thread.start()
    try:
        with pytest.raises(FetchTimeoutError, match=r"read timeout after 0\.5s"):
            fetcher.fetch(local(f"http://127.0.0.1:{port}/", timeout_seconds=0.5))
    finally:
        for conn in accepted:
            conn.close()
        listener.close()


def test_refused_connection(fetcher: Fetcher) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with pytest.raises(ConnectError, match="connection refused"):
        fetcher.fetch(local(f"http://127.0.0.1:{port}/feed"))


def test_error_statuses_carry_status_and_retry_after(
    fetcher: Fetcher, feed_server: FeedServer
) -> None:
    feed_server.routes["/busy"] = Route(
        status=503, headers={"Retry-After": "120"}, validators=False
    )
    with pytest.raises(HTTPStatusError) as caught:
        fetcher.fetch(local(feed_server.url("/busy")))
    assert caught.value.status == 503
    assert caught.value.retry_after == "120"
    assert str(caught.value) == "HTTP 503 Service Unavailable"


def test_permanent_redirect_is_reported_temporary_is_not(
    fetcher: Fetcher, feed_server: FeedServer
) -> None:
    feed_server.routes["/new"] = Route(BODY)
    feed_server.routes["/moved"] = Route(
        status=301, validators=False, headers={"Location": feed_server.url("/new")}
    )
    feed_server.routes["/temp"] = Route(
        status=302, validators=False, headers={"Location": feed_server.url("/new")}
    )
    moved = fetcher.fetch(local(feed_server.url("/moved")))
    assert moved.http.permanent_redirect_url == feed_server.url("/new")
    temp = fetcher.fetch(local(feed_server.url("/temp")))
    assert temp.http.permanent_redirect_url is None
    assert temp.http.final_url == feed_server.url("/new")


def test_redirect_loop_is_an_error(fetcher: Fetcher, feed_server: FeedServer) -> None:
    feed_server.routes["/a"] = Route(
        status=302, validators=False, headers={"Location": feed_server.url("/b")}
    )
    feed_server.routes["/b"] = Route(
        status=302, validators=False, headers={"Location": feed_server.url("/a")}
    )
    with pytest.raises(ConnectError, match="redirect loop"):
        fetcher.fetch(local(feed_server.url("/a")))


def test_cookies_do_not_leak_between_sources(fetcher: Fetcher, feed_server: FeedServer) -> None:
    feed_server.routes["/set"] = Route(BODY, headers={"Set-Cookie": "session=secret; Path=/"})
    feed_server.routes["/other"] = Route(BODY)
    fetcher.fetch(local(feed_server.url("/set")))
    fetcher.fetch(local(feed_server.url("/other")))
    assert "Cookie" not in feed_server.requests_to("/other")[0].headers


def test_file_source_with_mtime_validator(fetcher: Fetcher, tmp_path: Path) -> None:
    path = tmp_path / "feed.xml"
    path.write_bytes(BODY)
    first = fetcher.fetch(FetchRequest(path.as_uri()))
    assert isinstance(first, Retrieved)
    assert first.body == BODY
    second = fetcher.fetch(FetchRequest(path.as_uri(), last_modified=first.http.last_modified))
    assert isinstance(second, NotModified)
    with pytest.raises(HTTPStatusError, match="file not found"):
        fetcher.fetch(FetchRequest((tmp_path / "missing.xml").as_uri()))
    with pytest.raises(BodyTooLargeError):
        fetcher.fetch(FetchRequest(path.as_uri(), max_body_bytes=3))


def test_unresolvable_host(fetcher: Fetcher) -> None:
    with pytest.raises(ConnectError, match="does not resolve"):
        fetcher.fetch(FetchRequest("http://no-such-host.invalid/feed", timeout_seconds=3))


def test_loopback_is_refused_by_default(feed_server: FeedServer) -> None:
    """With no allowance (the default config), the test server on 127.0.0.1 is out of
    reach, as a local database port is (issue 13)."""
    feed_server.routes["/f"] = Route(BODY)
    client = Fetcher("aggregator-test/1")
    try:
        with pytest.raises(
            ConnectError,
            match=r"refused: 127\.0\.0\.1:\d+: 127\.0\.0\.1 is not a public address, and "
            r"no allow_networks entry covers it \(ForbiddenAddressError\)",
        ):
            client.fetch(FetchRequest(feed_server.url("/f")))
    finally:
        client.close()
    assert feed_server.requests_to("/f") == []


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_private_address_refused_when_not_allowed(feed_server: FeedServer, host: str) -> None:
    """A literal address and a name resolving to loopback are both refused, at connect
    time, before a byte of the request is sent; an allowance of another network does
    not cover it."""
    feed_server.routes["/f"] = Route(BODY)
    client = Fetcher("aggregator-test/1")
    url = f"http://{host}:{feed_server.port}/f"
    other = (ipaddress.ip_network("10.0.0.0/8"),)
    with pytest.raises(ConnectError, match=r"127\.0\.0\.1 is not a public address"):
        client.fetch(FetchRequest(url, allow_networks=other))
    client.close()
    assert feed_server.requests_to("/f") == []


def test_redirect_to_a_refused_address_is_refused(feed_server: FeedServer) -> None:
    """The check runs on every connection, so a redirect cannot reach a refused address.
    Here 127.0.0.1 is allowed and 127.0.0.2 is not, so the first server can be reached."""
    with serving("127.0.0.2") as inner:
        inner.routes["/secret"] = Route(BODY)
        feed_server.routes["/f"] = Route(
            status=302, validators=False, headers={"Location": inner.url("/secret")}
        )
        client = Fetcher("aggregator-test/1")
        only_first = (ipaddress.ip_network("127.0.0.1/32"),)
        with pytest.raises(ConnectError, match=r"127\.0\.0\.2 is not a public address"):
            client.fetch(FetchRequest(feed_server.url("/f"), allow_networks=only_first))
        client.close()
        assert len(feed_server.requests_to("/f")) == 1
        assert inner.requests_to("/secret") == []


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("http://127.0.0.2:{closed}/", id="a closed local port"),
        pytest.param("http://169.254.169.254/latest/meta-data/", id="the metadata service"),
        pytest.param("http://[::ffff:169.254.169.254]/", id="the same, IPv4-mapped"),
    ],
)
def test_a_refused_literal_address_is_not_even_connected_to(
    feed_server: FeedServer, target: str
) -> None:
    """A redirect to a literal address the rule refuses fails before connecting: no SYN
    to the metadata service, and a closed local port reads as refused like an open one,
    not as "connection refused" (which would tell an open port from a closed one)."""
    probe = socket.socket()
    probe.bind(("127.0.0.2", 0))
    closed = probe.getsockname()[1]
    probe.close()
    location = target.format(closed=closed)
    feed_server.routes["/f"] = Route(status=302, validators=False, headers={"Location": location})
    client = Fetcher("aggregator-test/1")
    only_first = (ipaddress.ip_network("127.0.0.1/32"),)
    try:
        with pytest.raises(ConnectError, match=r"^refused: .* is (not a public|link-local)"):
            client.fetch(
                FetchRequest(feed_server.url("/f"), allow_networks=only_first, timeout_seconds=2)
            )
    finally:
        client.close()


def test_a_pooled_connection_is_checked_again_for_each_fetch(feed_server: FeedServer) -> None:
    """One source allowed a private network; a connection it left in the pool does not
    carry that allowance to the next source's fetch of the same host."""
    feed_server.routes["/f"] = Route(BODY)
    client = Fetcher("aggregator-test/1")
    try:
        assert isinstance(client.fetch(local(feed_server.url("/f"))), Retrieved)
        with pytest.raises(ConnectError, match=r"127\.0\.0\.1 is not a public address"):
            client.fetch(FetchRequest(feed_server.url("/f")))
        assert isinstance(client.fetch(local(feed_server.url("/f"))), Retrieved)
    finally:
        client.close()
    assert len(feed_server.requests_to("/f")) == 2


@pytest.mark.parametrize(
    ("environ", "netrc", "needed"),
    [
        pytest.param({}, False, False, id="nothing configured"),
        pytest.param({"REQUESTS_CA_BUNDLE": "/etc/ca.pem"}, False, False, id="CA bundle only"),
        pytest.param({"HTTPS_PROXY": "http://proxy:3128"}, False, True, id="proxy upper case"),
        pytest.param({"no_proxy": "example.com"}, False, True, id="no_proxy alone"),
        pytest.param({"http_proxy": ""}, False, False, id="empty proxy variable"),
        pytest.param({}, True, True, id="netrc file"),
    ],
)
def test_environment_read_per_request_only_when_it_depends_on_the_url(
    tmp_path: Path, environ: dict[str, str], netrc: bool, needed: bool
) -> None:
    if netrc:
        (tmp_path / ".netrc").write_text("machine example.com login a password b\n")
    assert needs_environment(environ, tmp_path) is needed


@pytest.mark.parametrize(
    ("environ", "bundle"),
    [
        pytest.param({}, None, id="none"),
        pytest.param({"CURL_CA_BUNDLE": "/c.pem"}, "/c.pem", id="curl"),
        pytest.param(
            {"CURL_CA_BUNDLE": "/c.pem", "REQUESTS_CA_BUNDLE": "/r.pem"},
            "/r.pem",
            id="requests first",
        ),
        pytest.param(
            {"REQUESTS_CA_BUNDLE": "", "CURL_CA_BUNDLE": "/c.pem"}, "/c.pem", id="empty skipped"
        ),
    ],
)
def test_ca_bundle_follows_requests_order(environ: dict[str, str], bundle: str | None) -> None:
    assert ca_bundle(environ) == bundle


def test_ca_bundle_is_read_once_into_the_session(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    client = Fetcher("aggregator-test/1")
    try:
        assert client.session.verify == "/etc/ssl/certs/ca-certificates.crt"
        assert client.session.trust_env is False
    finally:
        client.close()


@pytest.fixture
def proxied(monkeypatch: pytest.MonkeyPatch, feed_server: FeedServer) -> Iterator[Fetcher]:
    """A fetcher whose environment names the feed server as its forward proxy (the
    request line then carries the absolute URL)."""
    monkeypatch.setenv("HTTP_PROXY", feed_server.url(""))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = Fetcher("aggregator-test/1")
    yield client
    client.close()


def test_a_configured_proxy_is_used(proxied: Fetcher, feed_server: FeedServer) -> None:
    """The proxy, which ops configured, is reached though it is on loopback; the
    target's name does not resolve here, so it is the proxy's to resolve."""
    target = "http://feeds.example.invalid/news.xml"
    feed_server.routes[target] = Route(BODY)
    result = proxied.fetch(FetchRequest(target))
    assert isinstance(result, Retrieved)
    assert result.body == BODY
    assert len(feed_server.requests_to(target)) == 1


@pytest.mark.parametrize(
    ("target", "refused"),
    [
        pytest.param("http://169.254.169.254/latest/meta-data/", "link-local", id="metadata"),
        pytest.param("http://[::ffff:169.254.169.254]/", "link-local", id="metadata mapped"),
        pytest.param("http://127.0.0.1:5432/", "not a public address", id="loopback"),
        pytest.param("http://localhost:5432/", "not a public address", id="loopback name"),
    ],
)
def test_a_proxy_is_not_asked_for_a_refused_address(
    proxied: Fetcher, feed_server: FeedServer, target: str, refused: str
) -> None:
    """Behind a proxy the socket reaches the proxy, so the target is checked before the
    request goes to it: the proxy is never asked for the metadata service or loopback."""
    with pytest.raises(ConnectError, match=f"refused: .*{refused}.*ForbiddenTargetError"):
        proxied.fetch(FetchRequest(target))
    assert feed_server.requests == []


def test_a_proxied_redirect_to_a_refused_address_is_refused(
    proxied: Fetcher, feed_server: FeedServer
) -> None:
    target = "http://feeds.example.invalid/news.xml"
    feed_server.routes[target] = Route(
        status=302, validators=False, headers={"Location": "http://169.254.169.254/"}
    )
    with pytest.raises(ConnectError, match=r"169\.254\.169\.254 is link-local"):
        proxied.fetch(FetchRequest(target))
    assert [r.path for r in feed_server.requests] == [target]
