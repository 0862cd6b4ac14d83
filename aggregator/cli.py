"""The command line: ``aggregator [--config PATH] COMMAND [--config PATH]``.

Commands (each documented in docs/cli.md; a test keeps the two in step):

    run            the scheduler and the HTTP server in one process
    serve          the HTTP server only
    export         write feeds, pages or Jekyll posts as files
    fetch          one pass now over all (or --source) sources, then a table
    sources        each source's status at a glance
    check-config   validate the config file, print every problem, exit 1 if any
    config-schema  print the JSON Schema of the config file
    db upgrade     apply database migrations
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from types import FrameType
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

import click

from aggregator.config.reload import ConfigWatcher
from aggregator.config.settings import Settings, config_path, json_schema, load_settings
from aggregator.errors import AggregatorError, ConfigError, ExportError
from aggregator.ingest.update import Context
from aggregator.model import FetchOutcome, OutcomeKind
from aggregator.runtime.scheduler import Dispatcher, configured_categories, run_pass, source_plans
from aggregator.runtime.service import close_context, open_context, start_long_running

log = logging.getLogger("aggregator")
EXIT_FAILED, EXIT_CONFIG = 1, 1


def _open(ctx: click.Context, settings: Settings, migrate: bool | None = None) -> Context:
    """The store, fetcher and lease owner, or one line on stderr and exit 1."""
    try:
        return open_context(settings, migrate)
    except AggregatorError as e:
        click.echo(f"error: {e}", err=True)
        ctx.exit(EXIT_FAILED)
    raise AssertionError("unreachable")


def _settings(ctx: click.Context) -> Settings:
    try:
        return load_settings(ctx.obj["config"])
    except ConfigError as e:
        for problem in e.problems:
            click.echo(f"error: {problem}", err=True)
        ctx.exit(EXIT_CONFIG)
    raise AssertionError("unreachable")


CONFIG_HELP = "Config file (default config/sources.yaml; env AGGREGATOR_CONFIG)."
LOG_LEVELS = click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    envvar="AGGREGATOR_CONFIG",
    type=click.Path(),
    default=None,
    help=CONFIG_HELP,
)
@click.option(
    "--log-level",
    envvar="AGGREGATOR_LOG_LEVEL",
    default="INFO",
    show_default=True,
    type=LOG_LEVELS,
)
@click.version_option(package_name="aggregator")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, log_level: str) -> None:
    """Fetch feeds on a schedule, store each item once, republish by category."""
    logging.basicConfig(
        level=log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    ctx.obj = {"config": config_path}


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


def entry() -> NoReturn:
    """The console script and ``python -m aggregator``: the command, then a quick exit.

    A pass that filed items by media name holds pypinyin's dictionaries (400,000 phrases)
    in memory, and the interpreter's teardown freed them object by object: 0.27 s of
    every ``aggregator fetch``. Once the command has returned and left no other thread
    running, nothing is left to clean up but the logs and the output, which are flushed
    here; the process then leaves at once. Otherwise it exits the usual way.
    """
    try:
        main(prog_name="aggregator")  # standalone mode: ends in SystemExit
        code: str | int | None = 0
    except SystemExit as stop:
        code = stop.code
    if isinstance(code, str) or threading.active_count() > 1:
        sys.exit(code)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe (| head)
            stream.flush()
    os._exit(code or 0)


QUIET_ABOVE = 50  # sources in a pass above which unchanged ones are not listed


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain fixed-width table (fast for thousands of rows, fine in logs and pipes)."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    widths[-1] = 0  # the last column (errors) is never padded
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * max(w, len(h)) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _local(moment: datetime | None, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _outcome_label(outcome: FetchOutcome) -> str:
    if outcome.kind is OutcomeKind.ERROR:
        return f"error {outcome.http_status}" if outcome.http_status else "error"
    if outcome.kind is OutcomeKind.OK and outcome.error:
        return f"partial {outcome.http_status}"
    return {
        OutcomeKind.NOT_MODIFIED: "304 not modified",
        OutcomeKind.UNCHANGED_BODY: "unchanged",
    }.get(outcome.kind, str(outcome.http_status))


@main.command()
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
    settings = _settings(ctx)
    known = {s.id for s in settings.sources}
    unknown = [sid for sid in source_ids if sid not in known]
    if unknown:
        click.echo(f"error: unknown source id(s): {', '.join(unknown)}", err=True)
        ctx.exit(EXIT_CONFIG)
    context = _open(ctx, settings)
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
            _outcome_label(o),
            str(o.new_count),
            str(o.updated_count),
            str(o.unchanged_count),
            o.error or "",
        )
        for o in sorted(outcomes, key=lambda o: o.source_id)
        if show_all or len(outcomes) <= QUIET_ABOVE or o.new_count or o.updated_count or o.error
    ]
    rows += [(sid, "busy", "0", "0", "0", "being fetched by another process") for sid in skipped]
    click.echo(format_table(("source", "status", "new", "updated", "unchanged", "error"), rows))
    hidden = len(outcomes) + len(skipped) - len(rows)
    if hidden:
        click.echo(f"({hidden} unchanged source(s) not listed; --all lists every source)")
    failed = [o for o in outcomes if o.kind is OutcomeKind.ERROR]
    totals = (sum(o.new_count for o in outcomes), sum(o.updated_count for o in outcomes))
    click.echo(f"{totals[0]} new, {totals[1]} updated, {len(failed)} source(s) failed")
    if strict and failed:
        ctx.exit(EXIT_FAILED)


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def _check_port(ctx: click.Context, host: str, port: int) -> None:
    """Exit 1 with one line unless ``host:port`` can be listened on, before anything starts:
    otherwise a second ``run`` logged "serving http://..." and only then died of uvicorn's
    ``[Errno 98] address already in use``. The probe binds as the servers do (with
    SO_REUSEADDR), so only a port someone listens on fails it."""
    try:
        _listening_socket(host, port).close()
    except OSError as e:
        hint = (
            "another process listens there; choose another port with --port"
            if e.errno == errno.EADDRINUSE
            else "see --host and --port"
        )
        click.echo(f"error: cannot listen on {host}:{port}: {e.strerror or e} ({hint})", err=True)
        ctx.exit(EXIT_FAILED)


def _serve(app: Any, host: str, port: int, workers: int = 1) -> None:
    import uvicorn

    # uvicorn handles SIGTERM/SIGINT by shutting down gracefully, then re-raises the
    # signal to the handler that was installed before it. Ours only notes it, so the
    # caller's cleanup (stop the scheduler, release leases) still runs and we exit 0.
    def note(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s", signal.Signals(signum).name)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, note)

    if workers > 1:
        # Several processes, each building its app from the environment
        # (service.app_from_env), sharing one listening socket made here: uvicorn's own is
        # created with protocol 0, and asyncio sets TCP_NODELAY only on connections
        # accepted from an IPPROTO_TCP socket. Without it Nagle's algorithm meets the
        # client's delayed ACK and every response waits about 40 ms (measured: 1.4k
        # instead of 7k+ requests/s per worker).
        from uvicorn.supervisors import Multiprocess

        config = uvicorn.Config(
            "aggregator.runtime.service:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
            access_log=False,
        )
        Multiprocess(config, sockets=[_listening_socket(host, port)]).run()
        return
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def _watch(ctx: click.Context, settings: Settings) -> ConfigWatcher:
    """Follow the config file (reload.py); SIGHUP checks it at once."""
    watcher = ConfigWatcher(config_path(ctx.obj["config"]), settings)
    signal.signal(signal.SIGHUP, lambda _signum, _frame: watcher.wake())
    watcher.start()
    return watcher


def _report(outcome: FetchOutcome) -> None:
    if outcome.kind is OutcomeKind.ERROR:
        log.warning("%s", outcome.error)
    else:
        log.info(
            "%s: %s, %d new, %d updated",
            outcome.source_id,
            _outcome_label(outcome),
            outcome.new_count,
            outcome.updated_count,
        )


host_option = click.option("--host", default=None, help="Listen address (config server.host).")
port_option = click.option(
    "--port", type=int, default=None, help="Listen port (config server.port)."
)


@main.command()
@global_options
@host_option
@port_option
@click.pass_context
def run(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Run the scheduler and the HTTP server in one process, until SIGTERM or SIGINT."""
    from aggregator.serve.app import create_app

    settings = _settings(ctx)
    host = host or settings.server.host
    port = port or settings.server.port
    _check_port(ctx, host, port)
    context = _open(ctx, settings)
    trimmer = start_long_running(context.store)
    dispatcher = Dispatcher(context, on_outcome=_report)
    dispatcher.start()
    watcher = _watch(ctx, settings)
    watcher.subscribe(dispatcher.apply_settings)  # the schedule first, then the web app
    log.info(
        "scheduler running: %d sources, %d workers; serving http://%s:%d/",
        len(settings.sources),
        settings.defaults.workers,
        host,
        port,
    )
    try:
        # uvicorn owns SIGTERM/SIGINT: it stops serving, then we stop the scheduler
        _serve(create_app(settings, context.store, dispatcher.is_alive, watcher), host, port)
    finally:
        log.info("finishing fetches in flight")
        watcher.stop()
        dispatcher.stop()
        trimmer.stop()
        close_context(context)
        log.info("stopped")


