"""Turning a body into a ``ParsedFeed``: RSS 0.9x/1.0/2.0 and Atom via feedparser, JSON
Feed 1.0/1.1, and JSON list APIs through a configured field map.

Pure: bytes in, values out. Encoding is settled before any parser sees the bytes
(encodings.py); the text is then handed to feedparser as UTF-8 with the declaration
rewritten, so no parser ever guesses differently from us.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, cast

from aggregator.errors import ParseError
from aggregator.ingest.encodings import (
    CHARSET_PARAMETER,
    XML_ENCODING,
    canonical,
    decode_body,
    wide_encoding,
)
from aggregator.ingest.fastparse import parse_fast
from aggregator.ingest.fields import (
    CHAR_REF,
    ParseRules,
    clean,
    lookup,
    offset_minutes,
    parse_date,
    plain_text,
    web_link,
)
from aggregator.ingest.htmllist import parse_html_list
from aggregator.ingest.jsonparse import (
    load_json,
    parse_json_api,
    parse_json_feed,
)
from aggregator.ingest.media import build_media
from aggregator.model import FeedHints, ParsedFeed, ParsedItem
from aggregator.text import xml_safe

_ROOT = re.compile(r"\s*<([A-Za-z_][\w:.-]*)")
_PROLOG = re.compile(r"\s*(?:<\?.*?\?>|<!--.*?-->|<!DOCTYPE(?:[^\[>]|\[.*?\])*>)", re.S | re.I)


def _root_name(text: str) -> str | None:
    """The name of the document's root element (after the prolog), if there is one."""
    position = 0
    while found := _PROLOG.match(text, position):
        if found.end() == position:
            break
        position = found.end()
    root = _ROOT.match(text, position)
    return root.group(1) if root else None


def _is_cut_short(text: str, root: str) -> bool:
    """Whether the document stops before its root element's end tag. What may follow that
    tag (comments, processing instructions, white space, or whatever a server appends,
    such as a cache stamp) does not make a complete document a truncated one."""
    closing = re.compile(rf"</{re.escape(root)}\s*>")
    at = text.rfind(f"</{root}")
    while at != -1:
        if closing.match(text, at):
            return False
        at = text.rfind(f"</{root}", 0, at)
    return True


def _drop_forbidden_refs(text: str) -> str:
    """The text without character references to what XML 1.0 forbids (``&#1;``,
    ``&#xD800;``, ``&#xFFFE;``, out of range): a strict parser rejects the whole document
    for one, feedparser's lenient one crashes on a lone surrogate, and none may reach an
    output anyway (``text.xml_safe``)."""

    def keep(found: re.Match[str]) -> str:
        digits = (found.group(1) or found.group(2)).lstrip("0")
        if len(digits) > 7:
            return ""
        code = int(digits or "0", 16 if found.group(1) else 10)
        return found.group(0) if code <= 0x10FFFF and xml_safe(chr(code)) else ""

    return CHAR_REF.sub(keep, text) if "&#" in text else text


# U+FDD0..U+FDEF in UTF-8: noncharacters XML allows and text.xml_safe removes (as DEL)
_NONCHARACTER_UTF8 = re.compile(rb"\xef\xb7[\x90-\xaf]")


def _is_utf8_as_is(body: bytes, content_type: str | None) -> bool:
    """Whether ``body`` is already what decoding, dropping forbidden references and
    ``_as_utf8_xml`` would hand the XML parser (but for the declaration's spelling): it
    starts with ``<``, has no byte-order mark and no character reference, and nothing
    names a charset but UTF-8. Decoding 100 KB and encoding it again cost a tenth of a
    feed's parse. Bytes that are not valid UTF-8 after all fail in the parser, and the
    feed goes the long way."""
    if not body.startswith(b"<") or (b"#" in body and b"&#" in body):
        return False  # (most feeds have no "#" at all, found at memchr speed)
    labelled = CHARSET_PARAMETER.search(content_type) if content_type else None
    if labelled and canonical(labelled.group(1)) != "utf-8":
        return False
    if body.startswith(b"<?xml") and (declared := XML_ENCODING.match(body[:512])):
        return canonical(declared.group(1).decode("ascii")) == "utf-8"
    return True


