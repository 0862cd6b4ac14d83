"""Turning a body into a ``ParsedFeed``: RSS 0.9x/1.0/2.0 and Atom via feedparser, JSON
Feed 1.0/1.1, and JSON list APIs through a configured field map.

Pure: bytes in, values out. Encoding is settled here before any parser sees the bytes:

1. a byte-order mark wins;
2. then the charset the HTTP header or the XML declaration names, with GB2312 and GBK read
   as GB18030 (their superset: publishers who declare gb2312 routinely use characters
   outside it, such as 镕), and Big5 as Big5-HKSCS;
3. when the declared charset cannot decode the bytes (a mislabelled feed: "iso-8859-1"
   over UTF-8 Chinese), UTF-8 is tried, then charset_normalizer's guess.

The text is then handed to feedparser as UTF-8 with the declaration rewritten, so no
parser ever guesses differently from us.
"""

from __future__ import annotations

import calendar
import codecs
import email.utils
import html
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any, cast
from urllib.parse import urljoin, urlsplit

from aggregator.errors import ParseError
from aggregator.ingest.fastparse import parse_fast
from aggregator.model import ParsedFeed, ParsedItem
from aggregator.text import xml_safe

_XML_DECL = re.compile(rb"^\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._:-]+)[\"']", re.I)
_CHARSET = re.compile(r"charset\s*=\s*\"?([A-Za-z0-9._:-]+)", re.I)
_TAG = re.compile(r"<[^>]*>")
_MARKUP = re.compile(r"[<&]")
_CHAR_REF = re.compile(r"&#(?:[xX]([0-9A-Fa-f]+)|([0-9]+));")
# Block-level tags separate words; inline ones (<b>, <span>) sit inside them, and Chinese
# has no spaces between words, so they must vanish without a trace.
_BLOCK_TAG = re.compile(r"</?(?:p|br|div|li|ul|ol|h[1-6]|tr|td|th|table|blockquote)\b[^>]*>", re.I)
_ALIASES = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "big5": "big5hkscs",
    "cp950": "big5hkscs",
}
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


@dataclass(frozen=True, slots=True)
class ParseRules:
    """What the source config says about reading its bodies."""

    kind: str = "auto"  # auto | rss | atom | jsonfeed | json
    base_url: str | None = None
    source_tz: tzinfo = UTC  # for dates given without an offset
    category_from: str | None = None
    items_path: str | None = None
    fields: Mapping[str, str | None] | None = None
    date_format: str | None = None


# --------------------------------------------------------------------------- encodings


def _canonical(name: str) -> str | None:
    try:
        codec = codecs.lookup(name).name
    except LookupError:
        return None
    return _ALIASES.get(codec, _ALIASES.get(name.lower(), codec))


def decode_body(body: bytes, content_type: str | None = None) -> tuple[str, str]:
    """Decode a body to text; returns (text, the encoding used)."""
    for bom, name in _BOMS:
        if body.startswith(bom):
            return body.decode(name, errors="replace"), name  # these codecs consume the BOM
    declared: list[str] = []
    if content_type and (found := _CHARSET.search(content_type)):
        declared.append(found.group(1))
    if found_decl := _XML_DECL.match(body[:512]):
        declared.append(found_decl.group(1).decode("ascii"))
    if not body.isascii():
        # Valid UTF-8 with multi-byte sequences is UTF-8, whatever the label says: a
        # single-byte charset such as iso-8859-1 "decodes" any bytes into mojibake, and
        # real GBK text is practically never valid UTF-8 by accident.
        try:
            return body.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            pass
    for name in [*declared, "utf-8"]:
        codec = _canonical(name)
        if codec is None:
            continue
        try:
            return body.decode(codec), codec
        except UnicodeDecodeError:
            continue
    import charset_normalizer  # only for bodies no declared charset decodes

    guess = charset_normalizer.from_bytes(body).best()
    if guess is not None and guess.encoding:
        codec = _canonical(guess.encoding) or "utf-8"
        return body.decode(codec, errors="replace"), codec
    return body.decode("utf-8", errors="replace"), "utf-8"


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

    return _CHAR_REF.sub(keep, text) if "&#" in text else text


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
    labelled = _CHARSET.search(content_type) if content_type else None
    if labelled and _canonical(labelled.group(1)) != "utf-8":
        return False
    if body.startswith(b"<?xml") and (declared := _XML_DECL.match(body[:512])):
        return _canonical(declared.group(1).decode("ascii")) == "utf-8"
    return True


