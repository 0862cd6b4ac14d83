"""Building output documents from the store: which items a feed holds, its channel, its
validators, and a cache of rendered documents. Shared by the web app and the exporter.

A rendered document is cached under (format, categories, query) together with the
freshness stamp it was rendered at (the highest seq written into those categories). A
request first reads the stamp, one primary-key lookup; when it matches, the cached bytes
and ETag are reused without touching items. Every process reads the stamp from the
database, so replicas stay correct when another process wrote the items.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from aggregator import __version__
from aggregator.config.settings import Settings
from aggregator.model import CategoryInfo, SourceInfo, StoredItem
from aggregator.publish.query import FeedQuery, matches
from aggregator.publish.render import (
    ChannelView,
    ItemView,
    get_renderer,
    latest_update,
)
from aggregator.store import Store

EMPTY_FEED_UPDATED = datetime(2000, 1, 1, tzinfo=UTC)
FILTER_SCAN_LIMIT = 5000  # items examined at most to fill a filtered feed
CACHE_ENTRIES = 512
GZIP_MIN_BYTES = 1024


class UnknownCategoryError(LookupError):
    def __init__(self, missing: Sequence[str]) -> None:
        self.missing = tuple(missing)
        super().__init__(", ".join(missing))


@dataclass(frozen=True, slots=True)
class FeedRequest:
    """What a feed is: its key ('all', a slug, or 'a,b'), categories and format."""

    key: str
    slugs: tuple[str, ...] | None  # None: every category
    extension: str
    query: FeedQuery

    def cache_key(self) -> tuple[object, ...]:
        return (self.key, self.extension, *self.query.cache_key())


@dataclass(slots=True)
class Document:
    body: bytes
    content_type: str
    etag: str  # strong, quoted; for the identity encoding
    last_modified: datetime
    stamp: int
    _gzipped: bytes | None = field(default=None, repr=False)
    _wire: dict[tuple[bool, int, bool], list[tuple[bytes, bytes]]] = field(
        default_factory=dict, repr=False
    )

    def gzipped(self) -> bytes:
        if self._gzipped is None:
            self._gzipped = gzip.compress(self.body, compresslevel=6, mtime=0)
        return self._gzipped

    @property
    def gzip_etag(self) -> str:
        return self.etag[:-1] + '-gz"'

    @property
    def last_modified_http(self) -> str:
        return format_datetime(self.last_modified.astimezone(UTC), usegmt=True)

    def wire_headers(
        self, gzip: bool, status: int, head: bool, cache_control: str
    ) -> list[tuple[bytes, bytes]]:
        """Encoded response headers for one variant, built once per document."""
        key = (gzip, status, head)
        headers = self._wire.get(key)
        if headers is None:
            pairs = [
                ("etag", self.gzip_etag if gzip else self.etag),
                ("last-modified", self.last_modified_http),
                ("cache-control", cache_control),
                ("vary", "Accept-Encoding"),
            ]
            if status == 200:
                body = self.gzipped() if gzip else self.body
                pairs += [("content-type", self.content_type), ("content-length", str(len(body)))]
                if gzip:
                    pairs.append(("content-encoding", "gzip"))
            headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in pairs]
            self._wire[key] = headers
        return headers


def make_etag(request_key: tuple[object, ...], stamp: int) -> str:
    digest = hashlib.sha256(repr((request_key, stamp, __version__)).encode()).hexdigest()
    return f'"{digest[:32]}"'


class Publisher:
    def __init__(self, settings: Settings, store: Store, site_url: str | None = None) -> None:
        self.settings = settings
        self.store = store
        self.site_url = (site_url if site_url is not None else settings.site_url or "").rstrip("/")
        self._cache: OrderedDict[tuple[object, ...], Document] = OrderedDict()
        self._lock = threading.Lock()
        # every ETag carries the config it was rendered under (ttl, site URL, titles...)
        self.config_key = hashlib.sha256(settings.model_dump_json().encode()).hexdigest()[:16]

    def etag(self, key: tuple[object, ...], stamp: int) -> str:
        return make_etag((self.config_key, *key), stamp)

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
        if request.slugs is None:
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

    def select_items(self, request: FeedRequest) -> list[StoredItem]:
        query = request.query
        if not query.is_filtered:
            return self.store.list_feed_items(
                request.slugs, query.limit, 0, query.since_seq, query.since_time
            )
        chosen: list[StoredItem] = []
        offset, batch = 0, 200
        while len(chosen) < query.limit and offset < FILTER_SCAN_LIMIT:
            page = self.store.list_feed_items(
                request.slugs, batch, offset, query.since_seq, query.since_time
            )
            chosen += [item for item in page if matches(query, item)]
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

    def cached(self, key: tuple[object, ...], stamp: int) -> Document | None:
        with self._lock:
            document = self._cache.get(key)
            if document is not None and document.stamp == stamp:
                self._cache.move_to_end(key)
                return document
        return None

    def render(self, request: FeedRequest, stamp: int, base: str | None = None) -> Document:
        """Render (or reuse) the document for ``request`` at ``stamp``; ``base`` is the
        site URL self links use (default: the configured site_url). Raises
        UnknownCategoryError."""
        base = self.site_url if base is None else base
        key = (*request.cache_key(), base)
        document = self.cached(key, stamp)
        if document is not None:
            return document
        slugs = request.slugs
        infos = self.categories() if slugs is None else self.check_slugs(slugs)
        titles = {slug: info.title for slug, info in infos.items()}
        items = self.select_items(request)
        wanted = {item.source_id for item in items if item.source_id}
        views = self.views(items, titles, self.store.list_source_info(wanted))
        channel = self.channel(request, infos, views, base)
        # RSS 2.0 requires a channel description: a category without one gives its title
        channel = replace(channel, description=channel.description or channel.title)
        renderer = get_renderer(request.extension)
        document = Document(
            body=renderer.render(channel, views),
            content_type=renderer.content_type,
            etag=self.etag(key, stamp),
            last_modified=channel.updated,
            stamp=stamp,
        )
        with self._lock:
            self._cache[key] = document
            while len(self._cache) > CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return document
