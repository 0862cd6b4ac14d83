"""Commands over the sources: ``fetch`` (one pass now, then a table), ``sources``
(status at a glance) and ``reprocess`` (processing steps again over stored items)."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import click

from aggregator.cli.common import (
    EXIT_CONFIG,
    EXIT_FAILED,
    format_table,
    global_options,
    local_time_text,
    open_or_exit,
    outcome_label,
    settings_or_exit,
)
from aggregator.errors import AggregatorError
from aggregator.ingest.reprocess import reprocess_source
from aggregator.model import OutcomeKind
from aggregator.runtime.scheduler import configured_categories, run_pass, source_plans
from aggregator.runtime.service import close_context

QUIET_ABOVE = 50  # sources in a pass above which unchanged ones are not listed


@click.command()
@global_options
@click.option(
    "--source",
    "source_ids",
    multiple=True,
    metavar="ID",
    help="Fetch only this source (repeatable).",
)
@click.option("--strict", is_flag=True, help="Exit 1 when any source failed.")
@click.option(
    "--processes",
    type=int,
    default=None,
    help="Processes for a large pass (default: the CPU count, at most 4).",
)
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help=f"List every source (above {QUIET_ABOVE}, only changed or failed ones are).",
)
@click.pass_context
def fetch(
    ctx: click.Context,
    source_ids: tuple[str, ...],
    strict: bool,
    processes: int | None,
    show_all: bool,
) -> None:
    """Fetch sources once now, then print a table of what happened."""
    settings = settings_or_exit(ctx)
    known = {s.id for s in settings.sources}
    unknown = [sid for sid in source_ids if sid not in known]
    if unknown:
        click.echo(f"error: unknown source id(s): {', '.join(unknown)}", err=True)
        ctx.exit(EXIT_CONFIG)
    context = open_or_exit(ctx, settings)
    total = len(source_ids) or sum(1 for s in settings.sources if s.enabled)
    procs = processes if processes is not None else min(os.cpu_count() or 1, 4)
    try:
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            # Redrawn from the outcome callback, not by rich's refresh thread: a pass
            # forks its shards only while it is the one thread (scheduler.can_fork).
            with Progress(
                TextColumn("fetching"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
                auto_refresh=False,
            ) as progress:
                task = progress.add_task("fetch", total=total)
                progress.refresh()

                def advance(_: object) -> None:
                    progress.advance(task)
                    progress.refresh()

                outcomes, skipped = run_pass(context, source_ids or None, advance, procs)
        else:
            outcomes, skipped = run_pass(context, source_ids or None, processes=procs)
    except AggregatorError as e:
        click.echo(f"error: {e}", err=True)
        ctx.exit(EXIT_FAILED)
    finally:
        close_context(context)
    rows = [
        (
            o.source_id,
            outcome_label(o),
            str(o.new_count),
            str(o.updated_count),
            str(o.unchanged_count),
            str(o.dropped_count),
            o.error or "",
        )
        for o in sorted(outcomes, key=lambda o: o.source_id)
        if show_all or len(outcomes) <= QUIET_ABOVE or o.new_count or o.updated_count or o.error
    ]
    rows += [(sid, "busy", *"0000", "being fetched by another process") for sid in skipped]
    header = ("source", "status", "new", "updated", "unchanged", "dropped", "error")
    click.echo(format_table(header, rows))
    hidden = len(outcomes) + len(skipped) - len(rows)
    if hidden:
        click.echo(f"({hidden} unchanged source(s) not listed; --all lists every source)")
    failed = [o for o in outcomes if o.kind is OutcomeKind.ERROR]
    totals = (sum(o.new_count for o in outcomes), sum(o.updated_count for o in outcomes))
    click.echo(f"{totals[0]} new, {totals[1]} updated, {len(failed)} source(s) failed")
    if strict and failed:
        ctx.exit(EXIT_FAILED)


@click.command()
@global_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def sources(ctx: click.Context, as_json: bool) -> None:
    """Show each source: category, last fetch, status, next due, items, errors."""
    settings = settings_or_exit(ctx)
    context = open_or_exit(ctx, settings)
    try:
        context.store.sync_config(
            source_plans(settings), configured_categories(settings), datetime.now(UTC)
        )
        rows = context.store.list_source_status()
    except AggregatorError as e:
        click.echo(f"error: {e}", err=True)
        ctx.exit(EXIT_FAILED)
    finally:
        close_context(context)
    configured = {s.id: s for s in settings.sources}
    schedules = {s.id: s.schedule(settings.defaults) for s in settings.sources}
    tz = ZoneInfo(settings.timezone)
    if as_json:
        out = [{**r.as_json(), "schedule": schedules.get(r.source_id)} for r in rows]
        click.echo(json.dumps(out, ensure_ascii=False, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(rows)} source(s), times in {settings.timezone}")
    for column in (
        "source",
        "category",
        "last fetch",
        "status",
        "schedule",
        "next due",
        "items",
        "dropped",
        "errors",
        "last error or warning",
    ):
        table.add_column(column, overflow="fold")
    for r in rows:
        source = configured.get(r.source_id)
        named_by = source.category_field() if source else None
        category = r.category or (f"from {named_by}" if named_by else "-")
        status = (r.last_outcome or "never") + (f" {r.last_status}" if r.last_status else "")
        if r.health in ("disabled", "retired"):
            status = r.health
        table.add_row(
            r.source_id,
            category,
            local_time_text(r.last_fetch_at, tz),
            status,
            schedules.get(r.source_id, "-"),
            local_time_text(r.next_due_at, tz) if r.health not in ("disabled", "retired") else "-",
            str(r.item_count),
            str(r.last_dropped_count),
            str(r.consecutive_errors),
            _last_words(r.last_error, r.last_warning, r.url, source.url if source else None),
        )
    Console(width=240 if not sys.stdout.isatty() else None).print(table)


def _last_words(error: str | None, warning: str | None, url: str, configured: str | None) -> str:
    """The last error, else the last warning; and the URL fetched when it is not the
    configured one (a feed found on the configured HTML page, or a permanent redirect)."""
    words = error or (f"warning: {warning}" if warning else "")
    if configured is not None and url != configured:
        words = f"{words}; fetches {url}" if words else f"fetches {url}"
    return words


@click.command()
@global_options
@click.option("--source", "source_id", required=True, metavar="ID", help="The source.")
@click.pass_context
def reprocess(ctx: click.Context, source_id: str) -> None:
    """Run a source's processing steps again over its stored items."""
    context = open_or_exit(ctx, settings_or_exit(ctx))
    try:
        report = reprocess_source(context, source_id)
    except AggregatorError as e:
        click.echo(f"error: {e}", err=True)
        ctx.exit(EXIT_FAILED)
    finally:
        close_context(context)
    click.echo(report.summary())