def _as_utf8_xml(text: str) -> bytes:
    """The text as UTF-8 bytes with any XML declaration saying so."""
    stripped = text.lstrip()
    if stripped.startswith("<?xml"):
        end = stripped.find("?>")
        if end != -1:
            stripped = '<?xml version="1.0" encoding="utf-8"?>' + stripped[end + 2 :]
    return stripped.encode("utf-8")


# --------------------------------------------------------------------------- dates


def parse_date(
    raw: object, source_tz: tzinfo = UTC, date_format: str | None = None
) -> tuple[datetime, int] | None:
    """A date string to (aware UTC datetime, the original UTC offset in minutes).

    RFC 822 (RSS), RFC 3339/ISO 8601 (Atom, JSON Feed) and a configured strptime format;
    a date without an offset is read in ``source_tz``. None when unreadable.
    """
    if raw is None:
        return None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        if raw > 1e11:  # milliseconds since the epoch, as JSON APIs often give
            raw = raw / 1000
        try:
            moment = datetime.fromtimestamp(raw, tz=UTC)
            return moment, _offset_minutes(moment.astimezone(source_tz))
        except (OverflowError, OSError, ValueError):  # NaN, or beyond years 1 to 9999
            return None
    text = str(raw).strip()
    if not text:
        return None
    parsed: datetime | None = None
    if date_format:
        try:
            parsed = datetime.strptime(text, date_format)
        except ValueError:
            parsed = None
    if parsed is None and not text[0].isalpha():  # ISO 8601 never starts with a letter
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
    if parsed is None:
        parsed = _rfc822(text)
    if parsed is None:
        try:
            parsed = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            parsed = None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=source_tz)
    try:
        return parsed.astimezone(UTC), _offset_minutes(parsed)
    except OverflowError:  # 0001-01-01T00:00+01:00 is in year 0 in UTC
        return None


_RFC822 = re.compile(
    r"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?(\d{1,2}) "
    # a year from 1000 on: email.utils reads "0062" as 2062
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ([12]\d{3}) "
    r"(\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})"
)
_MONTHS = {
    name: n
    for n, name in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"],
        start=1,
    )
}
_OFFSETS: dict[int, tzinfo] = {}


def _rfc822(text: str) -> datetime | None:
    """The usual RSS date (``Fri, 28 Jun 2024 17:59:55 +0800``) read by one regex: what
    email.utils reads from it, in a third of the time. None for any other shape."""
    found = _RFC822.fullmatch(text)
    if found is None:
        return None
    day, month, year, hour, minute, second, sign, off_h, off_m = found.groups()
    offset = (int(off_h) * 60 + int(off_m)) * (-1 if sign == "-" else 1)
    if sign == "-" and not offset:
        return None  # -0000: "zone unknown" (RFC 5322), which email.utils leaves naive
    zone = _OFFSETS.get(offset)
    if zone is None:
        zone = _OFFSETS.setdefault(offset, timezone(timedelta(minutes=offset)))
    try:
        return datetime(
            int(year), _MONTHS[month], int(day), int(hour), int(minute), int(second), tzinfo=zone
        )
    except ValueError:  # 31 Feb, 24:00: email.utils decides
        return None


