"""The raw ASGI fast path in front of Starlette: a repeated feed request answered from
memory, with no query, while nothing has been committed anywhere since its document was
validated. It exists for the throughput of polled feeds (bench/republish.py), so its
per-request work is kept to a header scan, one cache lookup and one stat of the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote_from_bytes

from starlette.applications import Starlette

from aggregator.observe.metrics import CACHE_FAST
from aggregator.serve.httpcache import Document, DocumentCache, scan_headers
from aggregator.store import Store

_ASCII = "".join(map(chr, range(128)))


def ascii_query(scope: Any) -> Any:
    """``scope`` with the bytes of its query string above 127 percent-encoded.

    ``?q=芯片`` sent unencoded arrives as raw UTF-8 (granian passes it on; uvicorn's
    parsers refuse the request with a 400 before any app runs). Starlette reads a query
    string as Latin-1 and then percent-decodes it as UTF-8, so raw bytes became mojibake
    and the filter matched nothing. Encoding them as the client should have (RFC 3986
    section 2.1) reads them as UTF-8, as everything else is; what is not UTF-8 becomes
    U+FFFD. ASCII, the usual case, is left as it is, ``%`` and all."""
    query = scope.get("query_string", b"")
    if query.isascii():
        return scope
    return {**scope, "query_string": quote_from_bytes(query, safe=_ASCII).encode("ascii")}


class FastFeeds:
    """An ASGI layer that answers ``GET``/``HEAD /feeds/...`` from the shared
    ``DocumentCache`` when the store's change token still equals the one read when the
    document was last validated; anything else goes on to Starlette.

    The check is the store's change token (on SQLite, a stat of the database and its WAL:
    any commit by any process changes it), read *before* the stamp query that validated
    the document; if a write lands in between, the token differs on the next request and
    the normal path revalidates. So a cached answer is never older than the last commit
    the token saw, and without a token (PostgreSQL) every request takes the normal path:
    one primary-key query.

    Entries are keyed by the raw request (path, query string, Host), which fixes the
    document: the base URL of its links comes from the Host when no site_url is set.
    """

    def __init__(self, store: Store, cache: DocumentCache) -> None:
        self.store = store
        self.cache = cache
        self.app: Starlette | None = None  # the app behind, set by create_app

    def remember(
        self, scope: Mapping[str, Any], token: tuple[int, ...], document: Document
    ) -> None:
        """Keep ``document`` as the answer to the request in ``scope`` while the change
        token stays ``token`` (called by the feed route after validating it)."""
        host = scan_headers(scope["headers"])[0]
        self.cache.add((scope["path"], scope["query_string"], host), token, document)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope = ascii_query(scope)
        if (
            scope["type"] == "http"
            and scope["method"] in ("GET", "HEAD")
            and scope["path"].startswith("/feeds/")
            and await self._answer(scope, send)
        ):
            return
        assert self.app is not None
        await self.app(scope, receive, send)

    async def _answer(self, scope: Any, send: Any) -> bool:
        """Answer from memory if possible; False sends the request down the normal path."""
        host, accept, match, since = scan_headers(scope["headers"])
        hit = self.cache.find((scope["path"], scope["query_string"], host))
        if hit is None or hit[0] != self.store.change_token():
            return False
        CACHE_FAST.inc()
        status, headers, body = hit[1].answer(accept, match, since, scope["method"] == "HEAD")
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return True
