"""Which items are new, changed or merely seen again, and under which categories.

Pure: parsed items, what the store knew, and ``now`` in; ``ItemIntent`` values out.

* An id never stored: NEW.
* An id stored as the copy of a source this one takes precedence over (``priority``, then
  the order in the config): UPDATED, this source's copy replaces it, whatever the order
  the two were fetched in.
* An id stored as the copy of a source that takes precedence over this one: MEMBERSHIP
  when first seen from this one (its categories and provenance are added; the item is
  never stored twice), else unchanged, even when this source's version changed: the
  copy that wins does not depend on which source was polled last.
* An id stored as this source's copy, with a different content hash: UPDATED in place.
* Otherwise unchanged (MEMBERSHIP when it now belongs to a category it was not in).

Dates: a missing date becomes the first-seen time; a future date is clamped to the fetch
time (a feed dated 2099 must not stay on top forever). Both are "soft": an update keeps
the stored date instead of moving it. The item's own updated time is kept as the feed gave
it (clamped the same way), or None: it is what readers sort changes by, not part of the
change hash (a feed that restamps every entry on each render must not rewrite them all).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from json.encoder import encode_basestring as _json_string

from aggregator.ingest.fields import plain_text
from aggregator.model import (
    CategoryRef,
    Holder,
    IntentKind,
    ItemIntent,
    KnownItem,
    Media,
    ParsedItem,
)
from aggregator.sanitize import sanitize_html
from aggregator.slug import CategoryRegistry

UNCATEGORIZED = CategoryRef(slug="uncategorized", title="未分类", description="")
DERIVED_TITLE_CHARS = 60


@dataclass(frozen=True, slots=True)
class CategoryRule:
    """How one source files its items: a fixed category, or one named by an item field."""

    fixed: CategoryRef | None = None
    from_field: str | None = None
    title_template: str = "{name}新闻"


@dataclass(frozen=True, slots=True)
class ItemsPlan:
    intents: tuple[ItemIntent, ...]
    unchanged_count: int
    new_categories: tuple[CategoryRef, ...]


def _media_text(media: tuple[Media, ...]) -> str:
    return _json_string(
        "|".join(
            f"{m.role} {m.url} {m.type} {m.length} {m.medium} {m.width} {m.height} "
            f"{m.duration_seconds}"
            for m in media
        )
    )


def content_sha256(item: ParsedItem) -> str:
    """Hash of what a reader sees; a change in any of these is an update.

    The hashed text is ``json.dumps(fields, ensure_ascii=False)`` of the list below (the
    stored hashes depend on it), spelled out: json.dumps builds an encoder per call, which
    was a third of the hash's cost.
    """
    payload = (
        item.title,
        item.link,
        item.summary,
        None if item.is_content_external else item.content,
        item.author,
        item.published_at.isoformat() if item.published_at else None,
        item.category_name,
    )
    text = "[" + ", ".join("null" if v is None else _json_string(v) for v in payload) + "]"
    if item.media:
        # only an item with media hashes them: the hash of every item without media stays
        # what it was before media were read (issue 14), so none becomes an update
        text = text[:-1] + ", " + _media_text(item.media) + "]"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def settle_date(item: ParsedItem, now: datetime, display_tz: tzinfo) -> tuple[datetime, int, bool]:
    """(published_at, offset minutes, firm). Not firm: first-seen or clamped future."""
    if item.published_at is None:
        offset = now.astimezone(display_tz).utcoffset()
        return now, int(offset.total_seconds() // 60) if offset else 0, False
    offset_minutes = item.published_offset_minutes or 0
    if item.published_at > now:
        return now, offset_minutes, False
    return item.published_at, offset_minutes, True


def settle_title(item: ParsedItem) -> str:
    """RSS and JSON Feed allow untitled items; readers need something to show, so the
    start of the text stands in. Without any text the title stays empty: a placeholder
    would be in one language for feeds in every language, and each output shows an
    empty title its own way (render.py: none where the format allows it, else the link)."""
    if item.title:
        return item.title
    text = plain_text(item.summary) or plain_text(item.content)
    return text if len(text) <= DERIVED_TITLE_CHARS else text[:DERIVED_TITLE_CHARS] + "…"


def categories_for(item: ParsedItem, rule: CategoryRule, registry: CategoryRegistry) -> CategoryRef:
    if rule.from_field and item.category_name:
        return registry.resolve(item.category_name, rule.title_template)
    return rule.fixed or UNCATEGORIZED


def intent_kind(stored: KnownItem | None, digest: str, slug: str) -> IntentKind | None:
    """What to write for an item this source gives with content hash ``digest`` in
    category ``slug``, given what the store holds for its id (None: nothing to write)."""
    if stored is None:
        return IntentKind.NEW
    replaces = stored.holder is Holder.YIELDING  # a copy this source takes precedence over
    changed = stored.holder is Holder.SELF and stored.source_sha256 not in (None, digest)
    if replaces or changed:
        return IntentKind.UPDATED
    if stored.source_sha256 is None or slug not in stored.category_slugs:
        return IntentKind.MEMBERSHIP
    return None


def plan_items(
    pairs: Iterable[tuple[str, ParsedItem]],
    known: Mapping[str, KnownItem],
    rule: CategoryRule,
    registry: CategoryRegistry,
    now: datetime,
    display_tz: tzinfo,
    digests: Mapping[str, str] | None = None,
) -> ItemsPlan:
    """Intents for one fetch of one source (see the module docstring). ``digests``: the
    hash of each item as the source gave it, when processing steps changed the item
    (process/stage.py): changes are told by what the source gave, not by the steps'
    result."""
    before = set(registry.by_slug)
    intents: list[ItemIntent] = []
    unchanged = 0
    for item_id, item in pairs:
        category = categories_for(item, rule, registry)
        digest = digests[item_id] if digests is not None else content_sha256(item)
        kind = intent_kind(known.get(item_id), digest, category.slug)
        if kind is None:
            unchanged += 1
            continue
        published_at, offset, firm = settle_date(item, now, display_tz)
        intents.append(
            ItemIntent(
                kind=kind,
                stable_id=item_id,
                title=settle_title(item),
                link=item.link,
                guid=item.guid,
                summary=sanitize_html(item.summary, item.link),
                content=sanitize_html(item.content, item.link),
                author=item.author,
                published_at=published_at,
                published_offset_minutes=offset,
                is_published_firm=firm,
                is_content_external=item.is_content_external,
                content_sha256=digest,
                categories=(category,),
                source_updated_at=min(item.updated_at, now) if item.updated_at else None,
                media=item.media,
            )
        )
    added = tuple(registry.by_slug[slug] for slug in registry.by_slug if slug not in before)
    return ItemsPlan(intents=tuple(intents), unchanged_count=unchanged, new_categories=added)
