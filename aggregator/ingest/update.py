"""Updating one source: ``update_source`` is the one orchestrator every fetch goes through
(its docstring has the pipeline). ``next_source_update`` and ``feed_warnings`` are its
pure steps here; the others are parse, identify and plan_items (parser.py, identity.py,
decide.py); writes go through ``Context.record``, to the sink (the store by default).
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
from aggregator.errors import AggregatorError, FetchError, HTTPStatusError, ParseError
from aggregator.finance.exchanges import market_clock
from aggregator.ingest.decide import CategoryRule, ItemsPlan, content_sha256, plan_items
from aggregator.ingest.discovery import HTML_PAGE_ERROR, find_feed_link
from aggregator.ingest.encodings import decode_body
from aggregator.ingest.fetcher import Fetcher, FetchRequest
from aggregator.ingest.fields import ParseRules
from aggregator.ingest.freshness import MarketSchedule, next_fetch_after
from aggregator.ingest.health import (
    RedirectState,
    count_gone,
    follow_redirect,
    is_retired,
    item_count_warning,
)
from aggregator.ingest.identity import identify
from aggregator.ingest.jsonparse import parse_content_body
from aggregator.ingest.parser import parse_body
from aggregator.ingest.tickers import names_matcher, with_tickers
from aggregator.model import (
    CategoryRef,
    FeedHints,
    FetchOutcome,
    FetchResult,
    Holder,
    HTTPFacts,
    ItemIntent,
    NotModified,
    OutcomeKind,
    ParsedFeed,
    ParsedItem,
    Retrieved,
    SourceState,
)
from aggregator.process.stage import ProcessedItems, process_items
from aggregator.process.steps import compile_steps
from aggregator.process.values import FetchedPage, PageFetch
from aggregator.store import SourceUpdate, Store, WriteCounts


def utc_now() -> datetime:
    return datetime.now(UTC)


class FetchSink(Protocol):
    """Where every fetch is written: the store itself (the default), or a group committer
    (store/batching.py; the scheduler wraps one to lend a waiting thread's slot)."""

    def apply_fetch(
        self,
        outcome: FetchOutcome,
        owner: str,
        intents: Sequence[ItemIntent],
        update: SourceUpdate,
    ) -> WriteCounts:
        """Write the fetch as ``Store.apply_fetch`` does and return its counts. A group
        committer returns zero counts at once for a fetch that found the feed unchanged
        (a 304, the same bytes), which writes no items, and commits it soon after."""


@dataclass(frozen=True, slots=True)
class Context:
    """What every update needs: parsed once, shared by all worker threads."""

    settings: Settings
    store: Store
    fetcher: Fetcher
    owner: str
    now: Callable[[], datetime] = utc_now
    sink: FetchSink | None = None  # where fetches are written; None: the store itself

    def record(
        self, outcome: FetchOutcome, intents: Sequence[ItemIntent], update: SourceUpdate
    ) -> WriteCounts:
        """Write one fetch, whatever its outcome: through the sink, the store by default."""
        sink = self.store if self.sink is None else self.sink
        return sink.apply_fetch(outcome, self.owner, intents, update)


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
    page = source.html.model_dump() if source.html else None
    return ParseRules(
        kind=source.type,
        base_url=url,
        source_tz=ZoneInfo(source.timezone or settings.timezone),
        category_from=source.category_from if source.type != "json" else None,
        items_path=source.items_path,
        fields=fields,
        date_format=source.html.date_format if source.html else source.date_format,
        html=page,
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
    market = None
    if (clocked := source.market_interval()) is not None:
        clock = market_clock(clocked.market)
        market = MarketSchedule(clocked.trading, clocked.closed, clock)
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
        market=market,
    )


def _fill_content(
    ctx: Context, source: Source, pairs: list[tuple[str, ParsedItem]], known: set[str]
) -> tuple[list[tuple[str, ParsedItem]], list[str]]:
    """JSON API sources: fetch each new item's body once, via the content_url template.

    Only ids not in ``known`` are fetched: not stored yet, or stored as the copy of a
    source this one replaces (the original script re-downloaded every body every 30 s).
    An item whose body fails to arrive is left for the next poll rather than stored
    without it.
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


def page_fetch(ctx: Context, source: Source) -> PageFetch:
    """How the ``full_text`` step reads an item's page: like a ``content_url`` body, with
    the source's fetcher, timeouts, deadline, body cap and network rules."""

    def fetch_page(url: str) -> FetchedPage:
        result = ctx.fetcher.fetch(_request(source, ctx.settings, url, None))
        if isinstance(result, NotModified):
            raise FetchError("304 for a page fetched without validators")
        text = decode_body(result.body, result.http.content_type).text
        return FetchedPage(result.http.final_url, text)

    return fetch_page


def step_warning(warnings: Sequence[str]) -> str | None:
    """The processing steps' warnings of one fetch as one line (three, and how many more)."""
    if not warnings:
        return None
    more = f" (+{len(warnings) - 3} more)" if len(warnings) > 3 else ""
    return "; ".join(warnings[:3]) + more


def feed_warnings(feed: ParsedFeed, last_item_count: int | None) -> tuple[str, ...]:
    """The parser's warnings about a feed, and one when it lists no items (health.py)."""
    shrunk = item_count_warning(last_item_count, len(feed.items))
    return (*feed.warnings, shrunk) if shrunk else feed.warnings


def next_source_update(
    state: SourceState,
    kind: OutcomeKind,
    facts: HTTPFacts | None = None,
    *,
    body_sha256: str | None = None,
    feed_title: str | None = None,
    warnings: Sequence[str] = (),
    is_content_missing: bool = False,
    status: int | None = None,
    discovered_url: str | None = None,
) -> SourceUpdate:
    """The source's fetch state after a fetch that ended in ``kind``: pure, from the
    state before it and what the fetch found.

    ERROR           everything as it was, one more consecutive error, and ``status`` (of
                    the answer; None without one) counted towards retirement (410 Gone)
    NOT_MODIFIED    no errors; the answer's validators, else the old ones; a permanent
                    redirect followed (``health.follow_redirect``)
    UNCHANGED_BODY  the same, with ``body_sha256``
    OK              the same, with the feed's title (else the old one) and ``warnings``;
                    with ``is_content_missing`` (item bodies of a JSON API source that did
                    not arrive) the old validators and body hash, so that the same list
                    is parsed again next time; with ``discovered_url`` (the feed an HTML
                    page named) that URL adopted at once, as a permanent redirect is
    """
    if kind is OutcomeKind.ERROR:
        gone = count_gone(state, status)
        return SourceUpdate(
            etag=state.etag,
            last_modified=state.last_modified,
            body_sha256=state.body_sha256,
            effective_url=state.effective_url,
            consecutive_errors=state.consecutive_errors + 1,
            feed_title=state.feed_title,
            pending_redirect_url=state.pending_redirect_url,
            pending_redirect_count=state.pending_redirect_count,
            gone_count=gone,
            retired=is_retired(gone),
            warning=state.last_warning,
        )
    if facts is None:
        raise ValueError(f"a fetch that ended in {kind.value} had an answer: facts needed")
    redirect = follow_redirect(state, facts.permanent_redirect_url)
    if discovered_url is not None:
        redirect = RedirectState(discovered_url, None, 0)
    is_parsed = kind is OutcomeKind.OK
    keeps_validators = is_parsed and is_content_missing
    return SourceUpdate(
        etag=state.etag if keeps_validators else facts.etag or state.etag,
        last_modified=(
            state.last_modified if keeps_validators else facts.last_modified or state.last_modified
        ),
        body_sha256=state.body_sha256 if keeps_validators else body_sha256 or state.body_sha256,
        effective_url=redirect.effective_url,
        consecutive_errors=0,
        feed_title=(feed_title or state.feed_title) if is_parsed else state.feed_title,
        pending_redirect_url=redirect.pending_url,
        pending_redirect_count=redirect.pending_count,
        warning=("; ".join(warnings) or None) if is_parsed else state.last_warning,
    )


def update_source(ctx: Context, source: Source, state: SourceState) -> FetchOutcome:
    """Fetch, parse, decide and store one source.

        state    = the claimed source's stored state (validators, body hash, errors)
        result   = fetch(url, If-None-Match/If-Modified-Since)     # may be NotModified
        if 304 or the body hash is unchanged: record it, schedule, done
        feed     = parse(body)                                     # pure
        if a site's HTML page: fetch and parse the feed it names   # discovery.py, adopted
        pairs    = identify(feed.items)                            # pure: stable ids
        pruned, known, registry = store.find_fetch_knowledge(ids)  # one read transaction
        pairs   -= pruned: retention removed them (housekeeping.py), they never come back
        bodies   = fetch content_url for ids not stored yet, or stored as a lower
                   source's copy (JSON API sources)
        pairs, dropped = process(new and changed pairs)  # the source's steps (process/)
        intents  = plan_items(pairs, known, registry, now)         # pure
        intents  = with tickers, for new and changed items         # pure (finance/)
        update   = next_source_update(state, what the fetch found) # pure
        record(outcome, intents, update)      # one transaction (or savepoint) per source

    Any ``AggregatorError`` on the way becomes an ERROR outcome (one line, with the
    class) and a backed-off due time; nothing of the failed fetch is written but that
    record.
    """
    attempt = _Attempt(ctx, source, state, started_at=ctx.now(), clock=time.monotonic())
    try:
        result = attempt.fetch()
        if isinstance(result, NotModified):
            return attempt.record_unchanged(OutcomeKind.NOT_MODIFIED, result.http)
        body_sha256 = hashlib.sha256(result.body).hexdigest()
        if body_sha256 == state.body_sha256:
            return attempt.record_unchanged(OutcomeKind.UNCHANGED_BODY, result.http, body_sha256)
        rules = parse_rules(source, ctx.settings, result.http.final_url)
        try:
            feed = parse_body(result.body, result.http.content_type, rules)
        except ParseError as e:
            # a site's page, not its feed: follow the feed it names (discovery.py)
            found = attempt.discover(result, e)
            if found is None:
                raise
            result, body_sha256 = found
            rules = parse_rules(source, ctx.settings, result.http.final_url)
            feed = parse_body(result.body, result.http.content_type, rules)
        pairs, _repeats = identify(feed.items, source.id, source.id_rule())
        steps = compile_steps(source.effective_steps(ctx.settings.defaults))
        knowledge = ctx.store.find_fetch_knowledge(
            source.id, [item_id for item_id, _ in pairs], with_dropped=bool(steps)
        )
        # retention removed these: a source still listing them is not news
        pairs = [(item_id, item) for item_id, item in pairs if item_id not in knowledge.pruned]
        # a body is fetched once: for ids not stored, or stored as a lower source's copy
        kept = {
            item_id for item_id, k in knowledge.known.items() if k.holder is not Holder.YIELDING
        }
        pairs, problems = _fill_content(ctx, source, pairs, kept)
        processed = None
        if steps:
            processed = process_items(
                pairs,
                knowledge.known,
                knowledge.dropped,
                steps,
                content_sha256,
                source.id,
                page_fetch(ctx, source),
            )
        plan = plan_items(
            processed.pairs if processed else pairs,
            knowledge.known,
            category_rule(source, ctx.settings),
            knowledge.registry,
            attempt.started_at,
            ZoneInfo(ctx.settings.timezone),
            processed.digests if processed else None,
        )
        plan = replace(plan, intents=with_tickers(plan.intents, names_matcher(ctx.settings)))
        return attempt.record_items(result.http, body_sha256, feed, plan, problems, processed)
    except AggregatorError as e:
        return attempt.record_error(e)


@dataclass(slots=True)
class _Attempt:
    """One run of ``update_source``: how each way it can end is recorded. Every ending
    takes the source's next state from ``next_source_update`` and goes through
    ``Context.record``."""

    ctx: Context
    source: Source
    state: SourceState
    started_at: datetime
    clock: float  # time.monotonic() at the start, for the duration
    result: FetchResult | None = None  # the answer, once it came
    discovered_url: str | None = None  # the feed a site's HTML page named (discovery.py)

    def fetch(self) -> FetchResult:
        url = self.state.effective_url or self.source.url
        self.result = self.ctx.fetcher.fetch(
            _request(self.source, self.ctx.settings, url, self.state)
        )
        return self.result

    def discover(self, page: Retrieved, error: ParseError) -> tuple[Retrieved, str] | None:
        """The feed an HTML page names, fetched like the page (same fetcher and network
        rules, no validators), with its body hash; None when the page names none."""
        if self.source.type == "html" or HTML_PAGE_ERROR not in str(error):
            return None
        url = find_feed_link(page.body, page.http.content_type, page.http.final_url)
        if url is None:
            return None
        result = self.ctx.fetcher.fetch(_request(self.source, self.ctx.settings, url, None))
        if isinstance(result, NotModified):
            raise FetchError("304 for a discovered feed fetched without validators")
        self.result, self.discovered_url = result, url
        return result, hashlib.sha256(result.body).hexdigest()

    @property
    def bytes_received(self) -> int:
        return len(self.result.body) if isinstance(self.result, Retrieved) else 0

    def record_unchanged(
        self, kind: OutcomeKind, facts: HTTPFacts, body_sha256: str | None = None
    ) -> FetchOutcome:
        """A 304, or the same bytes as last time: nothing parsed, no items written."""
        update = next_source_update(self.state, kind, facts, body_sha256=body_sha256)
        outcome = FetchOutcome(
            source_id=self.source.id,
            kind=kind,
            started_at=self.started_at,
            duration_seconds=time.monotonic() - self.clock,
            next_due_at=_due(self.source, self.ctx.settings, self.started_at, 0, facts),
            http_status=facts.status,
            bytes_received=self.bytes_received,
            unchanged_count=self.state.last_item_count or 0,
        )
        self.ctx.record(outcome, (), update)
        return outcome

    def record_items(
        self,
        facts: HTTPFacts,
        body_sha256: str,
        feed: ParsedFeed,
        plan: ItemsPlan,
        problems: Sequence[str],
        processed: ProcessedItems | None = None,
    ) -> FetchOutcome:
        """A parsed feed: its intents, what its steps dropped, and the counts of what was
        written."""
        warnings = feed_warnings(feed, self.state.last_item_count)
        if self.discovered_url:
            note = f"feed discovered on the HTML page: {self.discovered_url} (fetched from now on)"
            warnings = (note, *warnings)
        steps_warning = step_warning(processed.warnings) if processed else None
        if steps_warning:
            warnings = (*warnings, steps_warning)
        update = next_source_update(
            self.state,
            OutcomeKind.OK,
            facts,
            body_sha256=body_sha256,
            feed_title=feed.title,
            warnings=warnings,
            is_content_missing=bool(problems),
            discovered_url=self.discovered_url,
        )
        outcome = FetchOutcome(
            source_id=self.source.id,
            kind=OutcomeKind.OK,
            started_at=self.started_at,
            duration_seconds=time.monotonic() - self.clock,
            next_due_at=_due(
                self.source, self.ctx.settings, self.started_at, 0, facts, feed=feed.hints
            ),
            http_status=facts.status,
            bytes_received=self.bytes_received,
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
            dropped_count=processed.dropped_count if processed else 0,
            dropped=processed.dropped if processed else (),
        )
        counts = self.ctx.record(outcome, plan.intents, update)
        return replace(outcome, new_count=counts.new, updated_count=counts.updated)

    def record_error(self, error: AggregatorError) -> FetchOutcome:
        """Any AggregatorError on the way: one line, a backed-off due time, and nothing
        else of the fetch written."""
        facts = self.result.http if self.result is not None else None
        status = getattr(error, "status", None) or (facts.status if facts else None)
        update = next_source_update(self.state, OutcomeKind.ERROR, status=status)
        line = f"{self.source.id}: {type(error).__name__}: {error}"
        if update.retired:
            line += (
                f" ({update.gone_count} times in a row: retired, fetched again only by hand"
                " or a new URL)"
            )
        retry_after = error.retry_after if isinstance(error, HTTPStatusError) else None
        outcome = FetchOutcome(
            source_id=self.source.id,
            kind=OutcomeKind.ERROR,
            started_at=self.started_at,
            duration_seconds=time.monotonic() - self.clock,
            next_due_at=_due(
                self.source,
                self.ctx.settings,
                self.started_at,
                update.consecutive_errors,
                facts,
                retry_after,
            ),
            http_status=status,
            bytes_received=self.bytes_received,
            error=line,
            error_class=type(error).__name__,
        )
        self.ctx.record(outcome, (), update)
        return outcome
