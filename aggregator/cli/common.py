"""What every command shares: loading the config and opening the store with one-line
errors, ``--config``/``--log-level`` after the command, tables and times for output.
Holds no business logic."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

import click

from aggregator.config.settings import Settings, load_settings
from aggregator.errors import AggregatorError, ConfigError
from aggregator.ingest.update import Context
from aggregator.model import FetchOutcome, OutcomeKind
from aggregator.runtime.service import open_context

log = logging.getLogger("aggregator")
EXIT_FAILED, EXIT_CONFIG = 1, 1


def open_or_exit(ctx: click.Context, settings: Settings, migrate: bool | None = None) -> Context:
    """The store, fetcher and lease owner, or one line on stderr and exit 1."""
    try:
        return open_context(settings, migrate)
    except AggregatorError as e:
        click.echo(f"error: {e}", err=True)
        ctx.exit(EXIT_FAILED)
    raise AssertionError("unreachable")


def settings_or_exit(ctx: click.Context) -> Settings:
    try:
        return load_settings(ctx.obj["config"])
    except ConfigError as e:
        for problem in e.problems:
            click.echo(f"error: {problem}", err=True)
        ctx.exit(EXIT_CONFIG)
    raise AssertionError("unreachable")


CONFIG_HELP = "Config file (default config/sources.yaml; env AGGREGATOR_CONFIG)."
LOG_LEVELS = click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False)


def _set_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.ensure_object(dict)["config"] = value


def _set_log_level(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        logging.getLogger().setLevel(value.upper())


def global_options(command: Callable[..., None]) -> Callable[..., None]:
    """``--config`` and ``--log-level`` after the command too (``aggregator fetch --config
    x.yaml``), where most command lines take them; the command's value wins over the one
    given before it. The group has already run (logging set up, ``ctx.obj`` made)."""
    command = click.option(
        "--log-level",
        type=LOG_LEVELS,
        default=None,
        expose_value=False,
        callback=_set_log_level,
        help="Log level (as before the command).",
    )(command)
    return click.option(
        "--config",
        type=click.Path(),
        default=None,
        expose_value=False,
        callback=_set_config,
        help=CONFIG_HELP,
    )(command)


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain fixed-width table (fast for thousands of rows, fine in logs and pipes)."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    widths[-1] = 0  # the last column (errors) is never padded
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * max(w, len(h)) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def local_time_text(moment: datetime | None, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def outcome_label(outcome: FetchOutcome) -> str:
    if outcome.kind is OutcomeKind.ERROR:
        return f"error {outcome.http_status}" if outcome.http_status else "error"
    if outcome.kind is OutcomeKind.OK and outcome.error:
        return f"partial {outcome.http_status}"
    return {
        OutcomeKind.NOT_MODIFIED: "304 not modified",
        OutcomeKind.UNCHANGED_BODY: "unchanged",
    }.get(outcome.kind, str(outcome.http_status))


def report_outcome(outcome: FetchOutcome) -> None:
    if outcome.kind is OutcomeKind.ERROR:
        log.warning("%s", outcome.error)
    else:
        log.info(
            "%s: %s, %d new, %d updated",
            outcome.source_id,
            outcome_label(outcome),
            outcome.new_count,
            outcome.updated_count,
        )
