"""The HTTP service (Starlette on uvicorn): feeds, HTML pages, the JSON API, health.

Every endpoint is listed in ``ENDPOINTS`` (and in docs/http.md and /openapi.json; tests
keep the three in step):

    GET /feeds/{slug|all}.{xml|atom|json}    a category's feed, or every category merged
    GET /feeds/merge.{xml|atom|json}?c=a,b   any set of categories merged
        ?limit= (50, max 500) &since= (seq or ISO time) &q= &exclude= (regex) &format=
    GET /feeds.opml                          every output feed as OPML 2.0
    GET /                                    the latest items, then every category with its five
    GET /category/{slug}.html?page=N         a category's items, newest first
    GET /item/{id}.html                      one item
    GET /api/items?category=&since=&cursor=&limit=   items in seq order, with a cursor
    GET /api/categories, /api/sources        what exists, and each source's status
    GET /status, /status/{source_id}         the same as HTML, failing first; fetch history
    GET /openapi.json, /healthz, /readyz, /metrics (Prometheus)
    POST /api/sources/{id}/fetch, /api/reload    only with an admin token (bearer auth)

Feeds carry a strong ETag and Last-Modified and answer conditional requests with 304;
a request for an unchanged feed costs one primary-key lookup (its stamp), and on SQLite
none at all (fastpath.py). Validators, 304s, headers and the one document cache live in
httpcache.py. Handlers are plain functions, run on Starlette's thread pool, because the
store is synchronous.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from aggregator import __version__
from aggregator.config.reload import ConfigWatcher, ReloadResult
from aggregator.config.settings import Settings
from aggregator.errors import (
    ItemNotFoundError,
    QueryError,
    SourceNotFoundError,
    StoreError,
    UnknownCategoryError,
)
from aggregator.model import StoredItem
from aggregator.publish.pages import (
    HOME_LATEST_ITEMS,
    Section,
    outlet_names,
    page_item,
    render_category_page,
    render_home,
    render_item_page,
    render_not_found,
)
from aggregator.publish.publisher import FeedRequest, Publisher
from aggregator.publish.query import (
    FeedQuery,
    decode_cursor,
    encode_cursor,
    parse_feed_query,
    parse_format,
    parse_limit,
    parse_since,
)
from aggregator.publish.render import local_time
from aggregator.serve.fastpath import FastFeeds
from aggregator.serve.httpcache import (
    API_CACHE_CONTROL,
    FEED_CACHE_CONTROL,
    ITEM_CACHE_CONTROL,
    PAGE_CACHE_CONTROL,
    Document,
    DocumentCache,
    DocumentResponse,
    make_etag,
)
from aggregator.serve.metrics import RequestMetrics, metrics_response
from aggregator.serve.openapi import openapi_document
from aggregator.serve.opml import feeds_opml_response
from aggregator.serve.status import source_status_page, status_page
from aggregator.store import Store

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # Last-Modified for data without a time
PAGE_SIZE = 50
HOME_ITEMS_PER_CATEGORY = 5
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


def _feed_document(
    publisher: Publisher, request: FeedRequest, key: tuple[object, ...], stamp: int, base: str
) -> Document:
    """The feed rendered now, to be cached under ``key`` (config key first) at ``stamp``;
    Last-Modified is the newest item's time, stable between renders."""
    rendered = publisher.render(request, base=base)
    return Document(
        body=rendered.body,
        content_type=rendered.content_type,
        etag=make_etag(key, stamp),
        last_modified=rendered.updated,
        cache_control=FEED_CACHE_CONTROL,
    )


