"""The feed renderers (RSS 2.0, Atom 1.0, JSON Feed 1.1) and the Jekyll post: stored
items to bytes. ``formats.py`` lists the renderers by extension; the Jekyll post renders
one item for the exporter and is not one of them.

Pure: views in, bytes out. Every text that reaches XML passes ``xml_safe`` first (control
characters, lone surrogates and non-characters are dropped), so an output document is
well-formed whatever a source sent.

Ids are stable across updates: RSS ``<guid isPermaLink="false">`` and JSON Feed ``id`` are
the stable id itself; the Atom id is ``urn:uuid:`` + a UUID5 of it (Atom ids must be IRIs).
"""

from __future__ import annotations

import html
import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import quote

from feedgen.entry import FeedEntry
from feedgen.feed import FeedGenerator
from lxml import etree

from aggregator.model import SourceInfo, StoredItem
from aggregator.publish.enclosures import has_media, json_feed_media, load_media
from aggregator.text import xml_safe

ITEM_NAMESPACE = uuid.UUID("6b1c4a52-8a3e-5b7e-9d1f-3c0e1f2a9b10")
RSS_CONTENT_TYPE = "application/rss+xml; charset=utf-8"
ATOM_CONTENT_TYPE = "application/atom+xml; charset=utf-8"
JSON_FEED_CONTENT_TYPE = "application/feed+json; charset=utf-8"


@dataclass(frozen=True, slots=True)
class ItemView:
    item: StoredItem
    categories: tuple[tuple[str, str], ...]  # (slug, title)
    source: SourceInfo | None


@dataclass(frozen=True, slots=True)
class ChannelView:
    """A feed's channel: one category, 'all', or a merge of several."""

    key: str  # slug, "all", or "a,b"
    title: str
    description: str
    self_url: str  # this document's own URL (atom:link rel=self)
    html_url: str  # the page people read
    feed_url_base: str  # e.g. https://site/feeds/slug (without extension)
    site_url: str
    language: str
    ttl_minutes: int
    updated: datetime


def atom_id(stable_id: str) -> str:
    return f"urn:uuid:{uuid.uuid5(ITEM_NAMESPACE, stable_id)}"


def local_time(item: StoredItem) -> datetime:
    """The published time in the source's own offset (as the original site showed it)."""
    zone = timezone(timedelta(minutes=item.published_offset_minutes))
    return item.published_at.astimezone(zone)


def item_updated(item: StoredItem) -> datetime:
    """The item's own last change, what readers sort by (Atom ``updated``, JSON Feed
    ``date_modified``): the updated time its feed gave, else its published time, never
    before that, in the source's own offset. When we stored it is ours to tell (the API's
    ``updated_at``): a 2022 article is not news today, and the W3C validator warns of
    many entries sharing one ``atom:updated``."""
    own = item.source_updated_at
    moment = max(own, item.published_at) if own is not None else item.published_at
    return moment.astimezone(local_time(item).tzinfo)


def item_url(channel: ChannelView, view: ItemView) -> str:
    return view.item.link or f"{channel.site_url}/item/{view.item.item_id}.html"


def _generator(channel: ChannelView, content_type: str) -> FeedGenerator:
    generator = FeedGenerator()
    generator.id(f"{channel.feed_url_base}.atom")
    generator.title(xml_safe(channel.title))
    # titles and descriptions are plain text: RSS readers take a channel <description> as
    # HTML (as an item's), so it is escaped for HTML there; Atom's <subtitle> is text
    description = xml_safe(channel.description) or xml_safe(channel.title)
    is_rss = content_type == RSS_CONTENT_TYPE
    generator.description(html.escape(description) if is_rss else description)
    # feedgen's RSS <link> is the last link set: self first, then the page people read
    generator.link(href=channel.self_url, rel="self", type=content_type.split(";")[0])
    generator.link(href=channel.html_url, rel="alternate")
    generator.language(channel.language)
    generator.author({"name": xml_safe(channel.title)})
    generator.updated(channel.updated)
    generator.lastBuildDate(channel.updated)
    generator.ttl(channel.ttl_minutes)
    generator.generator("aggregator")
    return generator


