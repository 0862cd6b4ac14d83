"""The HTML pages people read: the home page (every category with its latest items, as
the original site had it), a category page (paginated, with feed autodiscovery) and an
item page. Jinja2 with autoescaping: every title and name is escaped; an item's body is
HTML that was sanitized at ingest and is sanitized again here before it is marked safe.

``render_html`` (a category page) is the ``html`` output format's renderer (formats.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from aggregator.model import CategoryInfo, StoredItem
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
    local_time: str
    author: str | None
    link: str | None


@dataclass(frozen=True, slots=True)
class Section:
    slug: str
    title: str
    items: tuple[PageItem, ...]


def page_item(item: StoredItem) -> PageItem:
    return PageItem(
        item.item_id, item.title, f"{local_time(item):%Y-%m-%d %H:%M}", item.author, item.link
    )


def render_home(sections: Sequence[Section], root: str, site_title: str = SITE_TITLE) -> bytes:
    html = ENV.get_template("index.html").render(
        sections=sections, root=root, site_title=site_title
    )
    return html.encode("utf-8")


def render_category_page(
    channel: ChannelView,
    views: Sequence[ItemView],
    page: int,
    has_next: bool,
    root: str,
    site_title: str = SITE_TITLE,
) -> bytes:
    html = ENV.get_template("category.html").render(
        title=channel.title,
        description=channel.description,
        feed_base=channel.feed_url_base,
        items=[page_item(v.item) for v in views],
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
) -> bytes:
    body = sanitize_html(item.content or item.summary or "", item.link) or ""
    html = ENV.get_template("item.html").render(
        item=page_item(item),
        categories=categories,
        body=Markup(body),  # noqa: S704
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
