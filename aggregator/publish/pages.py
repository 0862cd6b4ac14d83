"""The HTML pages people read: the home page (the latest items across every outlet, then
every category with its latest items, as the original site had it), a category page
(paginated, with feed autodiscovery) and an item page (with its categories' feeds and the
items beside it). Jinja2 with autoescaping: every title and name is escaped; an item's
body is HTML that was sanitized at ingest and is sanitized again here before it is marked
safe. Times are shown in the source's own UTC offset, labelled with it.

``render_html`` (a category page) is the ``html`` output format's renderer (formats.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from aggregator.model import CategoryInfo, StoredItem
from aggregator.publish.enclosures import page_media
from aggregator.publish.render import ChannelView, ItemView, local_time
from aggregator.sanitize import sanitize_html

ENV = Environment(
    loader=PackageLoader("aggregator.publish", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
SITE_TITLE = "财经新闻聚合"
HTML_CONTENT_TYPE = "text/html; charset=utf-8"


@dataclass(frozen=True, slots=True)
class PageItem:
    item_id: int
    title: str
    local_time: str  # "2022-01-25 15:24 UTC+08:00": the source's own offset, labelled
    author: str | None
    link: str | None
    iso_time: str = ""  # for <time datetime=...>
    outlet: str | None = None  # the author, else the media name of one of its categories


@dataclass(frozen=True, slots=True)
class Section:
    slug: str
    title: str
    items: tuple[PageItem, ...]


HOME_LATEST_ITEMS = 20  # the home page opens with this many items across every outlet


def outlet_names(infos: Iterable[CategoryInfo]) -> dict[str, str]:
    """Category slug -> the media name that files items there, where it has one."""
    return {info.slug: info.name for info in infos if info.name}


def display_title(item: StoredItem) -> str:
    """What a page shows as an item's title: its own, else (an item with no title and no
    text to take one from) its link, else its number; a page's link text is never empty."""
    return item.title or item.link or f"#{item.item_id}"


def page_item(item: StoredItem, outlets: Mapping[str, str] | None = None) -> PageItem:
    """An item as a page lists it. ``outlets`` (``outlet_names``) names the outlet of an
    item without an author: a JSON API source files items by a field such as mediaName
    and gives no author."""
    moment = local_time(item)
    outlet = item.author or next(
        (outlets[slug] for slug in item.category_slugs if outlets and slug in outlets), None
    )
    zone = moment.strftime("%z")
    return PageItem(
        item.item_id,
        display_title(item),
        f"{moment:%Y-%m-%d %H:%M} UTC{zone[:3]}:{zone[3:]}",
        item.author,
        item.link,
        moment.isoformat(),
        outlet,
    )


def render_home(
    sections: Sequence[Section],
    root: str,
    site_title: str = SITE_TITLE,
    latest: Sequence[PageItem] = (),
) -> bytes:
    """``latest``: the newest items across every category, listed first."""
    html = ENV.get_template("index.html").render(
        sections=sections, latest=latest, root=root, site_title=site_title
    )
    return html.encode("utf-8")


def render_category_page(
    channel: ChannelView,
    views: Sequence[ItemView],
    page: int,
    has_next: bool,
    root: str,
    site_title: str = SITE_TITLE,
    outlets: Mapping[str, str] | None = None,
) -> bytes:
    html = ENV.get_template("category.html").render(
        title=channel.title,
        description=channel.description,
        feed_base=channel.feed_url_base,
        items=[page_item(v.item, outlets) for v in views],
        page=page,
        has_next=has_next,
        root=root,
        site_title=site_title,
    )
    return html.encode("utf-8")


def render_item_page(
    item: StoredItem,
    categories: Sequence[tuple[str, str]],
    root: str,
    site_title: str = SITE_TITLE,
    outlets: Mapping[str, str] | None = None,
    newer: StoredItem | None = None,
    older: StoredItem | None = None,
) -> bytes:
    """``categories``: (slug, title) of the item's categories, each linked and offered as
    feeds; ``newer``/``older``: the items beside it in its first category's page order
    (``Store.find_adjacent_items``), linked as previous/next."""
    body = sanitize_html(item.content or item.summary or "", item.link) or ""
    html = ENV.get_template("item.html").render(
        item=page_item(item, outlets),
        newer=page_item(newer) if newer else None,
        older=page_item(older) if older else None,
        categories=categories,
        tickers=item.tickers,
        body=Markup(body),  # noqa: S704
        media=page_media(item.media),
        root=root,
        site_title=site_title,
    )
    return html.encode("utf-8")


def render_not_found(
    message: str, categories: Sequence[CategoryInfo], root: str, site_title: str = SITE_TITLE
) -> bytes:
    html = ENV.get_template("not_found.html").render(
        message=message, categories=categories, root=root, site_title=site_title
    )
    return html.encode("utf-8")


def render_html(channel: ChannelView, views: Sequence[ItemView]) -> bytes:
    """A category page listing ``views`` (the static export's form: no pagination)."""
    return render_category_page(channel, views, page=1, has_next=False, root=channel.site_url)