def _add_entries(
    generator: FeedGenerator, channel: ChannelView, views: Sequence[ItemView], for_atom: bool
) -> None:
    if has_media([view.item for view in views]):
        load_media(generator)  # only then: other feeds keep their bytes
    # feedgen prepends each entry; adding oldest first keeps newest first in the output
    for view in reversed(views):
        item = view.item
        entry = generator.add_entry()
        entry.guid(xml_safe(item.stable_id), permalink=False)  # sets the Atom id too, so:
        entry.id(atom_id(item.stable_id) if for_atom else xml_safe(item.stable_id))
        # An untitled item (no text to take one from) has no title where the format
        # allows that; Atom needs one, and RSS a title or a description: its link
        # stands in, the same in any language.
        title = xml_safe(item.title)
        shown = title or item_url(channel, view)
        if title or for_atom or not (item.summary or item.content):
            entry.title(shown)
        entry.link(href=item_url(channel, view), rel="alternate")
        entry.published(local_time(item))
        entry.updated(item_updated(item))
        if item.author:
            entry.author({"name": xml_safe(item.author)})
        if item.summary:
            entry.summary(xml_safe(item.summary), type="html")
        if item.content:
            entry.content(xml_safe(item.content), type="CDATA" if not for_atom else "html")
        elif not item.summary:
            # The title stands in: RSS <description> is HTML, Atom content without a type
            # is text. A title is plain text and may well read "<img onerror=...>".
            entry.description(shown if for_atom else html.escape(shown))
        for slug, title in view.categories:
            entry.category(term=slug, label=xml_safe(title))
        for code in item.tickers:  # RSS <category domain="ticker">, Atom scheme="ticker"
            entry.category(term=code, scheme="ticker", label=code)
        if view.source is not None:
            _add_source(entry, item, view.source, for_atom)
        if item.media:
            entry.media_files.media = item.media


@dataclass(frozen=True, slots=True)
class _AtomSource:
    """An entry's atom:source (RFC 4287 4.2.11: the source feed's id, title and updated,
    so the entry keeps its origin's metadata when copied), as a feedgen entry extension:
    feedgen's own source() writes a title and a link only, and needs the link."""

    id: str
    title: str
    updated: datetime
    link: str | None

    def extend_atom(self, entry: etree._Element) -> etree._Element:
        source = etree.SubElement(entry, "source")
        etree.SubElement(source, "id").text = self.id
        etree.SubElement(source, "title").text = self.title
        etree.SubElement(source, "updated").text = self.updated.isoformat()
        if self.link is not None:
            etree.SubElement(source, "link", href=self.link)
        return entry


def source_atom_id(source: SourceInfo) -> str:
    """The source feed's Atom id: its URL (readers know a feed by it), else, for a
    ``file:`` source, a UUID5 of the source id (its URL is a path on this server)."""
    return (
        source.public_url or f"urn:uuid:{uuid.uuid5(ITEM_NAMESPACE, 'source:' + source.source_id)}"
    )


def _add_source(entry: FeedEntry, item: StoredItem, source: SourceInfo, for_atom: bool) -> None:
    """Provenance, without ever the URL of a ``file:`` source (a path on this server): RSS
    2.0's <source> needs a url, so such a source has none there. Atom's source
    ``updated`` is the entry's own: the source feed had changed at least then, and we
    keep no time of its own that changes only with what this document shows."""
    title, url = xml_safe(source.title), source.public_url
    if for_atom:
        extension = _AtomSource(source_atom_id(source), title, item_updated(item), url)
        entry.register_extension("atom_source", lambda: extension, atom=True, rss=False)
    elif url is not None:
        entry.source(url=url, title=title)


def render_rss(channel: ChannelView, views: Sequence[ItemView]) -> bytes:
    generator = _generator(channel, RSS_CONTENT_TYPE)
    _add_entries(generator, channel, views, for_atom=False)
    return bytes(generator.rss_str(pretty=True))


