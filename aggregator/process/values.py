"""What processing steps take and give. Holds no business logic."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from aggregator.model import ParsedItem


@dataclass(frozen=True, slots=True)
class Dropped:
    """A step's answer for an item that must not be stored (``reason`` is one line)."""

    reason: str


@dataclass(frozen=True, slots=True)
class FetchedPage:
    """An item's web page: the address it came from (after redirects) and its text."""

    url: str
    text: str


PageFetch = Callable[[str], FetchedPage]
"""Fetch one page by URL; raises ``AggregatorError`` (the orchestrator gives one that goes
through the source's fetcher, with its limits, deadline and network rules)."""


@dataclass(frozen=True, slots=True)
class ProcessContext:
    """What a step may use besides the item.

    ``fetch_page`` is None where nothing may be fetched (a step that needs the network then
    keeps the item as it is). ``needs_content`` is False for an item stored from another
    source: this source only adds its category, so its body is not written and not worth
    a page fetch. ``warnings`` collects what a step could not do (``warn``)."""

    source_id: str
    fetch_page: PageFetch | None = None
    needs_content: bool = True
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        self.warnings.append(message)


Step = Callable[[ParsedItem, ProcessContext], "ParsedItem | Dropped"]
"""One configured step, its patterns and selectors compiled."""


def with_texts(item: ParsedItem, changes: Mapping[str, str]) -> ParsedItem:
    """The item with these text fields set; the item itself when there are none."""
    if not changes:
        return item
    fields: dict[str, Any] = dict(changes)
    return replace(item, **fields)
