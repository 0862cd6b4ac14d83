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
store is synchronous. When the database does not answer, a feed or page rendered before
is served stale and anything else is a 503 (availability.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from aggregator import __version__
from aggregator.config.reload import ConfigWatcher
from aggregator.config.settings import Settings
from aggregator.errors import (
    FilterBudgetError,
    ItemNotFoundError,
    PageNotFoundError,
    QueryError,
    StoreError,
    UnknownCategoryError,
)
from aggregator.finance.tickers import normalise_code
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
    MAX_INT64,
    FeedQuery,
    FilterBudget,
    parse_feed_query,
    parse_format,
    whole_number,
)
from aggregator.serve.admin import fetch_now, refused, reload_now
from aggregator.serve.api import ApiRoutes, _json
from aggregator.serve.availability import DatabaseWatch, unavailable
from aggregator.serve.fastpath import FastFeeds
from aggregator.serve.httpcache import (
    FEED_CACHE_CONTROL,
    ITEM_CACHE_CONTROL,
    PAGE_CACHE_CONTROL,
    Document,
    DocumentCache,
    DocumentResponse,
    make_etag,
    page_response,
)
from aggregator.serve.metrics import RequestMetrics, metrics_response
from aggregator.serve.opml import feeds_opml_response
from aggregator.serve.status import source_status_page, status_page
from aggregator.slug import is_valid_slug
from aggregator.store import Store

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # Last-Modified for data without a time
PAGE_SIZE = 50
LAST_PAGE = MAX_INT64 // PAGE_SIZE  # no category holds more pages: the offset is a BIGINT
HOME_ITEMS_PER_CATEGORY = 5
API_DEFAULT_LIMIT = 100
FILTER_RETRY_AFTER_SECONDS = 30  # a filtered feed that ran out of time: not at once again


async def _until_disconnected(
    request: Request, budget: FilterBudget, work: Callable[[], Response]
) -> Response:
    """``work()`` on the thread pool while the connection is watched: when the client
    disconnects, ``budget`` is cancelled and the work stops at its next check instead
    of running on for nobody (issue 13: a filter ran on after a 120 s client timeout)."""

    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass  # the (empty) body of a GET
        budget.cancel()

    answer: list[Response] = []
    failure: list[Exception] = []
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(watch)
        try:
            answer.append(await run_in_threadpool(work))
        except Exception as e:  # raised as itself below, not inside an ExceptionGroup
            failure.append(e)
        finally:
            tasks.cancel_scope.cancel()
    if failure:
        raise failure[0]
    return answer[0]


def _feed_document(
    publisher: Publisher,
    request: FeedRequest,
    key: tuple[object, ...],
    stamp: int,
    base: str,
    budget: FilterBudget | None,
) -> Document:
    """The feed rendered now, to be cached under ``key`` (config key first) at ``stamp``;
    Last-Modified is the newest item's time, stable between renders."""
    rendered = publisher.render(request, base=base, budget=budget)
    return Document(
        body=rendered.body,
        content_type=rendered.content_type,
        etag=make_etag(key, stamp),
        last_modified=rendered.updated,
        cache_control=FEED_CACHE_CONTROL,
    )