def _offset_minutes(moment: datetime) -> int:
    offset = moment.utcoffset()
    return int(offset.total_seconds() // 60) if offset is not None else 0


# --------------------------------------------------------------------------- helpers


def plain_text(value: str | None, checked: bool = False) -> str:
    """Markup removed, entities decoded, whitespace folded: titles are plain text.
    ``checked``: ``value`` is known to hold no character XML forbids (decoded entities
    are filtered all the same)."""
    if not value:
        return ""
    # most titles hold neither markup nor entities: skip the three passes over them
    text = value
    if _MARKUP.search(value):
        text = html.unescape(_TAG.sub("", _BLOCK_TAG.sub(" ", value)))
    if not (checked and text is value):
        text = xml_safe(text)
    return " ".join(text.split())


def _clean(value: object, checked: bool = False) -> str | None:
    """A field's text, stripped, without characters XML forbids (``checked``: known to
    hold none); None when empty."""
    if value is None:
        return None
    text = (str(value) if checked else xml_safe(str(value))).strip()
    return text or None


def _web_link(link: str | None, base: str | None = None) -> str | None:
    """An item's link, resolved against ``base``: http and https only. A guid standing
    in for a link ("urn:..", "12345") links nowhere, and a ``javascript:`` or ``data:``
    link must never reach a reader."""
    if link is None:
        return None
    try:
        link = urljoin(base, link) if base else link
        if "[" in link or not link.isascii():  # what urlsplit can refuse; skip it otherwise
            urlsplit(link)
    except ValueError:  # "http://[x" (an unclosed IPv6 host) is no link at all
        return None
    return link if link.lower().startswith(("http://", "https://")) else None


def lookup(record: Any, path: str | None) -> Any:
    """A dotted path (``data.list``, ``authors.0.name``) into nested dicts and lists."""
    if not path:
        return None
    current = record
    for part in path.split("."):
        if isinstance(current, Mapping):
            current = current.get(part)
        elif isinstance(current, Sequence) and not isinstance(current, str) and part.isdigit():
            index = int(part)
            current = current[index] if index < len(current) else None
        else:
            return None
        if current is None:
            return None
    return current


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
        return _clean(author, checked=True)  # plain_text made it XML-safe already
    value = lookup(raw.get("entry"), field)  # a dotted path: feedparser path only
    return plain_text(str(value)) or None if value is not None else None


def build_item(raw: Mapping[str, Any], rules: ParseRules, checked: bool = False) -> ParsedItem:
    """One entry from either XML path's raw fields (title, link, guid, summary, content,
    author, dates, tags, source), normalised the same way for both. ``checked``: the
    document is known to hold no character XML forbids, so its texts skip that filter."""
    content = _clean(raw["content"], checked)
    summary = _clean(raw["summary"], checked)
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
            dated = moment, _offset_minutes(moment.astimezone(rules.source_tz))
        except (OverflowError, ValueError):  # feedparser read a year outside 1 to 9999
            dated = None
    updated_text = dates.get("updated")
    # Atom entries often give the same text twice: parse it once
    same = dated is not None and updated_text == dated_from
    updated = dated if same else parse_date(updated_text, rules.source_tz)
    author = plain_text(raw["author"], checked) or None
    link = _web_link(_clean(raw["link"], checked))
    return ParsedItem(
        title=plain_text(raw["title"], checked),
        link=link,
        guid=_clean(raw["guid"], checked),
        summary=summary,
        content=content,
        author=author,
        published_at=dated[0] if dated else None,
        published_offset_minutes=dated[1] if dated else None,
        updated_at=updated[0] if updated else None,
        category_name=_category_name(raw, rules.category_from, author, checked),
        tags=tuple(str(tag) for tag in raw["tags"]),
    )


def _author(entry: Mapping[str, Any]) -> str | None:
    """The author's name: Atom's name element, else RSS's author/dc:creator text."""
    detail = _raw(entry, "author_detail")
    if isinstance(detail, Mapping) and detail.get("name"):
        return str(detail["name"])
    author = _raw(entry, "author")
    return str(author) if author else None


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
        "tags": [t for t in (_clean(tag.get("term")) for tag in entry.get("tags") or []) if t],
        "source": lookup(entry, "source.title"),
        "entry": entry,
    }


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
            return replace(fast, title=plain_text(fast.title) or None)
    text, encoding = decode_body(body, content_type)
    if not text.strip():
        raise ParseError("empty body")
    utf8 = _as_utf8_xml(_drop_forbidden_refs(text))
    # as_is and read as UTF-8: the fast path has just declined these very bytes
    if fast_allowed and not (as_is and encoding == "utf-8"):
        fast = parse_fast(utf8, rules.base_url, lambda raw: build_item(raw, rules))
        if fast is not None:
            return replace(fast, title=plain_text(fast.title) or None)
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
    warnings: list[str] = []
    if result.get("bozo") and (problem := result.get("bozo_exception")) is not None:
        root = _root_name(text)
        if root and not text.rstrip().endswith(f"</{root}>"):
            # Cut off (a proxy or the publisher gave up): the last item would be stored
            # half-written, so none is; the last good items stay, and the next poll retries.
            raise ParseError(f"truncated: the body ends before </{root}> ({len(body)} bytes)")
        warnings.append(f"not well-formed, read leniently: {type(problem).__name__}")
    items = tuple(build_item(_feedparser_raw(entry), rules) for entry in entries)
    return ParsedFeed(
        title=plain_text(feed_meta.get("title")) or None,
        link=_clean(feed_meta.get("link")),
        items=items,
        version=version or "unknown",
        warnings=tuple(warnings),
    )