def render_atom(channel: ChannelView, views: Sequence[ItemView]) -> bytes:
    generator = _generator(channel, ATOM_CONTENT_TYPE)
    _add_entries(generator, channel, views, for_atom=True)
    return bytes(generator.atom_str(pretty=True))


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def render_json_feed(channel: ChannelView, views: Sequence[ItemView]) -> bytes:
    """JSON Feed 1.1 (https://www.jsonfeed.org/version/1.1/); ``_aggregator`` is our
    extension object (seq for cursors, categories, source)."""
    items = []
    for view in views:
        item = view.item
        entry: dict[str, object] = {"id": item.stable_id, "url": item_url(channel, view)}
        if item.title:  # optional in JSON Feed: an untitled item has none
            entry["title"] = item.title
        entry |= {
            "content_html": item.content or item.summary or "",
            "date_published": _rfc3339(local_time(item)),
            "date_modified": _rfc3339(item_updated(item)),
            "tags": [title for _, title in view.categories] + list(item.tickers),
            "_aggregator": {
                "seq": item.seq,
                "categories": [slug for slug, _ in view.categories],
                "source": view.source.source_id if view.source else None,
                "is_update": item.is_update,
            },
        }
        if item.summary:
            entry["summary"] = item.summary
        if item.author:
            entry["authors"] = [{"name": item.author}]
        entry.update(json_feed_media(item.media))
        items.append(entry)
    document = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": channel.title,
        "home_page_url": channel.html_url,
        "feed_url": channel.self_url,
        "description": channel.description,
        "language": channel.language,
        "items": items,
    }
    return json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8")


# --------------------------------------------------------------------------- Jekyll


def _yaml_quoted(text: str) -> str:
    """A YAML double-quoted scalar: any title stays valid YAML (quotes, colons, #, ...)."""
    escaped = xml_safe(text).replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f'"{escaped}"'


def _yaml_words(words: Sequence[str]) -> str:
    if len(words) == 1 and re.fullmatch(r"[^\s:#,\[\]{}&*!|>'\"%@`-][^\s:#,\[\]{}]*", words[0]):
        return words[0]
    return "[" + ", ".join(_yaml_quoted(word) for word in words) + "]"


# Jekyll runs Liquid over a post, then kramdown reads it as Markdown: text from a feed
# must not hold "{{ }}" or "{% %}" (run, or a broken build), "[x](javascript:...)" (a
# link) or "{: onclick=...}" (an attribute). As character references these characters
# are inert to both and read the same in HTML, in text and in attribute values alike.
_MARKDOWN_INERT = str.maketrans(
    {"[": "&#91;", "]": "&#93;", "{": "&#123;", "}": "&#125;", "\\": "&#92;"}
)
# What would end the <link> autolink early or open Liquid: percent-encoded.
_AUTOLINK_UNSAFE = re.compile(r"[\s<>\"{}|\\^`]")


def _inert_link(url: str) -> str:
    return _AUTOLINK_UNSAFE.sub(lambda found: quote(found.group()), url)


def jekyll_filename(item: StoredItem) -> str:
    """``YYYY-MM-DD-{id}.md``; an id that is not a plain token becomes a hash of it."""
    token = item.stable_id
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,100}", token):
        token = "item-" + uuid.uuid5(ITEM_NAMESPACE, token).hex[:16]
    return f"{local_time(item):%Y-%m-%d}-{token}.md"


def render_jekyll_post(view: ItemView, site_url: str) -> bytes:
    """One item in the original site's Jekyll post format, byte for byte: front matter,
    the HTML body, a blank line, the link in angle brackets, a blank line, the footer
    linking back to the category page and the home page, and no trailing newline."""
    item = view.item
    slugs = [slug for slug, _ in view.categories] or ["uncategorized"]
    titles = [title for _, title in view.categories] or ["未分类"]
    home = site_url.rstrip("/")
    # Layouts print {{ page.title }} and tags into HTML text and attributes, most of them
    # as they are: plain text is escaped for HTML first (a title "<a ondblclick=...>").
    lines = [
        "---",
        "layout: post",
        f"title: {_yaml_quoted(html.escape(item.title))}",
        f"date: {local_time(item):%Y-%m-%d %H:%M:%S %z}",
        f"categories: {_yaml_words(slugs)}",
        f"tags: {_yaml_words([html.escape(title) for title in titles])}",
        "---",
        xml_safe(item.content or item.summary or "").translate(_MARKDOWN_INERT),
        "",
        f"<{_inert_link(item.link)}>" if item.link else "",
        "",
        f"[返回{html.escape(xml_safe(titles[0]), quote=False).translate(_MARKDOWN_INERT)}]"
        f"({home}/category/{slugs[0]}.html)｜[返回首页]({home}/)",
    ]
    return "\n".join(lines).encode("utf-8")


def latest_update(views: Sequence[ItemView], fallback: datetime) -> datetime:
    """The channel's updated time: the newest item change, stable between renders."""
    if not views:
        return fallback
    return max(max(v.item.updated_at, v.item.published_at) for v in views).astimezone(UTC)
