"""``reprocess_items``: a source's steps run again over its stored items (``aggregator
reprocess``), after its steps changed. Pure but for the page fetches a step makes.

A stored item goes through the steps as it is stored (already processed once: steps are
meant to give the same result twice; ``full_text`` finds the article long enough and
fetches nothing). Where the result differs from what is stored, an UPDATED intent with a
new seq is made; it keeps the hash of what the source gave (``item_sources``), so the
next fetch still finds the item unchanged. An item the steps would now drop is left
stored and reported: reprocessing never deletes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aggregator.model import CategoryRef, IntentKind, ItemIntent, ParsedItem, StoredItem
from aggregator.process.steps import Pipeline
from aggregator.process.values import Dropped, PageFetch, ProcessContext
from aggregator.sanitize import sanitize_html


@dataclass(frozen=True, slots=True)
class Reprocessed:
    intents: tuple[ItemIntent, ...]  # the items whose result changed
    unchanged_count: int
    would_drop: tuple[tuple[str, str], ...]  # (stable id, reason): left stored
    warnings: tuple[str, ...]


def reprocess_items(
    stored: Sequence[tuple[StoredItem, str]],
    pipeline: Pipeline,
    source_id: str,
    fetch_page: PageFetch | None = None,
) -> Reprocessed:
    """Intents for the stored items (with this source's hash of each) that ``pipeline``
    now makes something else of (see the module docstring)."""
    intents: list[ItemIntent] = []
    would_drop: list[tuple[str, str]] = []
    warnings: list[str] = []
    unchanged = 0
    for item, source_sha256 in stored:
        given = ParsedItem(
            title=item.title,
            link=item.link,
            guid=item.guid,
            summary=item.summary,
            content=item.content,
            author=item.author,
            published_at=item.published_at,
            published_offset_minutes=item.published_offset_minutes,
            media=item.media,
        )
        result = pipeline.run(given, ProcessContext(source_id, fetch_page, True, warnings))
        if isinstance(result, Dropped):
            would_drop.append((item.stable_id, result.reason))
            continue
        title = result.title or item.title
        summary = sanitize_html(result.summary, result.link)
        content = sanitize_html(result.content, result.link)
        now = (title, result.link, summary, content, result.author)
        if now == (item.title, item.link, item.summary, item.content, item.author):
            unchanged += 1
            continue
        intents.append(
            ItemIntent(
                kind=IntentKind.UPDATED,
                stable_id=item.stable_id,
                title=title,
                link=result.link,
                guid=item.guid,
                summary=summary,
                content=content,
                author=result.author,
                published_at=item.published_at,
                published_offset_minutes=item.published_offset_minutes,
                is_published_firm=True,
                is_content_external=False,
                content_sha256=source_sha256,
                categories=tuple(CategoryRef(slug, slug) for slug in item.category_slugs),
                media=item.media,  # an update replaces the stored media: keep them
            )
        )
    return Reprocessed(tuple(intents), unchanged, tuple(would_drop), tuple(warnings))
