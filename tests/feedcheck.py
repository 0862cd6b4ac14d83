"""Strict validation of output documents, written from the specifications (no business
logic): a strict XML parser plus the structural rules of RSS 2.0
(https://www.rssboard.org/rss-specification), Atom (RFC 4287) and JSON Feed 1.1
(https://www.jsonfeed.org/version/1.1/, as a JSON Schema). Each check returns the list of
problems found; an empty list means valid."""

from __future__ import annotations

import email.utils
import json
import re
from typing import Any

import jsonschema
from lxml import etree

ATOM = "{http://www.w3.org/2005/Atom}"
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
IRI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:\S+$")
STRICT = etree.XMLParser(resolve_entities=False, no_network=True, recover=False)

JSON_FEED_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["version", "title", "items"],
    "properties": {
        "version": {"const": "https://jsonfeed.org/version/1.1"},
        "title": {"type": "string", "minLength": 1},
        "home_page_url": {"type": "string", "format": "uri"},
        "feed_url": {"type": "string", "format": "uri"},
        "description": {"type": "string"},
        "language": {"type": "string"},
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id"],
                "anyOf": [{"required": ["content_html"]}, {"required": ["content_text"]}],
                "properties": {
                    "id": {"type": "string", "minLength": 1},
                    "url": {"type": "string", "format": "uri"},
                    "title": {"type": "string"},
                    "content_html": {"type": "string"},
                    "summary": {"type": "string"},
                    "date_published": {"type": "string", "pattern": RFC3339.pattern},
                    "date_modified": {"type": "string", "pattern": RFC3339.pattern},
                    "authors": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["name"],
                            "properties": {"name": {"type": "string"}},
                        },
                    },
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "image": {"type": "string", "format": "uri"},
                    "banner_image": {"type": "string", "format": "uri"},
                    "attachments": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["url", "mime_type"],
                            "properties": {
                                "url": {"type": "string", "format": "uri"},
                                "mime_type": {"type": "string", "minLength": 1},
                                "size_in_bytes": {"type": "integer", "minimum": 0},
                                "duration_in_seconds": {"type": "number", "minimum": 0},
                            },
                        },
                    },
                },
            },
        },
    },
}


def check_rss(body: bytes) -> list[str]:
    problems: list[str] = []
    root = etree.fromstring(body, STRICT)
    if root.tag != "rss" or root.get("version") != "2.0":
        return ["root is not <rss version='2.0'>"]
    channel = root.find("channel")
    if channel is None:
        return ["no <channel>"]
    for required in ("title", "link", "description"):
        if not (channel.findtext(required) or "").strip():
            problems.append(f"channel lacks <{required}>")
    if channel.find(ATOM + "link[@rel='self']") is None:
        problems.append("channel lacks atom:link rel=self")
    for name in ("lastBuildDate", "pubDate"):
        value = channel.findtext(name)
        if value is not None and email.utils.parsedate_tz(value) is None:
            problems.append(f"channel {name} is not an RFC 822 date: {value!r}")
    ttl = channel.findtext("ttl")
    if ttl is not None and not ttl.isdigit():
        problems.append(f"ttl is not a number: {ttl!r}")
    guids: set[str] = set()
    for index, item in enumerate(channel.iterfind("item")):
        if not (item.findtext("title") or item.findtext("description")):
            problems.append(f"item {index} has neither title nor description")
        guid = item.find("guid")
        if guid is not None:
            if guid.text in guids:
                problems.append(f"item {index} repeats guid {guid.text!r}")
            guids.add(guid.text or "")
            if guid.get("isPermaLink") not in (None, "true", "false"):
                problems.append(f"item {index} has a bad isPermaLink")
        date = item.findtext("pubDate")
        if date is not None and email.utils.parsedate_tz(date) is None:
            problems.append(f"item {index} pubDate is not RFC 822: {date!r}")
        source = item.find("source")
        if source is not None and not source.get("url"):
            problems.append(f"item {index} <source> lacks url")
        problems += _enclosure_problems(item, f"item {index}")
    return problems


MEDIA = "{http://search.yahoo.com/mrss/}"


