"""OPML subscription lists (Miniflux, FreshRSS, Inoreader exports; our own ``opml
export``) turned into source entries for the config: pure, bytes in, a config fragment
out, checked by the same validation as the config file.

    outline with xmlUrl          -> a source: url = xmlUrl, id from its text or title
    its nearest folder outline   -> its category: our ``category`` / ``categoryFrom``
                                    attribute, else the folder's title slugified (and
                                    declared under ``categories:`` with that title);
                                    no folder -> ``uncategorized``

The file is hostile input, read with the limits of the feed parser: lxml with no DTD,
no entity expansion and no network (no XXE, no billion laughs), a document with a
DOCTYPE refused, and no more than ``MAX_OPML_BYTES`` read.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from lxml import etree

from aggregator.config.settings import parse_settings
from aggregator.errors import ConfigError
from aggregator.slug import slugify
from aggregator.text import untrusted_xml_parser

MAX_OPML_BYTES = 10 * 1024 * 1024  # as defaults.max_body_bytes: a large list is ~1 MB
UNCATEGORIZED = "uncategorized"
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_PARSER = untrusted_xml_parser()


def parse_opml(data: bytes, name: str = "<opml>") -> etree._Element:
    """The document's ``<body>``; ConfigError (one line) for anything else."""
    if len(data) > MAX_OPML_BYTES:
        raise ConfigError([f"{name}: over {MAX_OPML_BYTES} bytes: refused"])
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as e:
        raise ConfigError([f"{name}: not well-formed XML: {e}"]) from e
    docinfo: Any = root.getroottree().docinfo
    if docinfo.doctype:
        raise ConfigError([f"{name}: has a DOCTYPE: refused (entities are never expanded)"])
    body = root.find("body") if root.tag == "opml" else None
    if body is None:
        raise ConfigError([f"{name}: not OPML (no <opml><body>)"])
    return body


def sources_from_opml(data: bytes, name: str = "<opml>") -> dict[str, Any]:
    """``{"categories": {...}, "sources": [...]}``: the config fragment for the feeds of
    an OPML file, validated as a config; ConfigError lists what is wrong."""
    body = parse_opml(data, name)
    categories: dict[str, dict[str, str]] = {}
    sources: list[dict[str, Any]] = []
    taken: set[str] = set()

    def walk(element: etree._Element, folder: dict[str, Any] | None) -> None:
        for outline in element.iterfind("outline"):
            url = (outline.get("xmlUrl") or outline.get("xmlurl") or "").strip()
            if not url:
                walk(outline, _folder(outline, categories))
                continue
            entry: dict[str, Any] = {"id": _unique_id(outline, url, taken), "url": url}
            entry.update(folder or _uncategorized(categories))
            if outline.get("sourceType"):  # ours: a type other than auto
                entry["type"] = outline.get("sourceType")
            if outline.get("enabled") == "false":  # ours too
                entry["enabled"] = False
            sources.append(entry)

    walk(body, None)
    fragment: dict[str, Any] = {"categories": categories, "sources": sources}
    if not categories:
        del fragment["categories"]
    parse_settings(to_yaml(fragment), filename=name)  # the config's own checks
    return fragment


def to_yaml(fragment: dict[str, Any]) -> str:
    return yaml.safe_dump(fragment, allow_unicode=True, sort_keys=False, width=100)


def _folder(outline: etree._Element, categories: dict[str, dict[str, str]]) -> dict[str, Any]:
    title = (outline.get("title") or outline.get("text") or "").strip()
    named_by = outline.get("categoryFrom")
    if named_by:
        return {"category_from": named_by}
    slug = outline.get("category") or (slugify(title) if title else UNCATEGORIZED)
    categories.setdefault(slug, {"title": title or slug})
    return {"category": slug}


def _uncategorized(categories: dict[str, dict[str, str]]) -> dict[str, Any]:
    categories.setdefault(UNCATEGORIZED, {"title": "未分类"})
    return {"category": UNCATEGORIZED}


def _unique_id(outline: etree._Element, url: str, taken: set[str]) -> str:
    """The outline's text when it is a usable id (our own export writes ids there),
    else its title slugified, else the URL's; ``-2``, ``-3`` .. for repeats."""
    text = (outline.get("text") or outline.get("title") or "").strip()
    base = text if text and not _ID_UNSAFE.search(text) else slugify(text or url)
    base = _ID_UNSAFE.sub("-", base).strip("-._")[:90] or "source"
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    taken.add(candidate)
    return candidate
