"""The HTTP service (Starlette on uvicorn): feeds, HTML pages, the JSON API, health.

Every endpoint is listed in ``ENDPOINTS`` (and in docs/http.md and /openapi.json; tests
keep the three in step):

    GET /feeds/{slug|all}.{xml|atom|json}    a category's feed, or every category merged
    GET /feeds/merge.{xml|atom|json}?c=a,b   any set of categories merged
        ?limit= (50, max 500) &since= (seq or ISO time) &q= &exclude= (regex) &format=
    GET /                                    every category with its latest five items
    GET /category/{slug}.html?page=N         a category's items, newest first
    GET /item/{id}.html                      one item
    GET /api/items?category=&since=&cursor=&limit=   items in seq order, with a cursor
    GET /api/categories, /api/sources        what exists, and each source's status
    GET /openapi.json, /healthz, /readyz
    POST /api/sources/{id}/fetch, /api/reload    only with an admin token (bearer auth)

Feeds carry a strong ETag and Last-Modified and answer conditional requests with 304;
a request for an unchanged feed costs one primary-key lookup (publish.py). Handlers are
plain functions, run on Starlette's thread pool, because the store is synchronous.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from aggregator import __version__
from aggregator.config.reload import ConfigWatcher, ReloadResult
from aggregator.config.settings import Settings
from aggregator.errors import ItemNotFoundError, SourceNotFoundError, StoreError
from aggregator.model import StoredItem
from aggregator.publish.pages import (
    Section,
    outlet_names,
    page_item,
    render_category_page,
    render_home,
    render_item_page,
    render_not_found,
)
from aggregator.publish.publisher import (
    GZIP_MIN_BYTES,
    Document,
    FeedRequest,
    Publisher,
    UnknownCategoryError,
)
from aggregator.publish.query import (
    QueryError,
    decode_cursor,
    encode_cursor,
    parse_feed_query,
    parse_format,
    parse_limit,
    parse_since,
)
from aggregator.publish.render import ChannelView, local_time
from aggregator.store import Store

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # Last-Modified for data without a time
PAGE_SIZE = 50
HOME_ITEMS_PER_CATEGORY = 5
HOME_LATEST_ITEMS = 20  # across every category, at the top of the home page
ITEM_SIBLINGS = 100  # an item page links the items beside it among its category's newest
FEED_CACHE_CONTROL = "public, max-age=60"
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
        stamp=0,
    )
    return _send(request, document, cache_control="no-cache")


def _error(status: int, message: str) -> JSONResponse:
    return _json({"error": message}, status)


def _etags(header: str | None) -> set[str]:
    if not header:
        return set()
    return {part.strip().removeprefix("W/") for part in header.split(",") if part.strip()}


def _not_modified(headers: Mapping[str, str], document: Document) -> bool:
    tags = _etags(headers.get("if-none-match"))
    if tags:
        return "*" in tags or document.etag in tags or document.gzip_etag in tags
    since = headers.get("if-modified-since")
    if since:
        try:
            moment = parsedate_to_datetime(since)
        except (TypeError, ValueError, IndexError):
            return False
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return document.last_modified.replace(microsecond=0) <= moment
    return False


def respond(
    headers: Mapping[str, str], document: Document, cache_control: str = FEED_CACHE_CONTROL
) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body for a cached document and the request's headers: gzip
    when accepted (with its own strong ETag), 304 when a validator matches."""
    wants_gzip = "gzip" in headers.get("accept-encoding", "").lower()
    use_gzip = wants_gzip and len(document.body) >= GZIP_MIN_BYTES
    out = {
        "etag": document.gzip_etag if use_gzip else document.etag,
        "last-modified": document.last_modified_http,
        "cache-control": cache_control,
        "vary": "Accept-Encoding",
    }
    if _not_modified(headers, document):
        return 304, out, b""
    body = document.gzipped() if use_gzip else document.body
    if use_gzip:
        out["content-encoding"] = "gzip"
    out["content-type"] = document.content_type
    return 200, out, body


def _send(
    request: Request, document: Document, cache_control: str = FEED_CACHE_CONTROL
) -> Response:
    status, headers, body = respond(request.headers, document, cache_control)
    return Response(body, status_code=status, headers=headers)