def _enclosure_problems(item: etree._Element, where: str) -> list[str]:
    """The W3C feed validator's enclosure rules: one per item, with url (http), length (a
    number) and type (a MIME type) all present; Media RSS elements need a url."""
    problems: list[str] = []
    enclosures = item.findall("enclosure")
    if len(enclosures) > 1:
        problems.append(f"{where} has {len(enclosures)} enclosures (RSS 2.0 allows one)")
    for enclosure in enclosures:
        if not (enclosure.get("url") or "").startswith(("http://", "https://")):
            problems.append(f"{where} enclosure url is not http: {enclosure.get('url')!r}")
        if not (enclosure.get("length") or "").isdigit():
            problems.append(f"{where} enclosure length is not a number")
        if not re.fullmatch(r"[\w.+-]+/[\w.+-]+", enclosure.get("type") or ""):
            problems.append(f"{where} enclosure type is not a MIME type")
    for element in item.iter(MEDIA + "content", MEDIA + "thumbnail"):
        if not element.get("url"):
            problems.append(f"{where} {element.tag} lacks url")
    return problems


def check_atom(body: bytes) -> list[str]:
    problems: list[str] = []
    root = etree.fromstring(body, STRICT)
    if root.tag != ATOM + "feed":
        return ["root is not atom:feed"]

    def one(parent: etree._Element, name: str, where: str) -> etree._Element | None:
        found = parent.findall(ATOM + name)
        if len(found) != 1:
            problems.append(f"{where} must have exactly one atom:{name}, has {len(found)}")
            return None
        return found[0]

    for name in ("id", "title", "updated"):
        one(root, name, "feed")
    feed_id = root.findtext(ATOM + "id") or ""
    if not IRI.match(feed_id):
        problems.append(f"feed id is not an IRI: {feed_id!r}")
    if not RFC3339.match(root.findtext(ATOM + "updated") or ""):
        problems.append("feed updated is not RFC 3339")
    if root.find(ATOM + "link[@rel='self']") is None:
        problems.append("feed lacks link rel=self")
    feed_has_author = root.find(ATOM + "author/" + ATOM + "name") is not None
    ids: set[str] = set()
    for index, entry in enumerate(root.iterfind(ATOM + "entry")):
        where = f"entry {index}"
        for name in ("id", "title", "updated"):
            one(entry, name, where)
        entry_id = entry.findtext(ATOM + "id") or ""
        if not IRI.match(entry_id):
            problems.append(f"{where} id is not an IRI: {entry_id!r}")
        if entry_id in ids:
            problems.append(f"{where} repeats id {entry_id!r}")
        ids.add(entry_id)
        for name in ("updated", "published"):
            value = entry.findtext(ATOM + name)
            if value is not None and not RFC3339.match(value):
                problems.append(f"{where} {name} is not RFC 3339: {value!r}")
        if not feed_has_author and entry.find(ATOM + "author/" + ATOM + "name") is None:
            problems.append(f"{where} has no author and the feed has none")
        content = entry.find(ATOM + "content")
        if content is None and entry.find(ATOM + "link") is None:
            problems.append(f"{where} has neither content nor an alternate link")
        source = entry.find(ATOM + "source")
        if source is not None:  # RFC 4287 4.2.11: the source feed's id, title and updated
            for name in ("id", "title", "updated"):
                one(source, name, f"{where} source")
            if not IRI.match(source.findtext(ATOM + "id") or ""):
                problems.append(f"{where} source id is not an IRI")
            if not RFC3339.match(source.findtext(ATOM + "updated") or ""):
                problems.append(f"{where} source updated is not RFC 3339")
        for link in entry.iterfind(ATOM + "link[@rel='enclosure']"):
            if not link.get("href") or not (link.get("length") or "0").isdigit():
                problems.append(f"{where} enclosure link lacks href or has a bad length")
            if not link.get("type"):
                problems.append(f"{where} enclosure link lacks a type")
        for text_construct in ("title", "summary", "content"):
            element = entry.find(ATOM + text_construct)
            if element is not None and element.get("type", "text") not in ("text", "html", "xhtml"):
                problems.append(f"{where} {text_construct} has a bad type")
    return problems


def check_json_feed(body: bytes) -> list[str]:
    document = json.loads(body)
    validator = jsonschema.Draft202012Validator(
        JSON_FEED_SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    problems = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(document)]
    ids = [item.get("id") for item in document.get("items", [])]
    if len(ids) != len(set(ids)):
        problems.append("repeated item ids")
    return problems


CHECKS = {"xml": check_rss, "atom": check_atom, "json": check_json_feed}
