"""Stocking a store for the serving tests: configured categories and items written the
way the orchestrator writes them (``Store.sync_config``, ``Store.apply_fetch``), without
fetching anything. The sources' URLs are never requested."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from aggregator.config.settings import Settings, parse_settings
from aggregator.model import CategoryRef, FetchOutcome, IntentKind, ItemIntent, OutcomeKind
from aggregator.runtime.scheduler import configured_categories, source_plans
from aggregator.store import SourceUpdate, Store

START = datetime(2024, 1, 1, tzinfo=UTC)
BATCH = 500


def stock_config(titles: Mapping[str, str], extra: str = "") -> str:
    """The YAML of a config with these categories (slug: title) and one source per
    category, then ``extra``."""
    lines = ["site_url: http://news.example", "categories:"]
    lines += [f"  {slug}: {{title: {title}}}" for slug, title in titles.items()]
    lines.append("sources:")
    lines += [
        f'  - {{id: {slug}-src, url: "http://127.0.0.1:9/{slug}.xml", category: {slug}}}'
        for slug in titles
    ]
    return "\n".join(lines) + "\n" + extra


def stock_settings(titles: Mapping[str, str], extra: str = "") -> Settings:
    return parse_settings(stock_config(titles, extra))


def stock(
    store: Store,
    settings: Settings,
    counts: Mapping[str, int],
    body: str | Callable[[int], str] = "<p>正文</p>",
    title: str = "条目",
) -> None:
    """Make the database follow ``settings``, then write ``counts[slug]`` items into each
    category, one minute apart, through its source; ``body`` may be a function of the
    item's number."""
    body_of = body if callable(body) else lambda _: body
    store.sync_config(source_plans(settings), configured_categories(settings), START)
    refs = {ref.slug: ref for ref in configured_categories(settings)}
    for slug, count in counts.items():
        ref = CategoryRef(slug, refs[slug].title, refs[slug].description, refs[slug].name)
        intents = [
            ItemIntent(
                kind=IntentKind.NEW,
                stable_id=f"{slug}-{n}",
                title=f"{title} {n}",
                link=f"http://news.example/{slug}/{n}",
                guid=None,
                summary=None,
                content=body_of(n),
                author=None,
                published_at=START + timedelta(minutes=n),
                published_offset_minutes=480,
                is_published_firm=True,
                is_content_external=False,
                content_sha256=f"{slug}-{n}",
                categories=(ref,),
            )
            for n in range(count)
        ]
        for first in range(0, count, BATCH):
            now = datetime.now(UTC)
            outcome = FetchOutcome(f"{slug}-src", OutcomeKind.OK, now, 0.0, now, 200)
            keep = SourceUpdate(None, None, None, None, 0)
            store.apply_fetch(outcome, "stock", intents[first : first + BATCH], keep)
