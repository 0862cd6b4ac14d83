"""Stable item ids: which id an item gets, so it is stored once however often it comes.

Pure functions. The chain, most trustworthy first:

1. a configured regex (``id_from: {regex: ...}``) over the link, then the guid;
2. the East Money infoCode (``NW202201252261008680``) from the link's or guid's query
   string (``?infoCode=``) or path: it names the article itself, so the same article from
   two different upstream feeds, under different guids, is one item;
3. the guid: unique by contract (RSS 2.0 ``<guid>``, Atom ``<id>``). A guid that is a URL
   or URN is global; any other guid (``12345``) is only unique inside its own feed, so it
   is scoped by the source id;
4. the link, normalised: items with no guid but a permalink;
5. a content hash of title, summary and content: items with neither (RSS 0.9x allows it).

Ids longer than ``MAX_ID_LENGTH`` keep their prefix and end in a hash so the unique index
stays small.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from aggregator.model import IdRule, ParsedItem

MAX_ID_LENGTH = 255
_INFOCODE_IN_PATH = re.compile(r"(?<![A-Za-z0-9])([A-Z]{2}\d{18})(?![0-9])")
_INFOCODE_IN_QUERY = re.compile(r"[?&](?i:infocode)=([A-Z]{2}\d{18})(?=[&#]|$)")
_DECODED_OR_BRACKETS = re.compile(r"[%+\[\]]")
_GLOBAL_GUID = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|urn:|tag:)", re.IGNORECASE)

DEFAULT_RULE = IdRule()  # the chain from infoCode


def find_infocode(url: str | None) -> str | None:
    """The infoCode in a URL's query string (any case of the key) or path, if any."""
    if not url:
        return None
    # The common link (``...?infoCode=NW2022...``) is read with one regex (a fifth of the
    # parse's cost). Its answer is the parse's when the match lies in the query (after
    # the one "?", before any "#"), the URL has no other "infocode" and nothing the
    # parse would decode (% escapes, "+"), and urlsplit accepts it (ASCII, no brackets).
    found = _INFOCODE_IN_QUERY.search(url)
    if found is not None and url.isascii() and not _DECODED_OR_BRACKETS.search(url):
        query_at, fragment_at = url.find("?"), url.find("#")
        in_query = 0 <= query_at <= found.start() and not 0 <= fragment_at < found.start()
        if in_query and url.count("?") == 1 and url.lower().count("infocode") == 1:
            return found.group(1)
    return _parse_infocode(url)


def _parse_infocode(url: str) -> str | None:
    try:
        parts = urlsplit(url.strip())
    except ValueError:  # "http://[x" (an unclosed IPv6 host): no URL, so no infoCode
        return None
    for key, value in parse_qsl(parts.query, keep_blank_values=False):
        if key.lower() == "infocode" and _INFOCODE_IN_PATH.fullmatch(value.strip()):
            return value.strip()
    found = _INFOCODE_IN_PATH.search(parts.path)
    return found.group(1) if found else None


def normalize_link(url: str) -> str:
    """Scheme and host lowercased, fragment dropped: the same page, the same string."""
    parts = urlsplit(url.strip())
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path, parts.query, ""))


def _bounded(stable_id: str) -> str:
    if len(stable_id) <= MAX_ID_LENGTH:
        return stable_id
    digest = hashlib.sha256(stable_id.encode("utf-8")).hexdigest()
    return stable_id[: MAX_ID_LENGTH - 65] + "~" + digest


def _content_hash_id(item: ParsedItem) -> str:
    payload = "\x1f".join([item.title, item.summary or "", item.content or ""])
    return "hash:" + hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]


def _from_regex(item: ParsedItem, pattern: re.Pattern[str]) -> str | None:
    for candidate in (item.link, item.guid):
        if candidate and (found := pattern.search(candidate)):
            return found.group(1) if pattern.groups else found.group(0)
    return None


def stable_id(item: ParsedItem, source_id: str, rule: IdRule = DEFAULT_RULE) -> str:
    """The item's stable id (see the module docstring for the chain and its reasons)."""
    if rule.regex is not None and (matched := _from_regex(item, rule.regex)):
        return _bounded(matched)
    steps = ("infocode", "guid", "link", "hash")
    for step in steps[steps.index(rule.first) :]:
        if step == "infocode":
            code = find_infocode(item.link) or find_infocode(item.guid)
            if code:
                return code
        elif step == "guid" and item.guid and item.guid.strip():
            guid = item.guid.strip()
            if _GLOBAL_GUID.match(guid):
                return _bounded("guid:" + guid)
            return _bounded(f"guid:{source_id}:{guid}")
        elif step == "link" and item.link and item.link.strip():
            return _bounded("link:" + normalize_link(item.link))
    return _content_hash_id(item)


def identify(
    items: Iterable[ParsedItem], source_id: str, rule: IdRule = DEFAULT_RULE
) -> tuple[list[tuple[str, ParsedItem]], int]:
    """Pair items with their ids, keeping the first of repeated ids in one feed.

    Feeds do repeat a guid (a CMS that reuses ids, an item listed twice); the first
    occurrence is the one the publisher lists on top, so it wins and the rest are counted,
    never stored as a second item. Returns (pairs, number of repeats dropped).
    """
    seen: set[str] = set()
    pairs: list[tuple[str, ParsedItem]] = []
    dropped = 0
    for item in items:
        item_id = stable_id(item, source_id, rule)
        if item_id in seen:
            dropped += 1
            continue
        seen.add(item_id)
        pairs.append((item_id, item))
    return pairs, dropped