def _as_utf8_xml(text: str) -> bytes:
    """The text as UTF-8 bytes with any XML declaration saying so."""
    stripped = text.lstrip()
    if stripped.startswith("<?xml"):
        end = stripped.find("?>")
        if end != -1:
            stripped = '<?xml version="1.0" encoding="utf-8"?>' + stripped[end + 2 :]
    return stripped.encode("utf-8")


# --------------------------------------------------------------------------- XML feeds


def _raw(entry: Mapping[str, Any], key: str) -> Any:
    """The entry's own value: FeedParserDict.get maps some missing keys to others (and
    warns), e.g. ``updated`` to ``published``; we want what the feed said."""
    return dict.get(cast(dict[str, Any], entry), key)


def _category_name(
    raw: Mapping[str, Any], field: str | None, author: str | None, checked: bool = False
) -> str | None:
    if not field:
        return None
    # a category name is plain text, whichever field gives it (as titles and authors are)
    if field in ("tags", "category"):
        tags = raw["tags"]
        return plain_text(str(tags[0]), checked) or None if tags else None
    if field == "source":
        return plain_text(str(raw["source"] or ""), checked) or None
    if field == "author":
        return clean(author, checked=True)  # plain_text made it XML-safe already
    value = lookup(raw.get("entry"), field)  # a dotted path: feedparser path only
    return plain_text(str(value)) or None if value is not None else None


def build_item(raw: Mapping[str, Any], rules: ParseRules, checked: bool = False) -> ParsedItem:
    """One entry from either XML path's raw fields (title, link, guid, summary, content,
    author, dates, tags, source), normalised the same way for both. ``checked``: the
    document is known to hold no character XML forbids, so its texts skip that filter."""
    content = clean(raw["content"], checked)
    summary = clean(raw["summary"], checked)
    if summary is not None and summary == content:
        summary = None
    dates: Mapping[str, Any] = raw["dates"]
    dated = None
    dated_from = None
    for key in ("published", "updated", "created", "dc_date"):
        if dates.get(key) and (dated := parse_date(dates[key], rules.source_tz)):
            dated_from = dates[key]
            break
    if dated is None and raw.get("parsed_date") is not None:
        try:
            moment = datetime.fromtimestamp(calendar.timegm(raw["parsed_date"]), tz=UTC)
            dated = moment, offset_minutes(moment.astimezone(rules.source_tz))
        except (OverflowError, ValueError):  # feedparser read a year outside 1 to 9999
            dated = None
    updated_text = dates.get("updated")
    # Atom entries often give the same text twice: parse it once
    same = dated is not None and updated_text == dated_from
    updated = dated if same else parse_date(updated_text, rules.source_tz)
    author = plain_text(raw["author"], checked) or None
    link = web_link(clean(raw["link"], checked))
    return ParsedItem(
        title=plain_text(raw["title"], checked),
        link=link,
        guid=clean(raw["guid"], checked),
        summary=summary,
        content=content,
        author=author,
        published_at=dated[0] if dated else None,
        published_offset_minutes=dated[1] if dated else None,
        updated_at=updated[0] if updated else None,
        category_name=_category_name(raw, rules.category_from, author, checked),
        tags=tuple(str(tag) for tag in raw["tags"]),
        media=build_media(raw.get("media"), rules.base_url),
    )


def _author(entry: Mapping[str, Any]) -> str | None:
    """The author's name: Atom's name element, else RSS's author/dc:creator text."""
    detail = _raw(entry, "author_detail")
    if isinstance(detail, Mapping) and detail.get("name"):
        return str(detail["name"])
    author = _raw(entry, "author")
    return str(author) if author else None


def _feedparser_media(entry: Mapping[str, Any]) -> dict[str, Any] | None:
    """The raw media feedparser read (see ingest/media.py): enclosures are the links with
    rel="enclosure" (RSS <enclosure> becomes one), Media RSS in media_content/_thumbnail."""
    links = _raw(entry, "links") or []
    enclosures = [link for link in links if link.get("rel") == "enclosure"]
    contents = _raw(entry, "media_content") or []
    thumbnails = _raw(entry, "media_thumbnail") or []
    if not (enclosures or contents or thumbnails):
        return None
    return {"enclosures": enclosures, "contents": contents, "thumbnails": thumbnails}