# --------------------------------------------------------------------------- JSON


def _load_json(body: bytes, content_type: str | None) -> Any:
    text, _ = decode_body(body, content_type)
    try:
        return json.loads(text)
    except ValueError as e:
        raise ParseError(f"not valid JSON: {e}") from e


def _parse_json_feed(data: Any, rules: ParseRules) -> ParsedFeed:
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise ParseError("not a JSON Feed (no items list)")
    version = str(data.get("version", ""))
    base = _clean(data.get("home_page_url")) or rules.base_url
    items: list[ParsedItem] = []
    for raw in data["items"]:
        if not isinstance(raw, dict):
            continue
        authors = raw.get("authors") or ([raw["author"]] if raw.get("author") else [])
        author = (
            plain_text(authors[0].get("name")) if authors and isinstance(authors[0], dict) else None
        )
        dated = parse_date(raw.get("date_published"), rules.source_tz)
        updated = parse_date(raw.get("date_modified"), rules.source_tz)
        text = _clean(raw.get("content_text"))
        content = _clean(raw.get("content_html")) or (html.escape(text) if text else None)
        link = _web_link(_clean(raw.get("url")), base)
        tags = tuple(str(t) for t in raw.get("tags") or [] if isinstance(t, str | int))
        category_name = None
        if rules.category_from == "author":
            category_name = author
        elif rules.category_from:
            value = lookup(raw, rules.category_from)
            category_name = plain_text(str(value)) or None if value is not None else None
        items.append(
            ParsedItem(
                title=plain_text(raw.get("title")) or plain_text(raw.get("summary"))[:80],
                link=link,
                guid=_clean(raw.get("id")),
                summary=_clean(raw.get("summary")),
                content=content,
                author=author or None,
                published_at=dated[0] if dated else None,
                published_offset_minutes=dated[1] if dated else None,
                updated_at=updated[0] if updated else None,
                category_name=category_name,
                tags=tags,
            )
        )
    kind = "jsonfeed11" if version.endswith("1.1") else "jsonfeed10"
    return ParsedFeed(
        title=plain_text(data.get("title")) or None, link=base, items=tuple(items), version=kind
    )


def _parse_json_api(data: Any, rules: ParseRules) -> ParsedFeed:
    fields = rules.fields or {}
    records = lookup(data, rules.items_path) if rules.items_path else data
    if not isinstance(records, list):
        raise ParseError(f"items_path {rules.items_path!r} does not lead to a list")
    items: list[ParsedItem] = []
    skipped = 0
    for record in records:
        api_id = _clean(lookup(record, fields.get("id")))
        title = plain_text(_clean(lookup(record, fields.get("title"))))
        if not api_id or not title:
            skipped += 1
            continue
        dated = parse_date(
            lookup(record, fields.get("published")), rules.source_tz, rules.date_format
        )
        link = _web_link(_clean(lookup(record, fields.get("link"))), rules.base_url)
        items.append(
            ParsedItem(
                title=title,
                link=link,
                guid=api_id,
                summary=_clean(lookup(record, fields.get("summary"))),
                content=_clean(lookup(record, fields.get("content"))),
                author=plain_text(_clean(lookup(record, fields.get("author")))) or None,
                published_at=dated[0] if dated else None,
                published_offset_minutes=dated[1] if dated else None,
                category_name=plain_text(_clean(lookup(record, fields.get("category_from"))))
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
    value = lookup(_load_json(body, content_type), content_path)
    return _clean(value) if isinstance(value, str) else None


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


def _parse_body(body: bytes, content_type: str | None, rules: ParseRules) -> ParsedFeed:
    if not body.strip():
        raise ParseError("empty body")
    if rules.kind == "json":
        return _parse_json_api(_load_json(body, content_type), rules)
    head = body.lstrip()[:1]
    if rules.kind == "jsonfeed" or (rules.kind == "auto" and head in (b"{", b"[")):
        data = _load_json(body, content_type)
        if rules.kind == "auto" and not (
            isinstance(data, dict) and "jsonfeed.org" in str(data.get("version", ""))
        ):
            raise ParseError("JSON that is not a JSON Feed (for a JSON API set type: json)")
        return _parse_json_feed(data, rules)
    return parse_xml(body, content_type, rules)
