"""An item's media from the raw attributes either XML path reads (fast path, feedparser),
and from JSON Feed: one builder, so both XML paths yield the same ``Media`` values (the
differential test in tests/ingest/test_fastparse.py holds them to that).

Raw form, attribute names lowercased as feedparser gives them:

    enclosures  RSS <enclosure url type length>, Atom <link rel="enclosure" href type length>
    contents    Media RSS <media:content url type medium filesize width height duration>,
                inside <media:group> or not
    thumbnails  Media RSS <media:thumbnail url width height>

Order: enclosures, then media:content, then thumbnails, each in document order; a URL
seen before keeps its first place and gains what it lacked (podcast feeds repeat their
enclosure as media:content). URLs are
resolved against the source's base URL and must be http or https, as links are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from aggregator.ingest.fields import web_link
from aggregator.model import Media

MEDIA_RSS = ("{http://search.yahoo.com/mrss/}", "{http://search.yahoo.com/mrss}")
RawMedia = Mapping[str, Sequence[Mapping[str, Any]]]


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _count(value: object) -> int | None:
    """A non-negative whole number (``length="12345"``, ``duration="61.5"``), else None."""
    text = _text(value)
    if text is None:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    if number != number or number < 0 or number > 2**62:  # NaN, negative, absurd
        return None
    return int(number)


def _type(value: object) -> str | None:
    kind = _text(value)
    # feedparser gives an Atom link without a type "text/html": for an enclosure that
    # says nothing, so neither path keeps it
    if kind is None or kind.lower() == "text/html" or len(kind) > 200:
        return None
    return kind


def _merge(found: dict[str, Media], media: Media) -> None:
    """Add ``media``; a URL seen before keeps its place and role, and gains the facts it
    lacked (an enclosure repeated as media:content gains its medium and duration)."""
    known = found.get(media.url)
    if known is None:
        found[media.url] = media
        return
    gained = {
        name: getattr(media, name)
        for name in ("type", "length", "medium", "width", "height", "duration_seconds")
        if getattr(known, name) is None and getattr(media, name) is not None
    }
    if gained:
        found[media.url] = replace(known, **gained)


def build_media(raw: RawMedia | None, base: str | None) -> tuple[Media, ...]:
    """The item's media from the raw attributes (see the module docstring)."""
    if not raw:
        return ()
    found: dict[str, Media] = {}

    def add(url: object, **fields: Any) -> None:
        text = _text(url)
        link = web_link(text, base) if text and len(text) <= 2000 else None
        if link is not None:
            _merge(found, Media(url=link, **fields))

    for attrs in raw.get("enclosures", ()):
        add(
            attrs.get("href") or attrs.get("url"),
            role="enclosure",
            type=_type(attrs.get("type")),
            length=_count(attrs.get("length")),
        )
    for attrs in raw.get("contents", ()):
        add(
            attrs.get("url"),
            role="enclosure",
            type=_type(attrs.get("type")),
            length=_count(attrs.get("filesize")),
            medium=_text(attrs.get("medium")),
            width=_count(attrs.get("width")),
            height=_count(attrs.get("height")),
            duration_seconds=_count(attrs.get("duration")),
        )
    for attrs in raw.get("thumbnails", ()):
        add(
            attrs.get("url"),
            role="thumbnail",
            width=_count(attrs.get("width")),
            height=_count(attrs.get("height")),
        )
    return tuple(found.values())


def json_feed_media(record: Mapping[str, Any], base: str | None) -> tuple[Media, ...]:
    """A JSON Feed item's ``attachments``, then its ``image`` and ``banner_image``."""
    found: dict[str, Media] = {}

    def add(url: object, **fields: Any) -> None:
        text = _text(url) if isinstance(url, str) else None
        link = web_link(text, base) if text and len(text) <= 2000 else None
        if link is not None:
            _merge(found, Media(url=link, **fields))

    attachments = record.get("attachments")
    for attachment in attachments if isinstance(attachments, list) else ():
        if isinstance(attachment, Mapping):
            add(
                attachment.get("url"),
                role="enclosure",
                type=_type(attachment.get("mime_type")),
                length=_count(attachment.get("size_in_bytes")),
                duration_seconds=_count(attachment.get("duration_in_seconds")),
            )
    add(record.get("image"), role="image")
    add(record.get("banner_image"), role="banner")
    return tuple(found.values())


def attributes(elements: Iterable[Any]) -> list[dict[str, str]]:
    """Each element's attributes with lowercased names (as feedparser gives them), and a
    thumbnail's text as its URL when it has no ``url`` attribute (as feedparser reads it)."""
    out: list[dict[str, str]] = []
    for element in elements:
        attrs = {str(k).lower(): str(v) for k, v in element.attrib.items()}
        if (
            "url" not in attrs
            and element.tag.endswith("thumbnail")
            and (element.text or "").strip()
        ):
            attrs["url"] = element.text.strip()
        out.append(attrs)
    return out