def _feedparser_raw(entry: Mapping[str, Any]) -> dict[str, Any]:
    contents = entry.get("content") or []
    parsed_date = next(
        (
            _raw(entry, key)
            for key in ("published_parsed", "updated_parsed", "created_parsed")
            if _raw(entry, key)
        ),
        None,
    )
    return {
        "title": entry.get("title"),
        "link": entry.get("link"),
        "guid": entry.get("id"),
        "summary": entry.get("summary"),
        "content": contents[0].get("value") if contents else None,
        "author": _author(entry),
        "dates": {k: _raw(entry, k) for k in ("published", "updated", "created", "dc_date")},
        "parsed_date": parsed_date,
        "tags": [t for t in (clean(tag.get("term")) for tag in entry.get("tags") or []) if t],
        "source": lookup(entry, "source.title"),
        "media": _feedparser_media(entry),
        "entry": entry,
    }


_TTL = re.compile(rb"<ttl>\s*(\d{1,9})\s*</ttl>")
_SKIP_HOURS = re.compile(rb"<skipHours>(.*?)</skipHours>", re.S)
_SKIP_DAYS = re.compile(rb"<skipDays>(.*?)</skipDays>", re.S)
_HOUR = re.compile(rb"<hour>\s*(\d{1,2})\s*</hour>")
_DAY = re.compile(rb"<day>\s*([A-Za-z]+)\s*</day>")
_DAYS = {
    name.encode(): number
    for number, name in enumerate(
        ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    )
}


def feed_hints(xml: bytes) -> FeedHints | None:
    """An RSS channel's ``ttl``, ``skipHours`` and ``skipDays`` (RSS 2.0), read from the
    UTF-8 bytes either parser read (feedparser keeps only the last <hour>, and one
    reading for both paths keeps them equal). Hours are 0-23 (24, which RSS 0.91 used,
    is midnight); None when the feed gives none."""
    if b"<ttl>" not in xml and b"<skip" not in xml:  # most feeds: two memchr-speed scans
        return None
    ttl = _TTL.search(xml)
    hours = _SKIP_HOURS.search(xml)
    days = _SKIP_DAYS.search(xml)
    hints = FeedHints(
        ttl_minutes=int(ttl.group(1)) if ttl else None,
        skip_hours=frozenset(
            int(hour) % 24 for hour in _HOUR.findall(hours.group(1)) if int(hour) <= 24
        )
        if hours
        else frozenset(),
        skip_days=frozenset(
            _DAYS[day.lower()] for day in _DAY.findall(days.group(1)) if day.lower() in _DAYS
        )
        if days
        else frozenset(),
    )
    return hints if hints != FeedHints() else None


# category_from values the fast path can answer (a dotted path needs feedparser's entry)
FAST_CATEGORY_FIELDS = (None, "author", "source", "tags", "category")


