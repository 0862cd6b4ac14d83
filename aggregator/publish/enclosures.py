"""An item's media in the three feed formats (issue 14). Pure: values in, feedgen calls
and JSON values out; no business logic beyond each format's rules:

* RSS 2.0 allows one ``<enclosure>`` per item (the first enclosure); the others, and
  thumbnails and images, go out as Media RSS (``media:content``, ``media:thumbnail``).
  The W3C feed validator wants an enclosure's ``url``, ``length`` and ``type`` all present:
  an unknown length is written ``0`` and an unknown type ``application/octet-stream``.
* Atom: every enclosure is a ``<link rel="enclosure">``; thumbnails and images as Media RSS.
* JSON Feed 1.1: enclosures are ``attachments``; the first image or thumbnail is ``image``,
  a banner ``banner_image``.
* The item page: img, audio and video elements with their type and size (``page_media``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from lxml import etree

from aggregator.model import Media
from aggregator.text import xml_safe

UNKNOWN_TYPE = "application/octet-stream"
MEDIA_NS = "http://search.yahoo.com/mrss/"


def has_media(items: Sequence[Any]) -> bool:
    """Whether any stored item carries media (the Media RSS namespace is declared then)."""
    return any(item.media for item in items)


def _attributes(media: Media) -> dict[str, str]:
    found = {
        "url": media.url,
        "type": media.type,
        "medium": media.medium,
        "fileSize": media.length,
        "width": media.width,
        "height": media.height,
        "duration": media.duration_seconds,
    }
    return {k: xml_safe(str(v)) for k, v in found.items() if v is not None}


def _enclosure(media: Media) -> dict[str, str]:
    """What the validator wants of an enclosure: url, length and type, always."""
    return {
        "url": xml_safe(media.url),
        "length": str(media.length or 0),
        "type": xml_safe(media.type or UNKNOWN_TYPE),
    }


def _media_rss(parent: etree._Element, media: Sequence[Media]) -> None:
    for m in media:
        if m.role == "enclosure":
            etree.SubElement(parent, f"{{{MEDIA_NS}}}content", _attributes(m))
        else:
            thumbnail = {k: v for k, v in _attributes(m).items() if k in ("url", "width", "height")}
            etree.SubElement(parent, f"{{{MEDIA_NS}}}thumbnail", thumbnail)


class MediaExtension(BaseExtension):  # type: ignore[misc]
    """Declares the Media RSS namespace on the feed (loaded only when an item has media)."""

    def extend_ns(self) -> dict[str, str]:
        return {"media": MEDIA_NS}


class MediaEntryExtension(BaseEntryExtension):  # type: ignore[misc]
    """Writes one entry's media. Not feedgen's own media extension, nor ``entry.link``:
    feedgen's Atom writer drops a link's rel, type and length."""

    def __init__(self) -> None:
        self.media: tuple[Media, ...] = ()

    def extend_rss(self, item: etree._Element) -> etree._Element:
        enclosures = [m for m in self.media if m.role == "enclosure"]
        if enclosures:  # RSS 2.0 allows one
            etree.SubElement(item, "enclosure", _enclosure(enclosures[0]))
        _media_rss(
            item, [m for m in self.media if m is not enclosures[0]] if enclosures else self.media
        )
        return item

    def extend_atom(self, entry: etree._Element) -> etree._Element:
        for m in self.media:
            if m.role == "enclosure":
                attributes = _enclosure(m)
                attributes["href"] = attributes.pop("url")
                # unqualified, as feedgen writes its Atom elements (the default namespace)
                etree.SubElement(entry, "link", {"rel": "enclosure", **attributes})
        _media_rss(entry, [m for m in self.media if m.role != "enclosure"])
        return entry


def load_media(generator: Any) -> None:
    """Make ``entry.media_files`` available on the generator's entries."""
    generator.register_extension("media_files", MediaExtension, MediaEntryExtension)


def json_feed_media(media: Sequence[Media]) -> dict[str, object]:
    """The JSON Feed 1.1 item members for ``media``: attachments, image, banner_image."""
    members: dict[str, object] = {}
    attachments = []
    for m in media:
        if m.role == "enclosure":
            attachment: dict[str, object] = {"url": m.url, "mime_type": m.type or UNKNOWN_TYPE}
            if m.length:
                attachment["size_in_bytes"] = m.length
            if m.duration_seconds:
                attachment["duration_in_seconds"] = m.duration_seconds
            attachments.append(attachment)
        elif m.role == "banner":
            members.setdefault("banner_image", m.url)
        else:
            members.setdefault("image", m.url)
    if attachments:
        members["attachments"] = attachments
    return members


@dataclass(frozen=True, slots=True)
class PageMedia:
    """One media file as the item page shows it: ``element`` is img, audio, video or a
    (a plain link, for documents and unknown types); ``label`` its type and size."""

    element: str
    url: str
    type: str | None
    label: str
    width: int | None
    height: int | None


def _size(length: int | None) -> str | None:
    if not length:
        return None
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if length >= scale:
            return f"{length / scale:.1f} {unit}"
    return f"{length} B"


def page_media(media: Sequence[Media]) -> list[PageMedia]:
    """The item page's media elements, in the item's order."""
    shown = []
    for m in media:
        kind = (m.medium or (m.type or "").split("/")[0]).lower()
        if m.role != "enclosure" or kind == "image":
            element = "img"
        elif kind in ("audio", "video"):
            element = kind
        else:
            element = "a"
        label = "，".join(part for part in (m.type, _size(m.length)) if part)
        shown.append(PageMedia(element, m.url, m.type, label, m.width, m.height))
    return shown
