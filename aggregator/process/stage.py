"""``process_items``: one fetch's identified items through their source's pipeline.

Pure but for the page fetches a step makes through the context. Steps run once per new
or changed item, never for one this source gave unchanged before, and not again for an
item the same steps dropped before while the feed still lists it unchanged::

    for each (id, item):
        digest = hash of the item as the source gave it
        stored by this source with that digest    -> as it is (unchanged: not processed)
        dropped before with that digest, same steps -> counted as dropped, nothing else
        else: pipeline.run(item)                  -> processed item | Dropped(reason)

Change detection compares what the source gave, not what the steps made of it: the
digests are handed on to ``plan_items`` so the stored hash is the source's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from aggregator.model import DroppedItem, Holder, KnownItem, ParsedItem
from aggregator.process.steps import Pipeline
from aggregator.process.values import Dropped, PageFetch, ProcessContext


@dataclass(frozen=True, slots=True)
class ProcessedItems:
    """What a fetch's items became."""

    pairs: tuple[tuple[str, ParsedItem], ...]  # to plan, in feed order
    digests: Mapping[str, str]  # stable id -> hash of the item as the source gave it
    dropped: tuple[DroppedItem, ...]  # dropped by this fetch's steps: to remember
    dropped_count: int  # those, and the ones dropped before that the feed still lists
    warnings: tuple[str, ...]  # what a step could not do


def process_items(
    pairs: Sequence[tuple[str, ParsedItem]],
    known: Mapping[str, KnownItem],
    dropped_before: Mapping[str, tuple[str, str]],
    pipeline: Pipeline,
    digest: Callable[[ParsedItem], str],
    source_id: str,
    fetch_page: PageFetch | None = None,
) -> ProcessedItems:
    """See the module docstring. ``dropped_before`` maps an id to the (digest, pipeline
    fingerprint) it was dropped with; ``digest`` is the change hash (decide.py's)."""
    out: list[tuple[str, ParsedItem]] = []
    digests: dict[str, str] = {}
    dropped: list[DroppedItem] = []
    dropped_count = 0
    warnings: list[str] = []
    for item_id, item in pairs:
        item_digest = digests[item_id] = digest(item)
        stored = known.get(item_id)
        if (
            stored is not None
            and stored.holder is Holder.SELF
            and stored.source_sha256 == item_digest
        ):
            out.append((item_id, item))
            continue
        if dropped_before.get(item_id) == (item_digest, pipeline.fingerprint):
            dropped_count += 1
            continue
        # an item whose stored copy is a source's that takes precedence over this one:
        # this one only adds its category, so its content is not needed (no page fetch)
        needs_content = stored is None or stored.holder is not Holder.PREVAILING
        context = ProcessContext(source_id, fetch_page, needs_content, warnings)
        result = pipeline.run(item, context)
        if isinstance(result, Dropped):
            dropped.append(DroppedItem(item_id, item_digest, pipeline.fingerprint, result.reason))
            dropped_count += 1
            continue
        out.append((item_id, result))
    return ProcessedItems(tuple(out), digests, tuple(dropped), dropped_count, tuple(warnings))
