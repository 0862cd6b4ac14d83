"""The JSON API's read endpoints (``/api/items``, ``/api/categories``, ``/api/sources``,
``/openapi.json``) as a part of the app (``app.App`` takes them in), and the JSON
answers every endpoint shares: validated (strong ETag, 304) or plain, and errors.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from aggregator.errors import QueryError
from aggregator.finance.tickers import normalise_code
from aggregator.model import StoredItem
from aggregator.publish.publisher import Publisher
from aggregator.publish.query import decode_cursor, encode_cursor, parse_limit, parse_since
from aggregator.publish.render import local_time
from aggregator.serve.availability import DatabaseWatch
from aggregator.serve.httpcache import API_CACHE_CONTROL, Document, DocumentResponse
from aggregator.serve.openapi import openapi_document
from aggregator.slug import is_valid_slug
from aggregator.store import Store

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # Last-Modified for data without a time
API_DEFAULT_LIMIT = 100


def _json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status, media_type="application/json; charset=utf-8")


def _json_validated(request: Request, data: Any, last_modified: datetime | None = None) -> Response:
    """A 200 JSON answer with a strong ETag over its bytes (and Last-Modified when the
    data has a time), or 304 when the client's validator matches."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    document = Document(
        body=body,
        content_type="application/json; charset=utf-8",
        etag='"' + hashlib.sha256(body).hexdigest()[:32] + '"',
        last_modified=(last_modified or EPOCH).replace(microsecond=0),
        cache_control=API_CACHE_CONTROL,
    )
    return DocumentResponse(document, request.scope)


def _error(status: int, message: str) -> JSONResponse:
    return _json({"error": message}, status)


class ApiRoutes:
    """The JSON API handlers; the app supplies the store, publisher and database watch."""

    store: Store
    publisher: Publisher
    database: DatabaseWatch

    def base(self, request: Request) -> str:
        raise NotImplementedError  # the app's

    def _item_json(self, item: StoredItem, base: str) -> dict[str, Any]:
        return {
            "id": item.stable_id,
            "seq": item.seq,
            "is_update": item.is_update,
            "title": item.title,
            "url": item.link,
            "page_url": f"{base}/item/{item.item_id}.html",
            "published": local_time(item).isoformat(),
            "updated": item.updated_at.isoformat(),
            "summary": item.summary,
            "content_html": item.content,
            "author": item.author,
            "categories": list(item.category_slugs),
            "source": item.source_id,
            "tickers": list(item.tickers),
        }

    def api_items(self, request: Request) -> Response:
        params = request.query_params
        try:
            limit = parse_limit(params.get("limit"), API_DEFAULT_LIMIT)
            cursor = params.get("cursor")
            if cursor:
                after = decode_cursor(cursor)
            else:
                since_seq, since_time = parse_since(params.get("since"))
                if since_time is not None:
                    raise QueryError("since must be a sequence number here (use the cursor)")
                after = since_seq or 0
        except QueryError as e:
            return _error(400, str(e))
        category = params.get("category") or None
        if category is not None and (
            not is_valid_slug(category) or category not in self.publisher.categories([category])
        ):
            return _error(404, f"no category {category!r} (see /api/categories)")
        ticker = None
        if params.get("ticker"):
            ticker = normalise_code(params["ticker"])
            if ticker is None:
                return _error(400, f"not a ticker code: {params['ticker']!r} (e.g. 600519.SH)")
        rows = self.store.list_items_after(after, limit + 1, category, ticker)
        self.database.answered()
        page, has_more = rows[:limit], len(rows) > limit
        last = page[-1].seq if page else after
        base = self.base(request)
        newest = max((item.updated_at for item in page), default=None)
        return _json_validated(
            request,
            {
                "items": [self._item_json(item, base) for item in page],
                "next_cursor": encode_cursor(last),
                "has_more": has_more,
            },
            newest,
        )

    def api_categories(self, request: Request) -> Response:
        base = self.base(request)
        return _json_validated(
            request,
            [
                {
                    "slug": c.slug,
                    "title": c.title,
                    "description": c.description,
                    "name": c.name,
                    "items": c.item_count,
                    "page_url": f"{base}/category/{c.slug}.html",
                    "feeds": {
                        ext: f"{base}/feeds/{c.slug}.{ext}" for ext in ("xml", "atom", "json")
                    },
                }
                for c in self.store.list_categories()
            ],
        )

    def api_sources(self, request: Request) -> Response:
        return _json_validated(request, [s.as_json() for s in self.store.list_source_status()])

    def openapi(self, request: Request) -> Response:
        return _json_validated(request, openapi_document())
