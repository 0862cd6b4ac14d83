"""``rewrite``: elements removed by CSS selector, regular-expression replacements, and
tracking parameters dropped from links.

* ``remove`` parses content and summary (only then: without a selector no HTML is
  parsed) and drops every matching element with its children; the text after it stays.
* ``replace`` runs ``re.sub`` over the named fields (``with`` may use ``\\1``).
* ``drop_query`` removes query parameters whose name matches one of the glob patterns
  (``utm_*``) from the item's link and from ``href``/``src`` attributes in content and
  summary, so the same article reached with ``?from=mirror`` is one link. The other
  parameters keep their order and their spelling.

Model: miniflux's rewrite rules (``internal/reader/rewrite``), which remove by selector
and strip tracking parameters (``internal/reader/urlcleaner``).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import unquote_plus

from aggregator.config.steps import Rewrite
from aggregator.model import ParsedItem
from aggregator.process.values import Dropped, ProcessContext, Step, with_texts

_URL_ATTRIBUTE = re.compile(r"""(\b(?:href|src)\s*=\s*)(["'])(.*?)\2""", re.I | re.S)


def build_rewrite(options: Rewrite) -> Step:
    edits: list[Callable[[ParsedItem], ParsedItem]] = []
    if options.remove:
        edits.append(_remover(options.remove))
    for replacement in options.replace:
        pattern = re.compile(replacement.pattern)
        edits.append(_replacer(pattern, replacement.with_, replacement.fields))
    if options.drop_query:
        edits.append(_query_dropper(options.drop_query))

    def rewrite(item: ParsedItem, context: ProcessContext) -> ParsedItem | Dropped:
        for edit in edits:
            item = edit(item)
        return item

    return rewrite


# --------------------------------------------------------------------------- remove


def _remover(selectors: Sequence[str]) -> Callable[[ParsedItem], ParsedItem]:
    from lxml.cssselect import CSSSelector

    compiled = [CSSSelector(selector) for selector in selectors]

    def remove(item: ParsedItem) -> ParsedItem:
        changes = {
            name: edited
            for name in ("content", "summary")
            if (value := getattr(item, name)) and "<" in value
            if (edited := remove_elements(value, compiled)) is not None
        }
        return with_texts(item, changes)

    return remove


def remove_elements(fragment: str, selectors: Sequence[Any]) -> str | None:
    """The fragment without the elements the selectors match; None when none matched
    (the text is then kept byte for byte)."""
    import lxml.etree
    import lxml.html

    try:
        root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    except (lxml.etree.ParserError, ValueError):  # nothing an HTML parser can read
        return None
    found = [element for selector in selectors for element in selector(root)]
    if not found:
        return None
    for element in found:
        if element.getparent() is not None:  # not inside one removed already
            element.drop_tree()
    inner = (root.text or "") + "".join(
        lxml.html.tostring(child, encoding="unicode") for child in root
    )
    return inner.strip()


# --------------------------------------------------------------------------- replace


def _replacer(
    pattern: re.Pattern[str], with_: str, fields: Sequence[str]
) -> Callable[[ParsedItem], ParsedItem]:
    def substitute(item: ParsedItem) -> ParsedItem:
        changes = {}
        for name in fields:
            value = getattr(item, name)
            if value:
                edited = pattern.sub(with_, value)
                if edited != value:
                    changes[name] = edited
        return with_texts(item, changes)

    return substitute


# --------------------------------------------------------------------------- drop_query


def _query_dropper(patterns: Sequence[str]) -> Callable[[ParsedItem], ParsedItem]:
    names = re.compile("|".join(fnmatch.translate(p) for p in patterns))

    def is_tracking(name: str) -> bool:
        return names.match(name) is not None

    def attribute(found: re.Match[str]) -> str:
        value = found.group(3)
        if "?" not in value:
            return found.group(0)
        plain = value.replace("&amp;", "&")
        cleaned = drop_query(plain, is_tracking)
        if cleaned == plain:
            return found.group(0)
        return f"{found.group(1)}{found.group(2)}{cleaned.replace('&', '&amp;')}{found.group(2)}"

    def clean(item: ParsedItem) -> ParsedItem:
        changes = {}
        if item.link and "?" in item.link:
            link = drop_query(item.link, is_tracking)
            if link != item.link:
                changes["link"] = link
        for name in ("content", "summary"):
            value = getattr(item, name)
            if value and "?" in value:
                edited = _URL_ATTRIBUTE.sub(attribute, value)
                if edited != value:
                    changes[name] = edited
        return with_texts(item, changes)

    return clean


def drop_query(url: str, is_tracking: Callable[[str], bool]) -> str:
    """``url`` without the query parameters ``is_tracking`` names; the rest as written."""
    head, mark, rest = url.partition("?")
    if not mark:
        return url
    query, hash_mark, fragment = rest.partition("#")
    kept = [
        part
        for part in query.split("&")
        if part and not is_tracking(unquote_plus(part.partition("=")[0]))
    ]
    return head + ("?" + "&".join(kept) if kept else "") + hash_mark + fragment
