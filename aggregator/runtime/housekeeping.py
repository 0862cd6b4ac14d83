"""Periodic work done once per cluster, whichever process gets there first.

Every fetching process (``run``, ``worker``) asks once a minute; the store hands the job
to exactly one of them per ``housekeeping.every`` (``claim_job`` moves the job's next run
forward in one conditional UPDATE, so two processes due at the same moment cannot both
win). The job:

* retention: an item published before its category's cutoff (``categories.<slug>.
  retention``, else the top-level ``retention``; neither: kept forever) leaves that
  category's feed; an item no category keeps is deleted and its stable id remembered, so
  a source that still lists it does not bring it back (``update.py`` skips those ids);
* the fetch log older than ``housekeeping.fetch_log_days`` is deleted;
* remembered pruned ids are forgotten once far older than any retention (sources have long
  stopped listing them by then).

``retention_cutoffs`` is the pure part; ``run_housekeeping_if_due`` the shell.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from aggregator.config.settings import Settings
from aggregator.ingest.update import Context
from aggregator.store import PruneCounts

log = logging.getLogger(__name__)

JOB_NAME = "housekeeping"
# pruned ids are kept this many times the longest retention (at least 30 days)
TOMBSTONE_FACTOR = 10
MIN_TOMBSTONE_AGE = timedelta(days=30)


def retention_cutoffs(
    settings: Settings, now: datetime
) -> tuple[dict[str, datetime], datetime | None]:
    """Per configured category, the time before which its items leave it; and the cutoff
    for every other category (derived ones), from the top-level ``retention``."""
    default = now - settings.retention if settings.retention is not None else None
    per_category = {
        slug: now - category.retention
        for slug, category in settings.categories.items()
        if category.retention is not None
    }
    return per_category, default


def tombstone_cutoff(settings: Settings, now: datetime) -> datetime:
    longest = max(
        [settings.retention or timedelta(0)]
        + [c.retention for c in settings.categories.values() if c.retention is not None]
    )
    return now - max(longest * TOMBSTONE_FACTOR, MIN_TOMBSTONE_AGE)


def run_housekeeping(ctx: Context, now: datetime) -> PruneCounts:
    settings = ctx.settings
    cutoffs, default = retention_cutoffs(settings, now)
    return ctx.store.prune(
        cutoffs,
        default,
        fetch_log_before=now - timedelta(days=settings.housekeeping.fetch_log_days),
        tombstones_before=tombstone_cutoff(settings, now),
        now=now,
    )


def run_housekeeping_if_due(ctx: Context) -> PruneCounts | None:
    """Run the job if this process wins this period's claim; None if another did."""
    now = ctx.now()
    if not ctx.store.claim_job(JOB_NAME, now, ctx.settings.housekeeping.every, ctx.owner):
        return None
    counts = run_housekeeping(ctx, now)
    result = (
        f"{counts.items} item(s) pruned, {counts.memberships} taken out of a category, "
        f"{counts.fetch_log} fetch-log row(s) and {counts.tombstones} pruned id(s) forgotten"
    )
    ctx.store.finish_job(JOB_NAME, result)
    log.info("housekeeping: %s", result)
    return counts
