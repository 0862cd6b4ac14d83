"""The HTTP-cache module on plain values: conditional GET, the response headers of every
variant, the header scan, ETags and the one LRU."""

from __future__ import annotations

import gzip
import re
import threading
from datetime import UTC, datetime

import pytest

from aggregator.serve.httpcache import (
    GZIP_MIN_BYTES,
    Document,
    DocumentCache,
    make_etag,
    scan_headers,
)

MODIFIED = datetime(2022, 1, 25, 7, 24, 31, 250_000, tzinfo=UTC)  # sent without the fraction
MODIFIED_HTTP = b"Tue, 25 Jan 2022 07:24:31 GMT"
LARGE = "新闻".encode() * GZIP_MIN_BYTES


def document(body: bytes = LARGE, cache_control: str = "public, max-age=60") -> Document:
    return Document(
        body=body,
        content_type="application/rss+xml; charset=utf-8",
        etag='"abc"',
        last_modified=MODIFIED,
        cache_control=cache_control,
    )


@pytest.mark.parametrize(
    ("if_none_match", "if_modified_since", "status"),
    [
        (b"", b"", 200),
        (b'"abc"', b"", 304),
        (b'"abc-gz"', b"", 304),
        (b'W/"abc"', b"", 304),
        (b'W/"x", "abc"', b"", 304),
        (b"*", b"", 304),
        (b'"other"', b"", 200),
        (b'"other"', MODIFIED_HTTP, 200),
        (b" , ", MODIFIED_HTTP, 304),
        (b"", MODIFIED_HTTP, 304),
        (b"", b"Wed, 26 Jan 2022 00:00:00 GMT", 304),
        (b"", b"Tue, 25 Jan 2022 07:24:30 GMT", 200),
        (b"", b"Tue, 25 Jan 2022 07:24:31", 304),
        (b"", b"Tue, 25 Jan 2022 15:24:31 +0800", 304),
        (b"", b"yesterday", 200),
    ],
    ids=[
        "no validators",
        "the ETag",
        "the gzip ETag",
        "weak form",
        "in a list",
        "star",
        "another ETag",
        "If-None-Match wins over a matching date",
        "no tags: the date decides",
        "the same second",
        "a later date",
        "an earlier date",
        "a date without a zone is UTC",
        "a date with an offset",
        "not a date",
    ],
)
def test_conditional_get(if_none_match: bytes, if_modified_since: bytes, status: int) -> None:
    answer = document().answer(b"", if_none_match, if_modified_since, head=False)
    assert answer[0] == status
    assert (answer[2] == b"") is (status == 304)


def test_headers_of_every_variant() -> None:
    doc = document()
    status, headers, body = doc.answer(b"identity", b"", b"", head=False)
    assert (status, body) == (200, LARGE)
    assert headers == [
        (b"etag", b'"abc"'),
        (b"last-modified", MODIFIED_HTTP),
        (b"cache-control", b"public, max-age=60"),
        (b"vary", b"Accept-Encoding"),
        (b"content-type", b"application/rss+xml; charset=utf-8"),
        (b"content-length", str(len(LARGE)).encode()),
    ]
    status, zipped_headers, zipped = doc.answer(b"gzip, deflate, br", b"", b"", head=False)
    assert status == 200
    assert gzip.decompress(zipped) == LARGE
    assert zipped_headers == [
        (b"etag", b'"abc-gz"'),
        (b"last-modified", MODIFIED_HTTP),
        (b"cache-control", b"public, max-age=60"),
        (b"vary", b"Accept-Encoding"),
        (b"content-type", b"application/rss+xml; charset=utf-8"),
        (b"content-length", str(len(zipped)).encode()),
        (b"content-encoding", b"gzip"),
    ]
    assert doc.answer(b"GZIP", b"", b"", head=False)[1] == zipped_headers  # any case
    # HEAD: a 200's headers (the length of the body it would get), no body
    assert doc.answer(b"gzip", b"", b"", head=True) == (200, zipped_headers, b"")
    # 304: the validators and caching headers only, for the encoding asked for
    assert doc.answer(b"gzip", b'"abc"', b"", head=False) == (304, zipped_headers[:4], b"")
    assert doc.answer(b"", b'"abc"', b"", head=True) == (304, headers[:4], b"")