class App:
    """The web application's state: settings, store, publisher, scheduler liveness."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        scheduler_alive: Callable[[], bool] | None = None,
        watcher: ConfigWatcher | None = None,
    ) -> None:
        self.settings = settings
        self.watcher = watcher
        self.store = store
        self.publisher = Publisher(settings, store)
        self.scheduler_alive = scheduler_alive
        self.cache = DocumentCache(settings.server.max_cache_entries)
        self.fast = FastFeeds(store, self.cache)

    def base(self, request: Request) -> str:
        if self.publisher.site_url:
            return self.publisher.site_url
        return f"{request.url.scheme}://{request.url.netloc}"

    # ------------------------------------------------------------------ feeds

    def feed(self, request: Request) -> Response:
        name: str = request.path_params["name"]
        extension = request.path_params.get("ext")
        try:
            chosen = parse_format(extension, request.query_params)
            query = parse_feed_query(request.query_params)
        except QueryError as e:
            return PlainTextResponse(f"400 Bad Request: {e}\n", status_code=400)
        slugs: tuple[str, ...] | None
        if name == "all":
            slugs, key = None, "all"
        elif name == "merge":
            raw = request.query_params.get("c", "")
            slugs = tuple(dict.fromkeys(s.strip() for s in raw.split(",") if s.strip()))
            if not slugs:
                return PlainTextResponse(
                    "400 Bad Request: merge needs c=slug1,slug2\n", status_code=400
                )
            key = ",".join(slugs)
        else:
            slugs, key = (name,), name
        feed_request = FeedRequest(key=key, slugs=slugs, extension=chosen, query=query)
        base = self.base(request)
        publisher = self.publisher  # one config for the whole request, even across a reload
        cache_key = (publisher.config_key, *feed_request.cache_key(), base)
        token = self.store.change_token()  # read before the stamp: see FastFeeds
        try:
            stamp = publisher.stamp(feed_request)
            document = self.cache.cached(
                cache_key,
                stamp,
                lambda: _feed_document(publisher, feed_request, cache_key, stamp, base),
            )
        except UnknownCategoryError as e:
            return self._unknown_feed(e.missing, base)
        if token is not None:
            self.fast.remember(request.scope, token, document)
        return DocumentResponse(document, request.scope)

    def _unknown_feed(self, missing: Sequence[str], base: str) -> Response:
        lines = [
            f"404 Not Found: no category {', '.join(repr(m) for m in missing)}.",
            "",
            "Categories:",
        ]
        for info in self.store.list_categories():
            lines.append(
                f"  {info.slug:<40} {info.title}  ({info.item_count} items)  "
                f"{base}/feeds/{info.slug}.xml"
            )
        lines.append(f"  {'all':<40} every category  {base}/feeds/all.xml")
        return PlainTextResponse("\n".join(lines) + "\n", status_code=404)

    # ------------------------------------------------------------------ pages

    def _page(
        self, request: Request, key: tuple[object, ...], stamp: int, build: Callable[[], bytes]
    ) -> Response:
        """A page from the cache while its stamp holds, else ``build()``'s; ``key`` starts
        with the config key of the publisher that ``build`` renders with."""

        def document() -> Document:
            return Document(
                body=build(),
                content_type="text/html; charset=utf-8",
                etag=make_etag(key, stamp),
                last_modified=datetime.now(UTC).replace(microsecond=0),
                cache_control=PAGE_CACHE_CONTROL,
            )

        return DocumentResponse(self.cache.cached(key, stamp, document), request.scope)

    def home(self, request: Request) -> Response:
        base = self.base(request)
        publisher = self.publisher
        stamp = self.store.category_stamp(None)

        def build() -> bytes:
            # titles by primary key (list_categories would count every item); a category
            # that was never written to has last_seq 0, one emptied since has no latest
            infos = sorted(publisher.categories().values(), key=lambda c: -c.last_seq)
            sections = []
            for info in infos:
                if info.last_seq == 0:
                    continue
                latest = self.store.list_feed_items((info.slug,), HOME_ITEMS_PER_CATEGORY)
                if not latest:
                    continue
                sections.append(Section(info.slug, info.title, tuple(page_item(i) for i in latest)))
            newest = self.store.list_feed_items(None, HOME_LATEST_ITEMS)
            outlets = outlet_names(infos)
            return render_home(sections, base, latest=[page_item(i, outlets) for i in newest])

        return self._page(request, (publisher.config_key, "home", base), stamp, build)

    def category(self, request: Request) -> Response:
        slug: str = request.path_params["slug"]
        base = self.base(request)
        page_raw = request.query_params.get("page", "1")
        if not page_raw.isdigit() or int(page_raw) < 1:
            return PlainTextResponse(
                "400 Bad Request: page must be a whole number from 1\n", status_code=400
            )
        page = int(page_raw)
        publisher = self.publisher
        infos = publisher.categories()
        if slug not in infos:
            body = render_not_found(f"没有分类 “{slug}”。", list(infos.values()), base)
            return Response(body, status_code=404, media_type="text/html; charset=utf-8")
        stamp = self.store.category_stamp((slug,))

        def build() -> bytes:
            items = self.store.list_feed_items((slug,), PAGE_SIZE + 1, (page - 1) * PAGE_SIZE)
            titles = {s: i.title for s, i in infos.items()}
            views = publisher.views(items[:PAGE_SIZE], titles, {})
            page_request = FeedRequest(slug, (slug,), "html", FeedQuery())
            channel = publisher.channel(page_request, infos, views, base)
            more = len(items) > PAGE_SIZE
            outlets = outlet_names(infos.values())
            return render_category_page(channel, views, page, more, base, outlets=outlets)

        key = (publisher.config_key, "category", slug, page, base)
        return self._page(request, key, stamp, build)

    def item(self, request: Request) -> Response:
        raw: str = request.path_params["item_id"]
        base = self.base(request)
        if not raw.isdigit():
            return PlainTextResponse("404 Not Found\n", status_code=404)
        try:
            stored = self.store.get_item(int(raw))
        except ItemNotFoundError:
            body = render_not_found(f"没有条目 {raw}。", [], base)
            return Response(body, status_code=404, media_type="text/html; charset=utf-8")
        publisher = self.publisher
        infos = publisher.categories(stored.category_slugs)
        titles = {s: c.title for s, c in infos.items()}
        categories = [(slug, titles.get(slug, slug)) for slug in stored.category_slugs]
        # previous/next in its first category's page order; the stamp changes with the item
        # and with any item of its categories (a newer one may arrive beside it)
        newer, older = (
            self.store.find_adjacent_items(stored.category_slugs[0], stored.item_id)
            if stored.category_slugs
            else (None, None)
        )
        beside = [i for i in (newer, older) if i is not None]
        stamp = max(stored.seq, self.store.category_stamp(stored.category_slugs))
        key = (publisher.config_key, "item", stored.item_id, base)
        document = Document(
            body=render_item_page(
                stored,
                categories,
                base,
                outlets=outlet_names(infos.values()),
                newer=newer,
                older=older,
            ),
            content_type="text/html; charset=utf-8",
            etag=make_etag(key, stamp),  # stamp: the item or one beside it changed
            last_modified=max(i.updated_at for i in (stored, *beside)).replace(microsecond=0),
            cache_control=ITEM_CACHE_CONTROL,
        )
        return DocumentResponse(document, request.scope)

    # ------------------------------------------------------------------ API

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
        if category is not None and category not in self.publisher.categories([category]):
            return _error(404, f"no category {category!r} (see /api/categories)")
        rows = self.store.list_items_after(after, limit + 1, category)
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

    def status(self, request: Request) -> Response:
        return status_page(request, self.store, self.base(request))

    def source_status(self, request: Request) -> Response:
        return source_status_page(request, self.store, self.base(request))

    def feeds_opml(self, request: Request) -> Response:
        return feeds_opml_response(request, self.publisher, self.base(request))

    def metrics(self, request: Request) -> Response:
        return metrics_response(request, self.store)

    def openapi(self, request: Request) -> Response:
        return _json_validated(request, openapi_document())

    def healthz(self, request: Request) -> Response:
        answer: dict[str, Any] = {"status": "ok", "version": __version__}
        if self.watcher is not None:
            answer["config"] = self.watcher.status().as_json()
        return _json(answer)

    # ------------------------------------------------------------------ settings

    def apply_settings(self, settings: Settings) -> None:
        """A reloaded config: a new publisher, the cache emptied. Every ETag and cache
        key carries the config, so no reader gets a 304 for, and no request finds, a
        document rendered under the old one."""
        self.settings = settings
        self.publisher = Publisher(settings, self.store)
        self.cache.clear()

    # ------------------------------------------------------------------ admin

    def _authorized(self, request: Request) -> Response | None:
        """None when the request carries the admin token, else the 401 to send."""
        token = self.settings.server.admin_token or ""
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if token and scheme.lower() == "bearer" and hmac.compare_digest(given, token):
            return None
        return JSONResponse(
            {"error": "a valid admin bearer token is required"},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="aggregator"'},
        )

    def admin_fetch(self, request: Request) -> Response:
        refused = self._authorized(request)
        if refused is not None:
            return refused
        source_id: str = request.path_params["source_id"]
        now = datetime.now(UTC)
        try:
            self.store.request_fetch(source_id, now)
        except SourceNotFoundError:
            return _error(404, f"no source {source_id!r}")
        except StoreError as e:
            return _error(503, f"database: {e}")
        return _json({"source": source_id, "due_at": now.isoformat()}, 202)

    def admin_reload(self, request: Request) -> Response:
        refused = self._authorized(request)
        if refused is not None:
            return refused
        assert self.watcher is not None  # the route exists only with a watcher
        result = self.watcher.check(force=True)
        status = 422 if result is ReloadResult.REJECTED else 200
        return _json({"result": result.value, "config": self.watcher.status().as_json()}, status)

    def readyz(self, request: Request) -> Response:
        problems = []
        try:
            self.store.ping()
        except StoreError as e:
            problems.append(f"database: {e}")
        if self.scheduler_alive is not None and not self.scheduler_alive():
            problems.append("scheduler: no dispatch tick recently")
        if problems:
            return _json({"status": "not ready", "problems": problems}, 503)
        return _json({"status": "ready"})


ENDPOINTS: list[tuple[str, str]] = [
    ("/feeds/{name}.{ext}", "feed"),
    ("/feeds/{name}", "feed"),
    ("/", "home"),
    ("/category/{slug}.html", "category"),
    ("/item/{item_id}.html", "item"),
    ("/api/items", "api_items"),
    ("/api/categories", "api_categories"),
    ("/api/sources", "api_sources"),
    ("/feeds.opml", "feeds_opml"),
    ("/status", "status"),
    ("/status/{source_id}", "source_status"),
    ("/metrics", "metrics"),
    ("/openapi.json", "openapi"),
    ("/healthz", "healthz"),
    ("/readyz", "readyz"),
]

# Mutating endpoints: routed only when an admin token is configured (and, for reload, the
# process follows a config file); each needs ``Authorization: Bearer <token>``.
ADMIN_ENDPOINTS: list[tuple[str, str]] = [
    ("/api/sources/{source_id}/fetch", "admin_fetch"),
    ("/api/reload", "admin_reload"),
]


def create_app(
    settings: Settings,
    store: Store,
    scheduler_alive: Callable[[], bool] | None = None,
    watcher: ConfigWatcher | None = None,
) -> Starlette:
    """The ASGI app. With a ``watcher``, a reloaded config reaches the app, ``/healthz``
    reports the config's state, and ``POST /api/reload`` exists (given a token)."""
    app_state = App(settings, store, scheduler_alive, watcher)
    routes = [
        Route(path, getattr(app_state, handler), methods=["GET", "HEAD"])
        for path, handler in ENDPOINTS
    ]
    if settings.server.admin_token:
        routes += [
            Route(path, getattr(app_state, handler), methods=["POST"])
            for path, handler in ADMIN_ENDPOINTS
            if handler != "admin_reload" or watcher is not None
        ]
    if watcher is not None:
        watcher.subscribe(app_state.apply_settings)
    app = Starlette(routes=routes)
    app.state.aggregator = app_state
    app_state.fast.app = app
    # ASGI layers in front of Starlette: request metrics, then the fast path
    return RequestMetrics(app_state.fast, app.routes, app.state)  # type: ignore[return-value]
