"""JSON bodies to a ``ParsedFeed``: JSON Feed 1.0/1.1, and JSON list APIs read through a
source's field map (``items_path``, ``fields``); a field of the wrong type is converted
or dropped with a warning, never the whole feed. Pure: bytes in, values out.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from datetime import tzinfo
from typing import Any

from aggregator.errors import ParseError
from aggregator.ingest.encodings import decode_body
from aggregator.ingest.fields import ParseRules, clean, lookup, parse_date, plain_text, web_link
from aggregator.ingest.media import json_feed_media
from aggregator.model import ParsedFeed, ParsedItem


def load_json(body: bytes, content_type: str | None) -> tuple[Any, str | None]:
    """The JSON value, and the charset warning of its decoding, if any."""
    text, _, warning = decode_body(body, content_type)
    try:
        return json.loads(text), warning
    except ValueError as e:
        raise ParseError(f"not valid JSON: {e}") from e


def _json_kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, dict):
        return "an object"
    return "a list" if isinstance(value, list) else type(value).__name__


class _JsonFields:
    """A JSON Feed's fields, each of the type the spec gives it or made so: a number
    where text belongs is read as its text, anything else is dropped; each such field
    is noted, and the feed carries one warning about them. One bad field no longer
    costs the whole feed (issue 13: ``{"id": "2", "title": 1000}``)."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def text(self, record: Mapping[str, Any], key: str, where: str) -> str | None:
        value = record.get(key)
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            self.problems.append(f"{where}.{key}: a number, read as text")
            return str(value)
        self.problems.append(f"{where}.{key}: {_json_kind(value)}, dropped")
        return None

    def item_id(self, record: Mapping[str, Any], where: str) -> str | None:
        value = record.get("id")
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)  # the spec: a number given as the id is read as its text
        return self.text(record, "id", where)

    def date(self, record: Mapping[str, Any], key: str, where: str, zone: tzinfo) -> Any:
        value = record.get(key)
        if value is not None and not isinstance(value, str):
            if isinstance(value, int | float) and not isinstance(value, bool):
                self.problems.append(f"{where}.{key}: a number, read as epoch seconds")
            else:
                self.problems.append(f"{where}.{key}: {_json_kind(value)}, dropped")
                value = None
        return parse_date(value, zone)

    def author(self, record: Mapping[str, Any], where: str) -> str | None:
        """The first author's name: 1.1's ``authors`` list, else 1.0's ``author``."""
        authors = record.get("authors")
        if authors and not isinstance(authors, list):
            self.problems.append(f"{where}.authors: {_json_kind(authors)}, dropped")
            return None
        if authors:
            first, at = authors[0], f"{where}.authors[0]"
        else:
            first, at = record.get("author"), f"{where}.author"
        if not first:
            return None
        if not isinstance(first, dict):
            self.problems.append(f"{at}: {_json_kind(first)}, dropped")
            return None
        return plain_text(self.text(first, "name", at)) or None

    def tags(self, record: Mapping[str, Any], where: str) -> tuple[str, ...]:
        given = record.get("tags")
        if given is None:
            return ()
        if not isinstance(given, list):
            self.problems.append(f"{where}.tags: {_json_kind(given)}, dropped")
            return ()
        kept = [t for t in given if isinstance(t, str | int) and not isinstance(t, bool)]
        if len(kept) < len(given):
            self.problems.append(f"{where}.tags: {len(given) - len(kept)} not text, dropped")
        return tuple(map(str, kept))

    def warning(self) -> str | None:
        if not self.problems:
            return None
        count = len(self.problems)
        more = f" (+{count - 3} more)" if count > 3 else ""
        return (
            f"JSON Feed: {count} field{'s' if count > 1 else ''} of the wrong type: "
            + "; ".join(self.problems[:3])
            + more
        )


def parse_json_feed(data: Any, rules: ParseRules) -> ParsedFeed:
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise ParseError("not a JSON Feed (no items list)")
    fields = _JsonFields()
    version = str(data.get("version", ""))
    base = clean(fields.text(data, "home_page_url", "feed")) or rules.base_url
    items: list[ParsedItem] = []
    for index, raw in enumerate(data["items"]):
        where = f"items[{index}]"
        if not isinstance(raw, dict):
            fields.problems.append(f"{where}: {_json_kind(raw)}, not an item: skipped")
            continue
        author = fields.author(raw, where)
        dated = fields.date(raw, "date_published", where, rules.source_tz)
        updated = fields.date(raw, "date_modified", where, rules.source_tz)
        text = clean(fields.text(raw, "content_text", where))
        content = clean(fields.text(raw, "content_html", where)) or (
            html.escape(text) if text else None
        )
        link = web_link(clean(fields.text(raw, "url", where)), base)
        summary = fields.text(raw, "summary", where)
        category_name = None
        if rules.category_from == "author":
            category_name = author
        elif rules.category_from:
            value = lookup(raw, rules.category_from)
            category_name = plain_text(str(value)) or None if value is not None else None
        items.append(
            ParsedItem(
                title=plain_text(fields.text(raw, "title", where)) or plain_text(summary)[:80],
                link=link,
                guid=clean(fields.item_id(raw, where)),
                summary=clean(summary),
                content=content,
                author=author,
                published_at=dated[0] if dated else None,
                published_offset_minutes=dated[1] if dated else None,
                updated_at=updated[0] if updated else None,
                category_name=category_name,
                tags=fields.tags(raw, where),
                media=json_feed_media(raw, base),
            )
        )
    kind = "jsonfeed11" if version.endswith("1.1") else "jsonfeed10"
    title = plain_text(fields.text(data, "title", "feed")) or None
    warning = fields.warning()
    return ParsedFeed(
        title=title,
        link=base,
        items=tuple(items),
        version=kind,
        warnings=(warning,) if warning else (),
    )


def parse_json_api(data: Any, rules: ParseRules) -> ParsedFeed:
    fields = rules.fields or {}
    records = lookup(data, rules.items_path) if rules.items_path else data
    if not isinstance(records, list):
        raise ParseError(f"items_path {rules.items_path!r} does not lead to a list")
    items: list[ParsedItem] = []
    skipped = 0
    for record in records:
        api_id = clean(lookup(record, fields.get("id")))
        title = plain_text(clean(lookup(record, fields.get("title"))))
        if not api_id or not title:
            skipped += 1
            continue
        dated = parse_date(
            lookup(record, fields.get("published")), rules.source_tz, rules.date_format
        )
        link = web_link(clean(lookup(record, fields.get("link"))), rules.base_url)
        items.append(
            ParsedItem(
                title=title,
                link=link,
                guid=api_id,
                summary=clean(lookup(record, fields.get("summary"))),
                content=clean(lookup(record, fields.get("content"))),
                author=plain_text(clean(lookup(record, fields.get("author")))) or None,
                published_at=dated[0] if dated else None,
                published_offset_minutes=dated[1] if dated else None,
                category_name=plain_text(clean(lookup(record, fields.get("category_from"))))
                or None,
                api_id=api_id,
            )
        )
    warnings = (f"{skipped} records without id or title skipped",) if skipped else ()
    return ParsedFeed(
        title=None, link=None, items=tuple(items), version="json-api", warnings=warnings
    )


def parse_content_body(body: bytes, content_type: str | None, content_path: str) -> str | None:
    """The article body from a JSON API's per-item content response."""
    value = lookup(load_json(body, content_type)[0], content_path)
    return clean(value) if isinstance(value, str) else None
