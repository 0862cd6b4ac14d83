"""The fetcher against a real HTTP server on 127.0.0.1 (requests is never mocked)."""

from __future__ import annotations

import gzip
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aggregator.errors import (
    BodyTooLargeError,
    ConnectError,
    FetchTimeoutError,
    HTTPStatusError,
)
from aggregator.fetcher import Fetcher, FetchRequest
from aggregator.model import NotModified, Retrieved
from tests.feedserver import FeedServer, Route

BODY = "<rss version='2.0'><channel><title>中文</title></channel></rss>".encode()


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    client = Fetcher("aggregator-test/1")
    yield client
    client.close()


def test_plain_get_carries_facts_and_user_agent(fetcher: Fetcher, feed_server: FeedServer) -> None:
    feed_server.routes["/f"] = Route(BODY, headers={"Cache-Control": "public, max-age=600"})
    result = fetcher.fetch(FetchRequest(feed_server.url("/f")))
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
        FetchRequest(feed_server.url("/f"), etag=route.etag, last_modified=route.last_modified)
    )
    assert isinstance(result, NotModified)
    assert result.http.status == 304


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_bodies_are_decoded(
    fetcher: Fetcher, feed_server: FeedServer, encoding: str
) -> None:
    feed_server.routes["/f"] = Route(BODY * 100, encoding=encoding)
    result = fetcher.fetch(FetchRequest(feed_server.url("/f")))
    assert isinstance(result, Retrieved)
    assert result.body == BODY * 100


def test_body_cap(fetcher: Fetcher, feed_server: FeedServer) -> None:
    feed_server.routes["/big"] = Route(b"x" * 5000)
    with pytest.raises(BodyTooLargeError, match="5000 bytes is over the cap of 1000 bytes"):
        fetcher.fetch(FetchRequest(feed_server.url("/big"), max_body_bytes=1000))


def test_cap_applies_after_decompression(fetcher: Fetcher, feed_server: FeedServer) -> None:
    bomb = b"\0" * (20 * 1024 * 1024)
    feed_server.routes["/bomb"] = Route(bomb, encoding="gzip")
    assert len(gzip.compress(bomb)) < 100_000  # small on the wire
    with pytest.raises(BodyTooLargeError, match="decompressed body is over the cap"):
        fetcher.fetch(FetchRequest(feed_server.url("/bomb"), max_body_bytes=1024 * 1024))


def test_trickling_server_hits_the_total_deadline(
    fetcher: Fetcher, feed_server: FeedServer
) -> None:
    feed_server.routes["/slow"] = Route(b"x" * 100, trickle_seconds_per_byte=0.2)
    started = time.monotonic()
    with pytest.raises(FetchTimeoutError, match="total deadline of 1s passed"):
        fetcher.fetch(
            FetchRequest(feed_server.url("/slow"), timeout_seconds=5, total_timeout_seconds=1)
        )
    assert time.monotonic() - started < 10  # generous: a hung read would take 20 s


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
            fetcher.fetch(FetchRequest(f"http://127.0.0.1:{port}/", timeout_seconds=0.5))
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
        fetcher.fetch(FetchRequest(f"http://127.0.0.1:{port}/feed"))


def test_error_statuses_carry_status_and_retry_after(
    fetcher: Fetcher, feed_server: FeedServer
) -> None:
    feed_server.routes["/busy"] = Route(
        status=503, headers={"Retry-After": "120"}, validators=False
    )
    with pytest.raises(HTTPStatusError) as caught:
        fetcher.fetch(FetchRequest(feed_server.url("/busy")))
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
    moved = fetcher.fetch(FetchRequest(feed_server.url("/moved")))
    assert moved.http.permanent_redirect_url == feed_server.url("/new")
    temp = fetcher.fetch(FetchRequest(feed_server.url("/temp")))
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
        fetcher.fetch(FetchRequest(feed_server.url("/a")))


def test_cookies_do_not_leak_between_sources(fetcher: Fetcher, feed_server: FeedServer) -> None:
    feed_server.routes["/set"] = Route(BODY, headers={"Set-Cookie": "session=secret; Path=/"})
    feed_server.routes["/other"] = Route(BODY)
    fetcher.fetch(FetchRequest(feed_server.url("/set")))
    fetcher.fetch(FetchRequest(feed_server.url("/other")))
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
