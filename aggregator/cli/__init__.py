"""The command line: ``aggregator [--config PATH] COMMAND [--config PATH]``.

Commands (each documented in docs/cli.md; a test keeps the two in step):

    run            the scheduler and the HTTP server in one process
    serve          the HTTP server only
    export         write feeds, pages or Jekyll posts as files
    fetch          one pass now over all (or --source) sources, then a table
    sources        each source's status at a glance
    reprocess      a source's processing steps again over its stored items
    check-config   validate the config file, print every problem, exit 1 if any
    config-schema  print the JSON Schema of the config file
    db upgrade     apply database migrations
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from typing import NoReturn

import click

from aggregator.cli import maintenance, opml, passes, servers
from aggregator.cli.common import CONFIG_HELP, LOG_LEVELS


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


# Every command, listed here rather than registered as a side effect of an import.
for command in (
    servers.run,
    servers.serve,
    servers.worker,
    maintenance.export,
    passes.fetch,
    passes.sources,
    passes.reprocess,
    maintenance.check_config,
    maintenance.config_schema,
    maintenance.db,
    opml.opml,
):
    main.add_command(command)