def parse_xml(
    body: bytes, content_type: str | None, rules: ParseRules, allow_fast: bool = True
) -> ParsedFeed:
    """RSS or Atom: the lxml fast path when it accepts the feed, else feedparser."""
    fast_allowed = allow_fast and rules.category_from in FAST_CATEGORY_FIELDS
    as_is = _is_utf8_as_is(body, content_type)
    if fast_allowed and as_is:
        # lxml refuses the other characters xml_safe removes (controls, U+FFFE...) and
        # as_is rules out character references: none is in any text without these bytes
        # (two searches: one regex with both took ten times as long)
        checked = b"\x7f" not in body and _NONCHARACTER_UTF8.search(body) is None
        fast = parse_fast(body, rules.base_url, lambda raw: build_item(raw, rules, checked))
        if fast is not None:
            return replace(fast, title=plain_text(fast.title) or None, hints=feed_hints(body))
    text, encoding, charset_warning = decode_body(body, content_type)
    if not text.strip():
        raise ParseError("empty body")
    utf8 = _as_utf8_xml(_drop_forbidden_refs(text))
    warnings = [charset_warning] if charset_warning else []
    # as_is and read as UTF-8: the fast path has just declined these very bytes
    if fast_allowed and not (as_is and encoding == "utf-8"):
        fast = parse_fast(utf8, rules.base_url, lambda raw: build_item(raw, rules))
        if fast is not None:
            title = plain_text(fast.title) or None
            return replace(fast, title=title, warnings=tuple(warnings), hints=feed_hints(utf8))
    import feedparser  # the reference parser, needed only off the fast path

    result = feedparser.parse(
        utf8,
        response_headers={
            "content-type": "application/xml; charset=utf-8",
            "content-location": rules.base_url or "",
        },
        # Sanitizing and resolving relative URLs in HTML are ours (sanitize.py, against
        # the item's link). feedparser's own pass re-writes markup through sgmllib and
        # mangles text such as an escaped "<>" into "<???>".
        sanitize_html=False,
        resolve_relative_uris=False,
    )
    version = result.get("version") or ""
    entries = result.get("entries") or []
    feed_meta = result.get("feed") or {}
    if not version and not entries:
        problem = result.get("bozo_exception")
        if text.lstrip()[:15].lower().startswith(("<!doctype html", "<html")):
            raise ParseError("an HTML page, not a feed")
        detail = f": {type(problem).__name__}: {problem}" if problem else ""
        raise ParseError(f"not a feed (no RSS or Atom root element){detail}")
    if result.get("bozo") and (problem := result.get("bozo_exception")) is not None:
        root = _root_name(text)
        if root and _is_cut_short(text, root):
            # Cut off (a proxy or the publisher gave up): the last item would be stored
            # half-written, so none is; the last good items stay, and the next poll retries.
            raise ParseError(f"truncated: the body ends before </{root}> ({len(body)} bytes)")
        warnings.append(f"not well-formed, read leniently: {type(problem).__name__}")
    items = tuple(build_item(_feedparser_raw(entry), rules) for entry in entries)
    return ParsedFeed(
        title=plain_text(feed_meta.get("title")) or None,
        link=clean(feed_meta.get("link")),
        items=items,
        version=version or "unknown",
        warnings=tuple(warnings),
        hints=feed_hints(utf8),
    )


# --------------------------------------------------------------------------- entry point


def parse_body(body: bytes, content_type: str | None, rules: ParseRules) -> ParsedFeed:
    """Parse a fetched body according to the source's rules. Raises ParseError, also for
    any failure inside the third-party parsers (wrapped, never swallowed)."""
    try:
        return _parse_body(body, content_type, rules)
    except ParseError:
        raise
    except Exception as e:
        raise ParseError(f"parser failed: {type(e).__name__}: {e}") from e


def _warned(feed: ParsedFeed, warning: str | None) -> ParsedFeed:
    return replace(feed, warnings=(warning, *feed.warnings)) if warning else feed


def _parse_body(body: bytes, content_type: str | None, rules: ParseRules) -> ParsedFeed:
    if wide_encoding(body) is not None:
        # UTF-16 or UTF-32: what follows reads the bytes as ASCII-compatible (the first
        # character, the declaration), so they become UTF-8 first, saying so
        text = decode_body(body).text
        body, content_type = _as_utf8_xml(text), None
    if not body.strip():
        raise ParseError("empty body")
    if rules.kind == "html":
        return parse_html_list(body, content_type, rules)
    if rules.kind == "json":
        data, warning = load_json(body, content_type)
        return _warned(parse_json_api(data, rules), warning)
    head = body.lstrip()[:1]
    if rules.kind == "jsonfeed" or (rules.kind == "auto" and head in (b"{", b"[")):
        data, warning = load_json(body, content_type)
        if rules.kind == "auto" and not (
            isinstance(data, dict) and "jsonfeed.org" in str(data.get("version", ""))
        ):
            raise ParseError("JSON that is not a JSON Feed (for a JSON API set type: json)")
        return _warned(parse_json_feed(data, rules), warning)
    return parse_xml(body, content_type, rules)
