"""HTTP caching in one place: a rendered ``Document`` with its validators, conditional
GET, the response headers, and one bounded LRU of documents. Holds no business logic.

Both ways a response leaves the service go through here: the Starlette routes (via
``DocumentResponse``) and the raw ASGI fast path (``fastpath.FastFeeds``), so a 304, an
ETag or a header is decided by one piece of code.

    request headers --scan_headers--> (host, Accept-Encoding, If-None-Match, If-Modified-Since)
    Document.answer(...) -> (status, encoded headers, body)
        gzip when accepted and the body is large enough, with its own strong ETag
        304 when If-None-Match names either ETag (or *), else when If-Modified-Since
        is not older than Last-Modified (RFC 9110 section 13.2.2: If-None-Match wins)
        headers encoded once per document and variant (the fast path sends them as is)
        HTML pages also get Content-Security-Policy, nosniff and Referrer-Policy
        (page_security_headers), 404 pages too (page_response)
        a stale answer (the database did not answer: availability.py) says so in
        Cache-Status
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

from starlette.responses import Response

from aggregator import __version__
from aggregator.observe.metrics import CACHE_HIT, CACHE_MISS

GZIP_MIN_BYTES = 1024  # smaller bodies gain too little from gzip to pay for it

# Cache-Control by kind of answer. Feeds and pages may be reused briefly by shared caches
# (a poller revalidates with a 304 after that); API answers are always revalidated.
FEED_CACHE_CONTROL = "public, max-age=60"
PAGE_CACHE_CONTROL = "public, max-age=30"
ITEM_CACHE_CONTROL = "public, max-age=60"
API_CACHE_CONTROL = "no-cache"
# A document answered without its freshness checked, because the database did not answer
# (RFC 9211's Cache-Status; the idea of RFC 5861's stale-if-error).
STALE_CACHE_STATUS = "aggregator; hit; detail=stale-if-error"

Headers = list[tuple[bytes, bytes]]
Answer = tuple[int, Headers, bytes]  # status, encoded headers, body
HTML = "text/html; charset=utf-8"
_STYLE = re.compile(rb"<style[^>]*>(.*?)</style>", re.DOTALL)


def page_security_headers(body: bytes) -> list[tuple[str, str]]:
    """The headers every HTML page carries. Its policy allows what the pages use and no
    more: their inline stylesheets, each by its hash (read from the page's head, which
    holds no feed text, so markup from a feed could not add one), and images from any
    http(s) site (article bodies keep their images: content, not page assets; the
    sanitizer lets ``<img>`` through with http(s) sources only). No scripts, fonts,
    frames, forms or ``<base>``, and no framing by other sites. The pages link to the
    original articles; ``no-referrer`` keeps their addresses from those sites and from
    the image hosts."""
    head = body.partition(b"<body")[0]
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(css).digest()).decode() + "'"
        for css in _STYLE.findall(head)
    ]
    styles = " ".join(hashes) or "'none'"
    policy = (
        f"default-src 'none'; style-src {styles}; img-src http: https:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return [
        ("content-security-policy", policy),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
    ]


def page_response(body: bytes, status: int) -> Response:
    """An HTML page that is no cached document (a 404), with the pages' headers."""
    return Response(body, status, dict(page_security_headers(body)), media_type=HTML)


@dataclass(slots=True)
class Document:
    """Bytes to send with their content type and validators, and how long others may
    reuse them. The gzip body and the encoded headers are made once, on first use."""

    body: bytes
    content_type: str
    etag: str  # strong, quoted; for the identity encoding
    last_modified: datetime
    cache_control: str
    _gzipped: bytes | None = field(default=None, repr=False)
    _wire: dict[tuple[bool, int, bool], Headers] = field(default_factory=dict, repr=False)

    def gzipped(self) -> bytes:
        if self._gzipped is None:
            self._gzipped = gzip.compress(self.body, compresslevel=6, mtime=0)
        return self._gzipped

    @property
    def gzip_etag(self) -> str:
        # a strong ETag names exact bytes, so the gzip encoding needs its own (RFC 9110 8.8.3.3)
        return self.etag[:-1] + '-gz"'

    @property
    def last_modified_http(self) -> str:
        return format_datetime(self.last_modified.astimezone(UTC), usegmt=True)

    def is_not_modified(self, if_none_match: bytes, if_modified_since: bytes) -> bool:
        """Whether the client's validators match: If-None-Match when it names any tag
        (either encoding's ETag, weak or strong, or *), else If-Modified-Since."""
        if if_none_match:
            tags = _etags(if_none_match.decode("latin-1"))
            if tags:
                return "*" in tags or self.etag in tags or self.gzip_etag in tags
        if if_modified_since:
            try:
                moment = parsedate_to_datetime(if_modified_since.decode("latin-1"))
            except (TypeError, ValueError, IndexError):
                return False
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return self.last_modified.replace(microsecond=0) <= moment
        return False

    def answer(
        self,
        accept_encoding: bytes,
        if_none_match: bytes,
        if_modified_since: bytes,
        head: bool,
        stale: bool = False,
    ) -> Answer:
        """Status, headers and body for a request with these header values (empty when
        absent): gzip when accepted, 304 when a validator matches, no body for HEAD;
        ``stale``: answered without checking the database, which did not answer."""
        use_gzip = b"gzip" in accept_encoding.lower() and len(self.body) >= GZIP_MIN_BYTES
        status = 200
        if (if_none_match or if_modified_since) and self.is_not_modified(
            if_none_match, if_modified_since
        ):
            status = 304
        headers = self._wire.get((use_gzip, status, stale))
        if headers is None:
            headers = self._headers(use_gzip, status, stale)
        if status == 304 or head:
            return status, headers, b""
        return status, headers, self.gzipped() if use_gzip else self.body

    def _headers(self, use_gzip: bool, status: int, stale: bool) -> Headers:
        """The encoded response headers of one variant, built once per document. A 304
        carries the validators and caching headers only; HEAD gets a 200's headers."""
        pairs = [
            ("etag", self.gzip_etag if use_gzip else self.etag),
            ("last-modified", self.last_modified_http),
            ("cache-control", self.cache_control),
            ("vary", "Accept-Encoding"),
        ]
        if status == 200:
            body = self.gzipped() if use_gzip else self.body
            pairs += [("content-type", self.content_type), ("content-length", str(len(body)))]
            if use_gzip:
                pairs.append(("content-encoding", "gzip"))
            if self.content_type.startswith("text/html"):
                pairs += page_security_headers(self.body)
        if stale:
            pairs.append(("cache-status", STALE_CACHE_STATUS))
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in pairs]
        self._wire[(use_gzip, status, stale)] = headers
        return headers