def test_a_small_body_is_never_gzipped() -> None:
    small = document(b"<rss/>", cache_control="no-cache")
    status, headers, body = small.answer(b"gzip", b"", b"", head=False)
    assert (status, body) == (200, b"<rss/>")
    assert (b"etag", b'"abc"') in headers
    assert (b"cache-control", b"no-cache") in headers
    assert not any(name == b"content-encoding" for name, _ in headers)


def test_scan_headers() -> None:
    raw = [
        (b"host", b"news.example"),
        (b"user-agent", b"x"),
        (b"accept-encoding", b"gzip"),
        (b"if-none-match", b'"abc"'),
        (b"if-modified-since", MODIFIED_HTTP),
    ]
    assert scan_headers(raw) == (b"news.example", b"gzip", b'"abc"', MODIFIED_HTTP)
    assert scan_headers([]) == (b"", b"", b"", b"")


def test_etags_name_the_key_and_the_stamp() -> None:
    etag = make_etag(("config", "all", "xml"), 7)
    assert re.fullmatch(r'"[0-9a-f]{32}"', etag)
    assert etag == make_etag(("config", "all", "xml"), 7)
    assert etag != make_etag(("config", "all", "xml"), 8)
    assert etag != make_etag(("other", "all", "xml"), 7)


def test_the_cache_is_one_lru_with_one_bound() -> None:
    cache = DocumentCache(max_entries=3)
    docs = {name: document(name.encode()) for name in "abcd"}
    for name in "abc":
        cache.add((name,), 1, docs[name])
    assert cache.find(("a",)) == (1, docs["a"])  # a is now the most recently used
    cache.add(("d",), 1, docs["d"])
    assert len(cache) == 3
    assert cache.find(("b",)) is None  # the least recently used went
    assert [cache.find((n,)) is not None for n in "acd"] == [True, True, True]
    cache.add(("a",), 2, docs["b"])  # a new version replaces the old in place
    assert len(cache) == 3
    assert cache.find(("a",)) == (2, docs["b"])
    cache.clear()
    assert len(cache) == 0


def test_cached_builds_only_when_the_version_changed() -> None:
    cache = DocumentCache(max_entries=8)
    built: list[int] = []

    def build(stamp: int) -> Document:
        built.append(stamp)
        return document(str(stamp).encode())

    first = cache.cached(("feed",), 1, lambda: build(1))
    assert cache.cached(("feed",), 1, lambda: build(1)) is first
    second = cache.cached(("feed",), 2, lambda: build(2))
    assert second is not first
    assert second.body == b"2"
    assert built == [1, 2]


def test_the_cache_stays_bounded_under_concurrent_writers() -> None:
    cache = DocumentCache(max_entries=50)
    doc = document(b"x")

    def writer(offset: int) -> None:
        for n in range(2000):
            cache.add((offset, n), 0, doc)
            cache.find((offset, n - 3))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(cache) == 50


def test_a_stale_answer_says_so() -> None:
    doc = document()
    fresh = doc.answer(b"", b"", b"", head=False)
    stale = doc.answer(b"", b"", b"", head=False, stale=True)
    assert stale[1] == [*fresh[1], (b"cache-status", b"aggregator; hit; detail=stale-if-error")]
    assert stale[2] == fresh[2]
    not_modified = doc.answer(b"", b'"abc"', b"", head=False, stale=True)
    assert not_modified[0] == 304
    assert (b"cache-status", b"aggregator; hit; detail=stale-if-error") in not_modified[1]
    assert doc.answer(b"", b"", b"", head=False) == fresh  # the fresh variant unchanged