class App(ApiRoutes):
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
        self.database = DatabaseWatch()

    def base(self, request: Request) -> str:
        if self.publisher.site_url:
            return self.publisher.site_url
        return f"{request.url.scheme}://{request.url.netloc}"

    def _document(
        self,
        key: tuple[object, ...],
        read_stamp: Callable[[], int],
        build: Callable[[int], Document],
    ) -> tuple[Document, bool]:
        """The document under ``key`` valid at the stamp ``read_stamp()`` gives, from the
        cache or ``build(stamp)``, and False; or, when the database does not answer, the
        last one rendered under ``key`` and True (stale). Raises StoreError when there
        is none (availability.py)."""
        try:
            stamp = read_stamp()
            document = self.cache.cached(key, stamp, lambda: build(stamp))
        except StoreError as e:
            last = self.cache.find(key)
            if last is None:
                raise
            self.database.failed(e, stale=True)
            return last[1], True
        self.database.answered()
        return document, False

    def database_failed(self, request: Request, error: Exception) -> Response:
        """Starlette's handler of a StoreError no route caught: the database is away."""
        assert isinstance(error, StoreError)
        self.database.failed(error, stale=False)
        return unavailable(request)

    # ------------------------------------------------------------------ feeds

    async def feed(self, request: Request) -> Response:
        """A feed, rendered on the thread pool. A filtered one (q/exclude) gets a
        FilterBudget, cancelled when its client disconnects."""
        params = request.query_params
        if not (params.get("q") or params.get("exclude")):
            return await run_in_threadpool(self._feed, request, None)
        budget = FilterBudget()
        return await _until_disconnected(request, budget, partial(self._feed, request, budget))

    def _feed(self, request: Request, budget: FilterBudget | None) -> Response:
        name: str = request.path_params.get("name", "")
        extension = request.path_params.get("ext")
        try:
            chosen = parse_format(extension, request.query_params)
            query = parse_feed_query(request.query_params)
        except QueryError as e:
            return PlainTextResponse(f"400 Bad Request: {e}\n", status_code=400)
        slugs: tuple[str, ...] | None
        ticker = None
        if "code" in request.path_params:  # /feeds/ticker/600519.SH.xml: one security
            ticker = normalise_code(request.path_params["code"])
            if ticker is None:
                return PlainTextResponse("404 Not Found: not a ticker code\n", status_code=404)
            slugs, key = None, f"ticker:{ticker}"
        elif name == "all":
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
        base = self.base(request)
        misshapen = [slug for slug in slugs or () if not is_valid_slug(slug)]
        if misshapen:  # names no category, and a NUL would not even reach PostgreSQL
            return self._unknown_feed(misshapen, base)
        feed_request = FeedRequest(key, slugs, chosen, query, ticker)
        publisher = self.publisher  # one config for the whole request, even across a reload
        cache_key = (publisher.config_key, *feed_request.cache_key(), base)
        token = self.store.change_token()  # read before the stamp: see FastFeeds
        try:
            document, stale = self._document(
                cache_key,
                lambda: publisher.stamp(feed_request),
                lambda stamp: _feed_document(
                    publisher, feed_request, cache_key, stamp, base, budget
                ),
            )
        except UnknownCategoryError as e:
            return self._unknown_feed(e.missing, base)
        except FilterBudgetError as e:
            return PlainTextResponse(
                f"503 Service Unavailable: {e}\n",
                status_code=503,
                headers={"Retry-After": str(FILTER_RETRY_AFTER_SECONDS)},
            )
        if token is not None and not stale:
            self.fast.remember(request.scope, token, document)
        return DocumentResponse(document, request.scope, stale)

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
        self,
        request: Request,
        key: tuple[object, ...],
        read_stamp: Callable[[], int],
        build: Callable[[], bytes],
    ) -> Response:
        """A page from the cache while its stamp holds, else ``build()``'s; ``key`` starts
        with the config key of the publisher that ``build`` renders with."""

        def document(stamp: int) -> Document:
            return Document(
                body=build(),
                content_type="text/html; charset=utf-8",
                etag=make_etag(key, stamp),
                last_modified=datetime.now(UTC).replace(microsecond=0),
                cache_control=PAGE_CACHE_CONTROL,
            )

        found, stale = self._document(key, read_stamp, document)
        return DocumentResponse(found, request.scope, stale)

    def home(self, request: Request) -> Response:
        base = self.base(request)
        publisher = self.publisher

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

        read_stamp = partial(self.store.category_stamp, None)
        return self._page(request, (publisher.config_key, "home", base), read_stamp, build)

    def category(self, request: Request) -> Response:
        slug: str = request.path_params["slug"]
        base = self.base(request)
        page_raw = request.query_params.get("page", "1")
        if not (page_raw.isascii() and page_raw.isdigit()) or whole_number(page_raw) == 0:
            return PlainTextResponse(
                "400 Bad Request: page must be a whole number from 1\n", status_code=400
            )
        page = whole_number(page_raw, LAST_PAGE) or 0  # 0: past the last page of any category
        publisher = self.publisher

        def build() -> bytes:
            infos = publisher.categories()
            if slug not in infos:
                raise UnknownCategoryError([slug])
            if page == 0:
                raise PageNotFoundError(f"{slug} has no page {page_raw}")
            items = self.store.list_feed_items((slug,), PAGE_SIZE + 1, (page - 1) * PAGE_SIZE)
            if page > 1 and not items:  # page 1 of an empty category says it is empty
                raise PageNotFoundError(f"{slug} has no page {page}")
            titles = {s: i.title for s, i in infos.items()}
            views = publisher.views(items[:PAGE_SIZE], titles, {})
            page_request = FeedRequest(slug, (slug,), "html", FeedQuery())
            channel = publisher.channel(page_request, infos, views, base)
            more = len(items) > PAGE_SIZE
            outlets = outlet_names(infos.values())
            return render_category_page(channel, views, page, more, base, outlets=outlets)

        key = (publisher.config_key, "category", slug, page, base)
        read_stamp = partial(self.store.category_stamp, (slug,))
        try:
            if not is_valid_slug(slug):  # names none, and a NUL would not reach PostgreSQL
                raise UnknownCategoryError([slug])
            return self._page(request, key, read_stamp, build)
        except UnknownCategoryError:
            infos = publisher.categories()
            body = render_not_found(f"没有分类 “{slug}”。", list(infos.values()), base)
        except PageNotFoundError:
            info = publisher.categories([slug]).get(slug)
            body = render_not_found(f"“{info.title if info else slug}” 没有这一页。", [], base)
        return page_response(body, 404)

    def ticker_page(self, request: Request) -> Response:
        """The newest items naming one security, with its feeds (no pagination)."""
        ticker = normalise_code(request.path_params["code"])
        if ticker is None:
            return PlainTextResponse("404 Not Found: not a ticker code\n", status_code=404)
        base, publisher = self.base(request), self.publisher

        def build() -> bytes:
            items = self.store.list_feed_items(None, PAGE_SIZE, ticker=ticker)
            infos = publisher.categories()
            views = publisher.views(items, {s: i.title for s, i in infos.items()}, {})
            page_request = FeedRequest(f"ticker:{ticker}", None, "html", FeedQuery(), ticker)
            channel = publisher.channel(page_request, infos, views, base)
            return render_category_page(channel, views, 1, False, base)

        read_stamp = partial(self.store.category_stamp, None)
        key = (publisher.config_key, "ticker", ticker, base)
        return self._page(request, key, read_stamp, build)

    def item(self, request: Request) -> Response:
        raw: str = request.path_params["item_id"]
        base = self.base(request)
        item_id = whole_number(raw)
        if item_id is None:
            return PlainTextResponse("404 Not Found\n", status_code=404)
        try:
            stored = self.store.get_item(item_id)
        except ItemNotFoundError:
            body = render_not_found(f"没有条目 {raw}。", [], base)
            return page_response(body, 404)
        publisher = self.publisher
        infos = publisher.categories(stored.category_slugs)
        titles = {s: c.title for s, c in infos.items()}
        self.database.answered()
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

    def status(self, request: Request) -> Response:
        return status_page(request, self.store, self.base(request))

    def source_status(self, request: Request) -> Response:
        return source_status_page(request, self.store, self.base(request))

    def feeds_opml(self, request: Request) -> Response:
        return feeds_opml_response(request, self.publisher, self.base(request))

    def metrics(self, request: Request) -> Response:
        return metrics_response(request, self.store)

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

    def admin_fetch(self, request: Request) -> Response:
        return refused(request, self.settings.server.admin_token) or fetch_now(request, self.store)

    def admin_reload(self, request: Request) -> Response:
        assert self.watcher is not None  # the route exists only with a watcher
        return refused(request, self.settings.server.admin_token) or reload_now(self.watcher)

    def readyz(self, request: Request) -> Response:
        problems = []
        try:
            self.store.ping()
            self.database.answered()
        except StoreError as e:
            self.database.failed(e, stale=False)
            problems.append(f"database: {e}")
        if self.scheduler_alive is not None and not self.scheduler_alive():
            problems.append("scheduler: no dispatch tick recently")
        if problems:
            return _json({"status": "not ready", "problems": problems}, 503)
        return _json({"status": "ready"})


ENDPOINTS: list[tuple[str, str]] = [
    ("/feeds/ticker/{code}.{ext}", "feed"),
    ("/feeds/{name}.{ext}", "feed"),
    ("/feeds/{name}", "feed"),
    ("/", "home"),
    ("/category/{slug}.html", "category"),
    ("/item/{item_id}.html", "item"),
    ("/ticker/{code}.html", "ticker_page"),
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
    app = Starlette(routes=routes, exception_handlers={StoreError: app_state.database_failed})
    app.state.aggregator = app_state
    app_state.fast.app = app
    # ASGI layers in front of Starlette: request metrics, then the fast path
    return RequestMetrics(app_state.fast, app.routes, app.state)  # type: ignore[return-value]