@main.command()
@global_options
@click.pass_context
def worker(ctx: click.Context) -> None:
    """Fetch only (no HTTP), until SIGTERM or SIGINT. Run any number, on any machines,
    against one PostgreSQL database: they share the schedule through leases."""
    settings = _settings(ctx)
    context = _open(ctx, settings)
    trimmer = start_long_running(context.store)
    dispatcher = Dispatcher(context, on_outcome=_report)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    dispatcher.start()
    watcher = _watch(ctx, settings)
    watcher.subscribe(dispatcher.apply_settings)
    log.info(
        "worker %s running: %d sources, %d fetches at once",
        context.owner,
        len(settings.sources),
        settings.defaults.workers,
    )
    try:
        stop.wait()
    finally:
        log.info("finishing fetches in flight")
        watcher.stop()
        dispatcher.stop()
        trimmer.stop()
        close_context(context)
        log.info("stopped")


@main.command()
@global_options
@host_option
@port_option
@click.option(
    "--workers",
    type=int,
    default=1,
    show_default=True,
    help="Server processes (each with its own render cache).",
)
@click.option(
    "--server",
    "server_name",
    type=click.Choice(["granian", "uvicorn"]),
    default="granian",
    show_default=True,
    help="HTTP server: granian measured 2.3x uvicorn's rate on cached feeds.",
)
@click.pass_context
def serve(
    ctx: click.Context, host: str | None, port: int | None, workers: int, server_name: str
) -> None:
    """Serve feeds, pages and the API only (no fetching)."""
    settings = _settings(ctx)
    host = host or settings.server.host
    port = port or settings.server.port
    _check_port(ctx, host, port)
    _open(ctx, settings).store.close()  # migrate if needed, and fail early and clearly
    if ctx.obj["config"]:
        os.environ["AGGREGATOR_CONFIG"] = ctx.obj["config"]  # read by each server process
    log.info("serving http://%s:%d/ with %s, %d worker(s)", host, port, server_name, workers)
    if server_name == "uvicorn":
        from aggregator.runtime.service import app_from_env

        _serve(app_from_env() if workers == 1 else None, host, port, workers)
        return
    from granian import Granian
    from granian.constants import Interfaces
    from granian.log import LogLevels

    # Each worker process builds its app from the environment (service.app_from_env).
    Granian(
        "aggregator.runtime.service:app_from_env",
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        factory=True,
        log_level=LogLevels.warning,
        log_access=False,
    ).serve()


