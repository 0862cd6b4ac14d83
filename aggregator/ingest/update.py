"""Updating one source: the one orchestrator every fetch goes through.

    state    = the claimed source's stored state (validators, body hash, errors)
    result   = fetch(url, If-None-Match/If-Modified-Since)       # may be NotModified
    if 304 or the body hash is unchanged: record it, schedule, done
    feed     = parse(body)                                       # pure
    pairs    = identify(feed.items)                              # pure: stable ids
    pairs   -= ids that retention pruned (housekeeping.py): they never come back
    known    = store.find_known_items(ids)
    bodies   = fetch content_url for ids not stored yet (JSON API sources)
    intents  = plan_items(pairs, known, categories, now)         # pure
    record(outcome, intents, new state)     # one transaction (or savepoint) per source

Any ``AggregatorError`` on the way becomes an ERROR outcome (one line, with the class) and
a backed-off due time; nothing of the failed fetch is written but that record.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from aggregator.config.settings import Settings, Source
from aggregator.errors import AggregatorError, FetchError, HTTPStatusError
from aggregator.ingest.decide import CategoryRule, plan_items
from aggregator.ingest.fetcher import Fetcher, FetchRequest
from aggregator.ingest.freshness import next_fetch_after
from aggregator.ingest.health import count_gone, follow_redirect, is_retired, item_count_warning
from aggregator.ingest.identity import identify
from aggregator.ingest.parser import ParseRules, parse_body, parse_content_body
from aggregator.model import (
    CategoryRef,
    FeedHints,
    FetchOutcome,
    FetchResult,
    HTTPFacts,
    ItemIntent,
    NotModified,
    OutcomeKind,
    ParsedItem,
    SourceState,
)
from aggregator.store import SourceUpdate, Store, WriteCounts


def utc_now() -> datetime:
    return datetime.now(UTC)


class FetchSink(Protocol):
    """Where a finished fetch is written: the store itself, or a group committer."""

    def apply_fetch(
        self,
        outcome: FetchOutcome,
        owner: str,
        intents: Sequence[ItemIntent],
        update: SourceUpdate,
    ) -> WriteCounts: ...

    def apply_fetch_later(self, outcome: FetchOutcome, owner: str, update: SourceUpdate) -> None:
        """Record a fetch that wrote no items without waiting for its commit."""


@dataclass(frozen=True, slots=True)
class Context:
    """What every update needs: parsed once, shared by all worker threads."""

    settings: Settings
    store: Store
    fetcher: Fetcher
    owner: str
    now: Callable[[], datetime] = utc_now
    sink: FetchSink | None = None  # default: write straight to the store

    def record(
        self, outcome: FetchOutcome, intents: Sequence[ItemIntent], update: SourceUpdate
    ) -> WriteCounts:
        return (self.sink or self.store).apply_fetch(outcome, self.owner, intents, update)

    def record_unchanged(self, outcome: FetchOutcome, update: SourceUpdate) -> None:
        """A fetch with nothing new (304, same bytes): through a sink, without waiting."""
        if self.sink is not None:
            self.sink.apply_fetch_later(outcome, self.owner, update)
        else:
            self.store.apply_fetch(outcome, self.owner, (), update)


def category_rule(source: Source, settings: Settings) -> CategoryRule:
    fixed = None
    if source.category:
        configured = settings.categories[source.category]
        fixed = CategoryRef(
            source.category, configured.title, configured.description, configured.name
        )
    return CategoryRule(
        fixed=fixed, from_field=source.category_field(), title_template=source.category_title
    )


def parse_rules(source: Source, settings: Settings, url: str) -> ParseRules:
    fields = source.fields.model_dump() if source.fields else None
    return ParseRules(
        kind=source.type,
        base_url=url,
        source_tz=ZoneInfo(source.timezone or settings.timezone),
        category_from=source.category_from if source.type != "json" else None,
        items_path=source.items_path,
        fields=fields,
        date_format=source.date_format,
    )


def _request(
    source: Source, settings: Settings, url: str, state: SourceState | None
) -> FetchRequest:
    defaults = settings.defaults
    return FetchRequest(
        url=url,
        etag=state.etag if state else None,
        last_modified=state.last_modified if state else None,
        headers=source.headers,
        timeout_seconds=source.effective_timeout(defaults),
        total_timeout_seconds=defaults.total_timeout_seconds,
        max_body_bytes=defaults.max_body_bytes,
        allow_networks=(*settings.allow_networks, *source.allow_networks),
    )


def _due(
    source: Source,
    settings: Settings,
    now: datetime,
    errors: int,
    facts: HTTPFacts | None,
    retry_after: str | None = None,
    feed: FeedHints | None = None,
) -> datetime:
    cron_next = None
    if source.cron:
        from apscheduler.triggers.cron import CronTrigger

        trigger = CronTrigger.from_crontab(source.cron, timezone=settings.timezone)
        cron_next = trigger.get_next_fire_time(None, now)
    return next_fetch_after(
        now=now,
        interval=source.effective_interval(settings.defaults),
        source_key=source.id,
        jitter_fraction=settings.defaults.jitter_fraction,
        consecutive_errors=errors,
        max_backoff=settings.defaults.max_backoff,
        cron_next=cron_next,
        retry_after=retry_after or (facts.retry_after if facts else None),
        cache_max_age_seconds=facts.cache_max_age_seconds if facts else None,
        expires=facts.expires if facts else None,
        feed=feed,
    )


def _fill_content(
    ctx: Context, source: Source, pairs: list[tuple[str, ParsedItem]], known: set[str]
) -> tuple[list[tuple[str, ParsedItem]], list[str]]:
    """JSON API sources: fetch each new item's body once, via the content_url template.

    Only ids not stored yet are fetched (the original script re-downloaded every body
    every 30 s). An item whose body fails to arrive is left for the next poll rather
    than stored without it.
    """
    if not source.content_url or not source.content_path:
        return pairs, []
    kept: list[tuple[str, ParsedItem]] = []
    problems: list[str] = []
    for item_id, listed in pairs:
        item = replace(listed, is_content_external=True)
        if item_id in known or item.content or not item.api_id:
            kept.append((item_id, item))
            continue
        url = source.content_url.replace("{id}", item.api_id)
        try:
            result = ctx.fetcher.fetch(_request(source, ctx.settings, url, None))
            if isinstance(result, NotModified):
                raise FetchError("304 for a content URL fetched without validators")
            body = parse_content_body(result.body, result.http.content_type, source.content_path)
        except AggregatorError as e:
            problems.append(f"content for {item.api_id}: {e}")
            continue
        kept.append((item_id, replace(item, content=body)))
    return kept, problems


def update_source(ctx: Context, source: Source, state: SourceState) -> FetchOutcome:
    """Fetch, parse, decide and store one source (see the module docstring)."""
    settings = ctx.settings
    started_at = ctx.now()
    clock = time.monotonic()
    url = state.effective_url or source.url
    # what a failed fetch writes back: everything as it was, but the error count
    kept_state = SourceUpdate(
        etag=state.etag,
        last_modified=state.last_modified,
        body_sha256=state.body_sha256,
        effective_url=state.effective_url,
        consecutive_errors=0,
        feed_title=state.feed_title,
        pending_redirect_url=state.pending_redirect_url,
        pending_redirect_count=state.pending_redirect_count,
        warning=state.last_warning,
    )
    facts: HTTPFacts | None = None
    result: FetchResult | None = None
    try:
        result = ctx.fetcher.fetch(_request(source, settings, url, state))
        facts = result.http
        redirect = follow_redirect(state, facts.permanent_redirect_url)
        validators = replace(
            kept_state,
            etag=facts.etag or state.etag,
            last_modified=facts.last_modified or state.last_modified,
            effective_url=redirect.effective_url,
            pending_redirect_url=redirect.pending_url,
            pending_redirect_count=redirect.pending_count,
        )
        if isinstance(result, NotModified):
            return _finish(
                ctx,
                source,
                started_at,
                clock,
                OutcomeKind.NOT_MODIFIED,
                facts,
                validators,
                unchanged=state.last_item_count or 0,
            )
        body_sha = hashlib.sha256(result.body).hexdigest()
        validators = replace(validators, body_sha256=body_sha)
        if body_sha == state.body_sha256:
            return _finish(
                ctx,
                source,
                started_at,
                clock,
                OutcomeKind.UNCHANGED_BODY,
                facts,
                validators,
                unchanged=state.last_item_count or 0,
                size=len(result.body),
            )
        feed = parse_body(
            result.body, facts.content_type, parse_rules(source, settings, facts.final_url)
        )
        shrunk = item_count_warning(state.last_item_count, len(feed.items))
        warnings = (*feed.warnings, shrunk) if shrunk else feed.warnings
        validators = replace(
            validators,
            feed_title=feed.title or state.feed_title,
            warning="; ".join(warnings) or None,
        )
        pairs, _repeats = identify(feed.items, source.id, source.id_rule())
        pruned = ctx.store.find_pruned([item_id for item_id, _ in pairs])
        if pruned:  # retention removed them: a source still listing them is not news
            pairs = [(item_id, item) for item_id, item in pairs if item_id not in pruned]
        known = ctx.store.find_known_items(source.id, [item_id for item_id, _ in pairs])
        pairs, problems = _fill_content(ctx, source, pairs, set(known))
        if problems:
            # Bodies that did not arrive: not stored now, retried next poll. Keep the old
            # body hash so an unchanged list is parsed again then.
            validators = replace(
                validators,
                body_sha256=state.body_sha256,
                etag=state.etag,
                last_modified=state.last_modified,
            )
        plan = plan_items(
            pairs,
            known,
            category_rule(source, settings),
            ctx.store.load_category_registry(),
            started_at,
            ZoneInfo(settings.timezone),
        )
        outcome = FetchOutcome(
            source_id=source.id,
            kind=OutcomeKind.OK,
            started_at=started_at,
            duration_seconds=time.monotonic() - clock,
            next_due_at=_due(source, settings, started_at, 0, facts, feed=feed.hints),
            http_status=facts.status,
            bytes_received=len(result.body),
            unchanged_count=plan.unchanged_count,
            item_count=len(feed.items),
            error=(
                "; ".join(problems[:3])
                + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else "")
            )
            if problems
            else None,
            error_class="ContentFetchError" if problems else None,
            warnings=warnings,
        )
        counts = ctx.record(outcome, plan.intents, validators)
        return replace(outcome, new_count=counts.new, updated_count=counts.updated)
    except AggregatorError as e:
        retry_after = e.retry_after if isinstance(e, HTTPStatusError) else None
        errors = state.consecutive_errors + 1
        status = getattr(e, "status", None) or (facts.status if facts else None)
        gone = count_gone(state, status)
        retired = is_retired(gone)
        line = f"{source.id}: {type(e).__name__}: {e}"
        if retired:
            line += f" ({gone} times in a row: retired, fetched again only by hand or a new URL)"
        outcome = FetchOutcome(
            source_id=source.id,
            kind=OutcomeKind.ERROR,
            started_at=started_at,
            duration_seconds=time.monotonic() - clock,
            next_due_at=_due(source, settings, started_at, errors, facts, retry_after),
            http_status=status,
            bytes_received=len(result.body)
            if result is not None and hasattr(result, "body")
            else 0,
            error=line,
            error_class=type(e).__name__,
        )
        ctx.record(
            outcome,
            (),
            replace(kept_state, consecutive_errors=errors, gone_count=gone, retired=retired),
        )
        return outcome


def _finish(
    ctx: Context,
    source: Source,
    started_at: datetime,
    clock: float,
    kind: OutcomeKind,
    facts: HTTPFacts,
    update: SourceUpdate,
    unchanged: int,
    size: int = 0,
) -> FetchOutcome:
    outcome = FetchOutcome(
        source_id=source.id,
        kind=kind,
        started_at=started_at,
        duration_seconds=time.monotonic() - clock,
        next_due_at=_due(source, ctx.settings, started_at, 0, facts),
        http_status=facts.status,
        bytes_received=size,
        unchanged_count=unchanged,
    )
    ctx.record_unchanged(outcome, update)
    return outcome
