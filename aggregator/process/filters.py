"""``keep`` and ``block``: a regular expression searched in an item's named fields.

``block`` drops an item when the pattern is found in any of the fields; ``keep`` drops it
when the pattern is found in none. ``content`` is the item's body: its content, else its
summary (an RSS feed's description). Markup in them is not searched (a pattern ``div``
must not match every item with a ``<div>``): their text is.
Model: miniflux's block and keep rules (``internal/reader/processor``).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Sequence

from aggregator.config.steps import Match
from aggregator.model import ParsedItem
from aggregator.process.values import Dropped, ProcessContext, Step

_TAG = re.compile(r"<[^>]*>")
_MARKUP_FIELDS = frozenset(("content", "summary"))


def markup_text(value: str) -> str:
    """The text of an HTML fragment: tags out, character references read."""
    if "<" in value:
        value = _TAG.sub(" ", value)
    return html.unescape(value) if "&" in value else value


def field_texts(item: ParsedItem, fields: Sequence[str]) -> Iterator[tuple[str, str]]:
    """(field, text) for each named field that has a value; ``categories`` is the item's
    tags and the name its category is filed under."""
    for name in fields:
        if name == "categories":
            for tag in item.tags:
                yield name, tag
            if item.category_name:
                yield name, item.category_name
            continue
        # content: the item's body, which many RSS feeds give only as the description
        value = (item.content or item.summary) if name == "content" else getattr(item, name)
        if value:
            yield name, markup_text(value) if name in _MARKUP_FIELDS else value


def build_block(options: Match) -> Step:
    pattern = re.compile(options.pattern)
    fields = options.fields

    def block(item: ParsedItem, context: ProcessContext) -> ParsedItem | Dropped:
        for name, text in field_texts(item, fields):
            found = pattern.search(text)
            if found:
                return Dropped(f"block: {name} has {found.group(0)!r}")
        return item

    return block


def build_keep(options: Match) -> Step:
    pattern = re.compile(options.pattern)
    fields = options.fields
    reason = f"keep: no {options.pattern!r} in {', '.join(fields)}"

    def keep(item: ParsedItem, context: ProcessContext) -> ParsedItem | Dropped:
        if any(pattern.search(text) for _, text in field_texts(item, fields)):
            return item
        return Dropped(reason)

    return keep