@main.command()
@global_options
@click.option(
    "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder."
)
@click.option(
    "--format",
    "formats",
    default="rss,atom,json,html",
    show_default=True,
    help="Comma-separated: rss, atom, json, html, jekyll.",
)
@click.option("--category", default=None, metavar="SLUG", help="Only this category.")
@click.option("--site-url", default=None, help="Public base URL for links (config site_url).")
@click.pass_context
def export(
    ctx: click.Context, out_dir: str, formats: str, category: str | None, site_url: str | None
) -> None:
    """Write feeds, pages or Jekyll posts as files (each written, then renamed)."""
    from pathlib import Path

    from aggregator.publish.export import export as run_export
    from aggregator.publish.export import parse_formats
    from aggregator.publish.publisher import Publisher

    settings = _settings(ctx)
    try:
        chosen = parse_formats(formats)
    except AggregatorError as e:
        click.echo(f"error: {e}", err=True)
        ctx.exit(EXIT_FAILED)
    context = _open(ctx, settings)
    try:
        publisher = Publisher(settings, context.store, site_url)
        written = run_export(publisher, Path(out_dir), chosen, category)
    except (AggregatorError, OSError) as e:
        kind = "export failed" if isinstance(e, ExportError | OSError) else "error"
        click.echo(f"{kind}: {e}", err=True)
        ctx.exit(EXIT_FAILED)
    finally:
        close_context(context)
    click.echo(f"wrote {len(written)} file(s) to {out_dir}")


@main.command()
@global_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def sources(ctx: click.Context, as_json: bool) -> None:
    """Show each source: category, last fetch, status, next due, items, errors."""
    settings = _settings(ctx)
    context = _open(ctx, settings)
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
            _local(r.last_fetch_at, tz),
            status,
            schedules.get(r.source_id, "-"),
            _local(r.next_due_at, tz) if r.health not in ("disabled", "retired") else "-",
            str(r.item_count),
            str(r.consecutive_errors),
            r.last_error or (f"warning: {r.last_warning}" if r.last_warning else ""),
        )
    Console(width=160 if not sys.stdout.isatty() else None).print(table)


@main.command("check-config")
@global_options
@click.pass_context
def check_config(ctx: click.Context) -> None:
    """Validate the config file; print every problem and exit 1 if there are any."""
    try:
        settings = load_settings(ctx.obj["config"])
    except ConfigError as e:
        for problem in e.problems:
            click.echo(problem, err=True)
        click.echo(f"{len(e.problems)} problem(s) found", err=True)
        ctx.exit(EXIT_CONFIG)
    click.echo(
        f"config OK: {len(settings.sources)} source(s), {len(settings.categories)} categorie(s)"
    )


@main.command("config-schema")
def config_schema() -> None:
    """Print the JSON Schema of the config file (for editors)."""
    click.echo(json.dumps(json_schema(), ensure_ascii=False, indent=2))


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@global_options
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply every pending migration to the configured database."""
    settings = _settings(ctx.find_root())
    context = _open(ctx, settings, migrate=True)
    close_context(context)
    click.echo("database is at the newest schema")
