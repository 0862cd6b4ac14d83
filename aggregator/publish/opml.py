"""OPML 2.0 documents (http://opml.org/spec2.opml): every output feed, grouped, for
``GET /feeds.opml`` (a reader subscribes to all of them in one step), and the
configured sources, grouped by category, for ``aggregator opml export``.

Pure: groups of outlines in, bytes out. ``output_feed_groups`` is the one place that
lists the kinds of output feed; a new kind adds its group there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime

from lxml import etree

from aggregator.config.settings import Settings, Source
from aggregator.model import CategoryInfo

OPML_CONTENT_TYPE = "text/x-opml; charset=utf-8"
# Attributes of our own on an exported category's outline: any OPML reader ignores
# them (the spec allows any attribute), and ``aggregator opml import`` reads them back.
CATEGORY_ATTRIBUTE = "category"
CATEGORY_FROM_ATTRIBUTE = "categoryFrom"


@dataclass(frozen=True, slots=True)
class Group:
    """A folder of feeds: its title, attributes of its own, one attribute dict per feed."""

    text: str
    feeds: tuple[Mapping[str, str], ...]
    attributes: Mapping[str, str] = field(default_factory=dict)


def feed_outline(title: str, xml_url: str, html_url: str | None = None) -> dict[str, str]:
    outline = {"type": "rss", "text": title, "title": title, "xmlUrl": xml_url}
    if html_url:
        outline["htmlUrl"] = html_url
    return outline


def render_opml(title: str, groups: Iterable[Group], now: datetime) -> bytes:
    """An OPML 2.0 document: one outline per group, holding its feeds' outlines."""
    root = etree.Element("opml", version="2.0")
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = title
    etree.SubElement(head, "dateCreated").text = format_datetime(now, usegmt=True)
    body = etree.SubElement(root, "body")
    for group in groups:
        folder = etree.SubElement(
            body, "outline", {"text": group.text, "title": group.text, **group.attributes}
        )
        for feed in group.feeds:
            etree.SubElement(folder, "outline", dict(feed))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def output_feed_groups(categories: Sequence[CategoryInfo], base: str) -> list[Group]:
    """Every output feed, grouped: each category, then every category merged (``all``).
    New kinds of output feed (hot items, tickers) plug in here, as a group each."""
    return [
        Group(
            "分类",
            tuple(
                feed_outline(
                    c.title, f"{base}/feeds/{c.slug}.xml", f"{base}/category/{c.slug}.html"
                )
                for c in sorted(categories, key=lambda c: c.slug)
            ),
        ),
        Group("合并", (feed_outline("全部分类", f"{base}/feeds/all.xml", f"{base}/"),)),
    ]


def is_feed_source(source: Source) -> bool:
    """Whether another reader could subscribe to the source: JSON list APIs and HTML list
    pages are not feeds, and their field maps and selectors have no place in OPML."""
    return source.type not in ("json", "html")


def source_groups(settings: Settings) -> list[Group]:
    """The configured feed sources, one group per category (titled as the category)
    and one per ``category_from`` field, each source's id as its text."""
    fixed: dict[str, list[Source]] = {}
    by_field: dict[str, list[Source]] = {}
    for source in settings.sources:
        if not is_feed_source(source):
            continue
        if source.category:
            fixed.setdefault(source.category, []).append(source)
        else:
            by_field.setdefault(source.category_from or "", []).append(source)
    groups = []
    for slug, sources in fixed.items():
        category = settings.categories.get(slug)
        groups.append(
            Group(
                category.title if category else slug,
                tuple(_source_outline(s) for s in sources),
                {CATEGORY_ATTRIBUTE: slug},
            )
        )
    for name, sources in by_field.items():
        groups.append(
            Group(
                f"按 {name} 分类",
                tuple(_source_outline(s) for s in sources),
                {CATEGORY_FROM_ATTRIBUTE: name},
            )
        )
    return groups


def _source_outline(source: Source) -> dict[str, str]:
    outline = feed_outline(source.id, source.url)
    if source.type != "auto":
        outline["sourceType"] = source.type  # ours, as the category attributes
    if not source.enabled:
        outline["enabled"] = "false"
    return outline
