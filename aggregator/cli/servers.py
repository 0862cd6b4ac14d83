"""The long-running commands: ``run`` (scheduler and HTTP server in one process),
``worker`` (fetch only) and ``serve`` (HTTP only), with the listening socket checked
before anything starts."""

from __future__ import annotations

import errno
import os
import signal
import socket
import threading
from types import FrameType
from typing import Any

import click

from aggregator.cli.common import (
    EXIT_FAILED,
    global_options,
    log,
    open_or_exit,
    report_outcome,
    settings_or_exit,
)
from aggregator.config.reload import ConfigWatcher
from aggregator.config.settings import Settings, config_path
from aggregator.ingest.update import Context
from aggregator.model import FetchOutcome
from aggregator.observe.procdir import multiprocess_dir
from aggregator.runtime.memory import Trimmer
from aggregator.runtime.scheduler import Dispatcher
from aggregator.runtime.service import close_context, start_long_running


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


def _dispatcher(context: Context) -> Dispatcher:
    """The long-running scheduler, reporting each outcome to the log and the metrics."""
    from aggregator.observe.metrics import record_batch, record_outcome

    def on_outcome(outcome: FetchOutcome) -> None:
        record_outcome(outcome)
        report_outcome(outcome)

    return Dispatcher(context, on_outcome=on_outcome, on_batch=record_batch)


def _watch(ctx: click.Context, settings: Settings) -> ConfigWatcher:
    """Follow the config file (reload.py); SIGHUP checks it at once."""
    watcher = ConfigWatcher(config_path(ctx.obj["config"]), settings)
    signal.signal(signal.SIGHUP, lambda _signum, _frame: watcher.wake())
    watcher.start()
    return watcher


host_option = click.option("--host", default=None, help="Listen address (config server.host).")
port_option = click.option(
    "--port", type=int, default=None, help="Listen port (config server.port)."
)


@click.command()
@global_options
@host_option
@port_option
@click.pass_context
def run(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Run the scheduler and the HTTP server in one process, until SIGTERM or SIGINT."""
    from aggregator.serve.app import create_app

    settings = settings_or_exit(ctx)
    host = host or settings.server.host
    port = port or settings.server.port
    _check_port(ctx, host, port)
    context = open_or_exit(ctx, settings)
    trimmer = start_long_running(context.store)
    dispatcher = _dispatcher(context)
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
        _shut_down(watcher, dispatcher, trimmer, context)


def _shut_down(
    watcher: ConfigWatcher, dispatcher: Dispatcher, trimmer: Trimmer, context: Context
) -> None:
    """The end of ``run`` and ``worker``: stop following the config, let fetches in
    flight finish, stop trimming, close the store and fetcher."""
    log.info("finishing fetches in flight")
    watcher.stop()
    dispatcher.stop()
    trimmer.stop()
    close_context(context)
    log.info("stopped")


@click.command()
@global_options
@click.pass_context
def worker(ctx: click.Context) -> None:
    """Fetch only (no HTTP), until SIGTERM or SIGINT. Run any number, on any machines,
    against one PostgreSQL database: they share the schedule through leases."""
    settings = settings_or_exit(ctx)
    context = open_or_exit(ctx, settings)
    trimmer = start_long_running(context.store)
    dispatcher = _dispatcher(context)
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
        _shut_down(watcher, dispatcher, trimmer, context)


@click.command()
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
    settings = settings_or_exit(ctx)
    host = host or settings.server.host
    port = port or settings.server.port
    _check_port(ctx, host, port)
    open_or_exit(ctx, settings).store.close()  # migrate if needed, and fail early and clearly
    if ctx.obj["config"]:
        os.environ["AGGREGATOR_CONFIG"] = ctx.obj["config"]  # read by each server process
    log.info("serving http://%s:%d/ with %s, %d worker(s)", host, port, server_name, workers)
    if workers > 1:
        # prometheus-client's multiprocess mode: every worker writes its metrics to files
        # in one directory, and a scrape of any worker adds them all up (observe.metrics)
        with multiprocess_dir():
            _serve_with(server_name, host, port, workers)
    else:
        _serve_with(server_name, host, port, workers)


WORKERS_KILL_SECONDS = 10  # a server process that has not stopped by then is killed


def _serve_with(server_name: str, host: str, port: int, workers: int) -> None:
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
        # a worker still starting when the stop signal came can miss it and keep serving;
        # without a bound the parent waited for it forever (seen under load in tests)
        workers_kill_timeout=WORKERS_KILL_SECONDS,
    ).serve()