def _etags(header: str) -> set[str]:
    """The entity tags listed in an If-None-Match value, weak ones as their strong form
    (weak comparison, RFC 9110 section 13.1.2)."""
    return {part.strip().removeprefix("W/") for part in header.split(",") if part.strip()}


def scan_headers(raw: Sequence[tuple[bytes, bytes]]) -> tuple[bytes, bytes, bytes, bytes]:
    """Host, Accept-Encoding, If-None-Match and If-Modified-Since from an ASGI scope's
    raw headers (names arrive lowercased), empty when absent. One pass, no decoding:
    the fast path runs this on every request."""
    host = accept = match = since = b""
    for name, value in raw:
        if name == b"host":
            host = value
        elif name == b"accept-encoding":
            accept = value
        elif name == b"if-none-match":
            match = value
        elif name == b"if-modified-since":
            since = value
    return host, accept, match, since


class DocumentResponse(Response):
    """A Starlette response answering the request in ``scope`` with ``document``
    (``stale``: without its freshness checked, see ``Document.answer``)."""

    def __init__(self, document: Document, scope: Mapping[str, Any], stale: bool = False) -> None:
        _, accept, match, since = scan_headers(scope["headers"])
        answer = document.answer(accept, match, since, scope["method"] == "HEAD", stale)
        self.status_code, self.raw_headers, self.body = answer
        self.background = None


def make_etag(key: tuple[object, ...], stamp: int) -> str:
    """A strong ETag for what ``key`` names (its first element the publisher's config
    key) at freshness ``stamp``, under this version of the code."""
    digest = hashlib.sha256(repr((key, stamp, __version__)).encode()).hexdigest()
    return f'"{digest[:32]}"'


class DocumentCache:
    """The service's one cache: a bounded LRU of documents, each stored with the version
    it is valid at, keyed by what it holds. Two kinds of key are in use:

        (config key, what, ..., base URL)   a rendered feed or page, valid at its stamp;
            the same tuple its ETag is made from (``make_etag``), e.g.
            (config, "all", "xml", 50, None, None, None, None, "http://site")
            (config, "category", slug, page, base) and (config, "home", base)
        ("/feeds/...", query string, Host)   the fast path's raw request, valid at the
            store's change token (see fastpath.py)

    A feed answered on the fast path thus has two entries sharing one document. With the
    config key in the key, a request still rendering under a config just replaced by a
    reload cannot put its document where the new config's requests look. When full, the
    least recently used entry goes. ``find`` takes no lock (each OrderedDict operation
    is atomic under the GIL, and the fast path runs on the event loop); writers, from
    Starlette's thread pool, take one.
    """

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, tuple[object, Document]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def find(self, key: Hashable) -> tuple[object, Document] | None:
        """The entry under ``key`` as (version, document), now the most recently used."""
        entry = self._entries.get(key)
        if entry is not None:
            try:  # noqa: SIM105 (contextlib.suppress costs more, on the fast path's every hit)
                self._entries.move_to_end(key)
            except KeyError:
                pass  # evicted by another thread since the get: still a valid answer
        return entry

    def add(self, key: Hashable, version: object, document: Document) -> None:
        with self._lock:
            self._entries[key] = (version, document)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def cached(self, key: Hashable, version: object, build: Callable[[], Document]) -> Document:
        """The document under ``key`` if it is valid at ``version``, else ``build()``'s,
        kept for the next request."""
        entry = self.find(key)
        if entry is not None and entry[0] == version:
            CACHE_HIT.inc()
            return entry[1]
        CACHE_MISS.inc()
        document = build()
        self.add(key, version, document)
        return document

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
