"""Building output documents from the store: which items a feed holds, its channel and
its freshness stamp, rendered to bytes. Shared by the web app and the exporter; no HTTP.

The stamp of a set of categories is the highest seq written into them, one primary-key
lookup. The server reads it before rendering and keeps the rendered bytes with it
(serve/httpcache.py), reusing them while the stamp holds; every process reads the stamp
from the database, so replicas stay correct when another process wrote the items.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from aggregator.config.settings import Settings
from aggregator.errors import UnknownCategoryError
from aggregator.model import CategoryInfo, SourceInfo, StoredItem
from aggregator.publish.formats import get_renderer
from aggregator.publish.query import FeedQuery, FilterBudget, filter_items
from aggregator.publish.render import (
    ChannelView,
    ItemView,
    latest_update,
)
from aggregator.store import Store

EMPTY_FEED_UPDATED = datetime(2000, 1, 1, tzinfo=UTC)
FILTER_SCAN_LIMIT = 5000  # items examined at most to fill a filtered feed


@dataclass(frozen=True, slots=True)
class FeedRequest:
    """What a feed is: its key ('all', a slug, or 'a,b'), categories and format."""

    key: str
    slugs: tuple[str, ...] | None  # None: every category
    extension: str
    query: FeedQuery
    ticker: str | None = None  # a security's feed (600519.SH): its items in every category

    def cache_key(self) -> tuple[object, ...]:
        return (self.key, self.extension, *self.query.cache_key(), self.ticker)


@dataclass(frozen=True, slots=True)
class Rendered:
    """A feed or page rendered to bytes: what the exporter writes and the server wraps
    with its validators."""

    body: bytes
    content_type: str
    updated: datetime  # the newest item's change (the channel's updated time)


class Publisher:
    def __init__(self, settings: Settings, store: Store, site_url: str | None = None) -> None:
        self.settings = settings
        self.store = store
        self.site_url = (site_url if site_url is not None else settings.site_url or "").rstrip("/")
        # a fingerprint of the config this renders under (ttl, site URL, titles...): the
        # server puts it in every ETag and cache key. The server's cache size changes no
        # output, so it stays out: replicas sized differently agree on every validator.
        unrendered = {"server": {"max_cache_entries"}}
        config = settings.model_dump_json(exclude=unrendered)
        self.config_key = hashlib.sha256(config.encode()).hexdigest()[:16]

    # ------------------------------------------------------------------ pieces

    def ttl_minutes(self, slugs: Sequence[str] | None) -> int:
        """The shortest interval among sources that can feed these categories."""
        defaults = self.settings.defaults
        intervals = [
            s.effective_interval(defaults)
            for s in self.settings.sources
            if s.enabled and (s.category_field() or slugs is None or s.category in slugs)
        ]
        shortest = min(intervals, default=defaults.interval)
        return max(1, int(shortest / timedelta(minutes=1)))

    def categories(self, slugs: Sequence[str] | None = None) -> dict[str, CategoryInfo]:
        """Titles and descriptions by slug (no item counts: those need a scan)."""
        return self.store.find_categories(slugs)

    def views(
        self, items: Sequence[StoredItem], titles: dict[str, str], sources: dict[str, SourceInfo]
    ) -> list[ItemView]:
        out = []
        for item in items:
            info = sources.get(item.source_id)
            out.append(
                ItemView(
                    item=item,
                    categories=tuple(
                        (slug, titles.get(slug, slug)) for slug in item.category_slugs
                    ),
                    source=info,
                )
            )
        return out

    def channel(
        self,
        request: FeedRequest,
        infos: dict[str, CategoryInfo],
        views: Sequence[ItemView],
        base: str,
    ) -> ChannelView:
        """The channel of a feed, or of a category's page (extension ``html``: its own
        URL is the page's). A single category's description is its own, empty when it
        has none: a page then shows none, and ``render`` gives a feed the title instead."""
        if request.ticker is not None:
            title, description = f"{request.ticker} 相关新闻", f"提及 {request.ticker} 的条目"
            html_url = f"{base}/ticker/{request.ticker}.html"
        elif request.slugs is None:
            title, description = "全部新闻", "所有分类的最新条目"
            html_url = f"{base}/"
        elif len(request.slugs) == 1:
            info = infos[request.slugs[0]]
            title, description = info.title, info.description
            html_url = f"{base}/category/{info.slug}.html"
        else:
            title = "、".join(infos[s].title for s in request.slugs)
            description = "合并订阅：" + title
            html_url = f"{base}/"
        feed_name = "merge" if request.slugs and len(request.slugs) > 1 else request.key
        if request.ticker is not None:
            feed_name = f"ticker/{request.ticker}"
        feed_base = f"{base}/feeds/{feed_name}"
        self_url = html_url if request.extension == "html" else f"{feed_base}.{request.extension}"
        if feed_name == "merge":
            self_url += "?c=" + ",".join(request.slugs or ())
        return ChannelView(
            key=request.key,
            title=title,
            description=description,
            self_url=self_url,
            html_url=html_url,
            feed_url_base=feed_base,
            site_url=base,
            language="zh-cn",
            ttl_minutes=self.ttl_minutes(request.slugs),
            updated=latest_update(views, EMPTY_FEED_UPDATED),
        )

    def select_items(
        self, request: FeedRequest, budget: FilterBudget | None = None
    ) -> list[StoredItem]:
        """The feed's items; q/exclude check ``budget`` (FilterBudgetError) item by item."""
        query = request.query
        if not query.is_filtered:
            return self.store.list_feed_items(
                request.slugs, query.limit, 0, query.since_seq, query.since_time, request.ticker
            )
        chosen: list[StoredItem] = []
        offset, batch = 0, 200
        while len(chosen) < query.limit and offset < FILTER_SCAN_LIMIT:
            page = self.store.list_feed_items(
                request.slugs, batch, offset, query.since_seq, query.since_time, request.ticker
            )
            chosen += filter_items(query, page, budget)
            if len(page) < batch:
                break
            offset += batch
        return chosen[: query.limit]

    # ------------------------------------------------------------------ documents

    def stamp(self, request: FeedRequest) -> int:
        return self.store.category_stamp(request.slugs)

    def check_slugs(self, slugs: Sequence[str]) -> dict[str, CategoryInfo]:
        infos = self.categories(slugs)
        missing = [slug for slug in slugs if slug not in infos]
        if missing:
            raise UnknownCategoryError(missing)
        return infos

    def render(
        self,
        request: FeedRequest,
        *,
        base: str | None = None,
        budget: FilterBudget | None = None,
    ) -> Rendered:
        """Render ``request`` from the items stored now; ``base`` is the site URL self
        links use (default: the configured site_url). Nothing is cached here: the server
        keeps what it rendered with the stamp it read first. Raises UnknownCategoryError,
        and FilterBudgetError when the filters use up ``budget``."""
        base = self.site_url if base is None else base
        slugs = request.slugs
        infos = self.categories() if slugs is None else self.check_slugs(slugs)
        titles = {slug: info.title for slug, info in infos.items()}
        items = self.select_items(request, budget)
        wanted = {item.source_id for item in items if item.source_id}
        views = self.views(items, titles, self.store.list_source_info(wanted))
        channel = self.channel(request, infos, views, base)
        # RSS 2.0 requires a channel description: a category without one gives its title
        channel = replace(channel, description=channel.description or channel.title)
        renderer = get_renderer(request.extension)
        return Rendered(
            body=renderer.render(channel, views),
            content_type=renderer.content_type,
            updated=channel.updated,
        )