class FastFeeds:
    """An ASGI layer that answers a repeated feed request from memory when nothing has
    been committed anywhere since that document was validated.

    The check is the store's change token (on SQLite, a stat of the database and its WAL:
    any commit by any process changes it), read *before* the stamp query that validated
    the document; if a write lands in between, the token differs on the next request and
    the normal path revalidates. So a cached answer is never older than the last commit
    the token saw, and without a token (PostgreSQL) every request takes the normal path:
    one primary-key query.
    """

    MAX_ENTRIES = 1024

    def __init__(self, store: Store) -> None:
        self.store = store
        self.app: Starlette | None = None
        self.entries: dict[tuple[str, bytes, str], tuple[tuple[int, ...], Document]] = {}

    @staticmethod
    def key(scope: Mapping[str, Any]) -> tuple[str, bytes, str]:
        host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
        return scope["path"], scope["query_string"], host

    def remember(
        self, scope: Mapping[str, Any], token: tuple[int, ...], document: Document
    ) -> None:
        if len(self.entries) >= self.MAX_ENTRIES:
            self.entries.clear()
        self.entries[self.key(scope)] = (token, document)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
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
        """Answer from memory if possible; False sends the request down the normal path.
        Works on the raw header bytes: this is the hot path of a polled feed."""
        host = accept = match = b""
        for name, value in scope["headers"]:
            if name == b"host":
                host = value
            elif name == b"accept-encoding":
                accept = value
            elif name == b"if-none-match":
                match = value
            elif name == b"if-modified-since":
                return False  # rare; the normal path compares dates
        hit = self.entries.get((scope["path"], scope["query_string"], host.decode("latin-1")))
        if hit is None or hit[0] != self.store.change_token():
            return False
        document = hit[1]
        use_gzip = b"gzip" in accept.lower() and len(document.body) >= GZIP_MIN_BYTES
        status = 200
        if match:
            tags = _etags(match.decode("latin-1"))
            if "*" in tags or document.etag in tags or document.gzip_etag in tags:
                status = 304
        head = scope["method"] == "HEAD"
        headers = document.wire_headers(use_gzip, status, head, FEED_CACHE_CONTROL)
        body = b"" if status == 304 or head else (document.gzipped() if use_gzip else document.body)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return True


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
        self._html: dict[tuple[object, ...], Document] = {}
        self.fast = FastFeeds(store)

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
        token = self.store.change_token()  # read before the stamp: see FastFeeds
        try:
            stamp = self.publisher.stamp(feed_request)
            document = self.publisher.render(feed_request, stamp, base)
        except UnknownCategoryError as e:
            return self._unknown_feed(e.missing, base)
        if token is not None:
            self.fast.remember(request.scope, token, document)
        return _send(request, document)

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
        document = self._html.get(key)
        if document is None or document.stamp != stamp:
            body = build()
            document = Document(
                body=body,
                content_type="text/html; charset=utf-8",
                etag=self.publisher.etag(key, stamp),
                last_modified=datetime.now(UTC).replace(microsecond=0),
                stamp=stamp,
            )
            if len(self._html) > 256:
                self._html.clear()
            self._html[key] = document
        return _send(request, document, cache_control="public, max-age=30")

    def home(self, request: Request) -> Response:
        base = self.base(request)
        stamp = self.store.category_stamp(None)

        def build() -> bytes:
            # titles by primary key (list_categories would count every item); a category
            # that was never written to has last_seq 0, one emptied since has no latest
            infos = sorted(self.publisher.categories().values(), key=lambda c: -c.last_seq)
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

        return self._page(request, ("home", base), stamp, build)

    def category(self, request: Request) -> Response:
        slug: str = request.path_params["slug"]
        base = self.base(request)
        page_raw = request.query_params.get("page", "1")
        if not page_raw.isdigit() or int(page_raw) < 1:
            return PlainTextResponse(
                "400 Bad Request: page must be a whole number from 1\n", status_code=400
            )
        page = int(page_raw)
        infos = self.publisher.categories()
        if slug not in infos:
            body = render_not_found(f"没有分类 “{slug}”。", list(infos.values()), base)
            return Response(body, status_code=404, media_type="text/html; charset=utf-8")
        info = infos[slug]
        stamp = self.store.category_stamp((slug,))

        def build() -> bytes:
            items = self.store.list_feed_items((slug,), PAGE_SIZE + 1, (page - 1) * PAGE_SIZE)
            titles = {s: i.title for s, i in infos.items()}
            views = self.publisher.views(items[:PAGE_SIZE], titles, {})
            channel = ChannelView(
                key=slug,
                title=info.title,
                description=info.description,
                self_url=f"{base}/category/{slug}.html",
                html_url=f"{base}/category/{slug}.html",
                feed_url_base=f"{base}/feeds/{slug}",
                site_url=base,
                language="zh-cn",
                ttl_minutes=self.publisher.ttl_minutes((slug,)),
                updated=datetime.now(UTC),
            )
            more = len(items) > PAGE_SIZE
            outlets = outlet_names(infos.values())
            return render_category_page(channel, views, page, more, base, outlets=outlets)

        return self._page(request, ("category", slug, page, base), stamp, build)

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
        infos = self.publisher.categories(stored.category_slugs)
        titles = {s: c.title for s, c in infos.items()}
        categories = [(slug, titles.get(slug, slug)) for slug in stored.category_slugs]
        # previous/next among the newest of its first category (no store read finds the
        # items beside one at any depth yet); the stamp changes with the item and with them
        siblings = self.store.list_feed_items(stored.category_slugs[:1], ITEM_SIBLINGS)
        stamp = max(stored.seq, self.store.category_stamp(stored.category_slugs))
        document = Document(
            body=render_item_page(
                stored, categories, base, outlets=outlet_names(infos.values()), siblings=siblings
            ),
            content_type="text/html; charset=utf-8",
            etag=self.publisher.etag(("item", stored.item_id, base), stamp),
            last_modified=max(i.updated_at for i in (stored, *siblings)).replace(microsecond=0),
            stamp=stamp,
        )
        return _send(request, document, cache_control="public, max-age=60")

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

    def openapi(self, request: Request) -> Response:
        return _json_validated(request, openapi_document())

    def healthz(self, request: Request) -> Response:
        answer: dict[str, Any] = {"status": "ok", "version": __version__}
        if self.watcher is not None:
            answer["config"] = self.watcher.status().as_json()
        return _json(answer)

    # ------------------------------------------------------------------ settings

    def apply_settings(self, settings: Settings) -> None:
        """A reloaded config: new publisher, caches dropped (every ETag carries the
        config, so no reader gets a 304 for a document rendered under the old one)."""
        self.settings = settings
        self.publisher = Publisher(settings, self.store)
        self._html.clear()
        self.fast.entries.clear()

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
    return app_state.fast  # type: ignore[return-value]  # an ASGI app in front of Starlette


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 description of the service (kept in step with ENDPOINTS by a test)."""
    text = {"content": {"text/plain": {"schema": {"type": "string"}}}}
    json_any = {"content": {"application/json": {"schema": {"type": "object"}}}}
    json_list = {
        "content": {"application/json": {"schema": {"type": "array", "items": {"type": "object"}}}}
    }

    def param(
        name: str,
        where: str,
        description: str,
        required: bool = False,
        schema: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return {
            "name": name,
            "in": where,
            "required": required or where == "path",
            "description": description,
            "schema": schema or {"type": "string"},
        }

    feed_params = [
        param(
            "limit",
            "query",
            "How many items (default 50, at most 500).",
            schema={"type": "integer", "minimum": 1},
        ),
        param(
            "since",
            "query",
            "Only items with seq above this number, or updated after this ISO 8601 time.",
        ),
        param("q", "query", "Keep items whose title or text matches this regex."),
        param("exclude", "query", "Drop items whose title or text matches this regex."),
        param("format", "query", "xml, atom or json when the path has no extension."),
    ]
    feed_responses = {
        "200": {
            "description": "The feed.",
            "content": {
                "application/rss+xml": {"schema": {"type": "string"}},
                "application/atom+xml": {"schema": {"type": "string"}},
                "application/feed+json": {"schema": {"type": "object"}},
            },
        },
        "304": {"description": "Not modified since the validator sent."},
        "400": {"description": "A bad parameter.", **text},
        "404": {"description": "No such category; the body lists those that exist.", **text},
    }
    html = {"content": {"text/html": {"schema": {"type": "string"}}}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "aggregator",
            "version": __version__,
            "description": "Feeds, pages and a JSON API over the aggregated items.",
        },
        "paths": {
            "/feeds/{name}.{ext}": {
                "get": {
                    "summary": "A category's feed ('all' for every category; 'merge' with c=).",
                    "parameters": [
                        param("name", "path", "A category slug, 'all' or 'merge'."),
                        param(
                            "ext",
                            "path",
                            "xml (RSS 2.0), atom or json (JSON Feed 1.1).",
                            schema={"type": "string", "enum": ["xml", "atom", "json"]},
                        ),
                        param("c", "query", "For merge: comma-separated category slugs."),
                        *feed_params,
                    ],
                    "responses": feed_responses,
                }
            },
            "/feeds/{name}": {
                "get": {
                    "summary": "A feed, its format from the format parameter (default xml).",
                    "parameters": [
                        param("name", "path", "A category slug, 'all' or 'merge'."),
                        param("c", "query", "For merge: category slugs."),
                        *feed_params,
                    ],
                    "responses": feed_responses,
                }
            },
            "/": {
                "get": {
                    "summary": "Every category with its latest five items.",
                    "responses": {"200": {"description": "The home page.", **html}},
                }
            },
            "/category/{slug}.html": {
                "get": {
                    "summary": "A category's items, newest first, 50 a page.",
                    "parameters": [
                        param("slug", "path", "The category slug."),
                        param(
                            "page",
                            "query",
                            "Page number from 1.",
                            schema={"type": "integer", "minimum": 1},
                        ),
                    ],
                    "responses": {
                        "200": {"description": "The page.", **html},
                        "404": {"description": "No such category.", **html},
                    },
                }
            },
            "/item/{item_id}.html": {
                "get": {
                    "summary": "One item.",
                    "parameters": [
                        param("item_id", "path", "The item's number.", schema={"type": "integer"})
                    ],
                    "responses": {
                        "200": {"description": "The page.", **html},
                        "404": {"description": "No such item.", **html},
                    },
                }
            },
            "/api/items": {
                "get": {
                    "summary": "Items in commit order, paged by an opaque cursor: a consumer "
                    "paging while items arrive misses none and sees each once; an "
                    "item that changed appears again with is_update true.",
                    "parameters": [
                        param("category", "query", "Only this category."),
                        param(
                            "since",
                            "query",
                            "Start after this seq (first page only).",
                            schema={"type": "integer"},
                        ),
                        param("cursor", "query", "next_cursor from the previous page."),
                        param(
                            "limit",
                            "query",
                            "Items per page (default 100, at most 500).",
                            schema={"type": "integer", "minimum": 1},
                        ),
                    ],
                    "responses": {
                        "200": {"description": "A page of items.", **json_any},
                        "400": {"description": "A bad parameter.", **json_any},
                        "404": {"description": "No such category.", **json_any},
                    },
                }
            },
            "/api/categories": {
                "get": {
                    "summary": "Every category with its feeds.",
                    "responses": {"200": {"description": "Categories.", **json_list}},
                }
            },
            "/api/sources": {
                "get": {
                    "summary": "Each source's fetch status.",
                    "responses": {"200": {"description": "Sources.", **json_list}},
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document.",
                    "responses": {"200": {"description": "OpenAPI.", **json_any}},
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness: the process answers.",
                    "responses": {"200": {"description": "Alive.", **json_any}},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Readiness: database reachable, scheduler alive.",
                    "responses": {
                        "200": {"description": "Ready.", **json_any},
                        "503": {"description": "Not ready; problems listed.", **json_any},
                    },
                }
            },
            "/api/sources/{source_id}/fetch": {
                "post": {
                    "summary": "Make a source due now (and un-retire it); any fetching "
                    "process picks it up within a second. Exists only with an admin token.",
                    "security": [{"adminToken": []}],
                    "parameters": [param("source_id", "path", "The source's id.")],
                    "responses": {
                        "202": {"description": "Due now.", **json_any},
                        "401": {"description": "No or wrong bearer token.", **json_any},
                        "404": {"description": "No such source.", **json_any},
                    },
                }
            },
            "/api/reload": {
                "post": {
                    "summary": "Read the config file again now. Invalid: the last good "
                    "config stays and the problems are listed. Exists only with an admin "
                    "token.",
                    "security": [{"adminToken": []}],
                    "responses": {
                        "200": {"description": "Applied or unchanged.", **json_any},
                        "401": {"description": "No or wrong bearer token.", **json_any},
                        "422": {"description": "Invalid; nothing changed.", **json_any},
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}},
        },
    }
