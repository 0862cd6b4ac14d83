"""Commands on files and the database: ``export`` (feeds, pages, Jekyll posts as files),
``check-config``, ``config-schema`` and ``db upgrade``."""

from __future__ import annotations

import json

import click

from aggregator.cli.common import (
    EXIT_CONFIG,
    EXIT_FAILED,
    global_options,
    open_or_exit,
    settings_or_exit,
)
from aggregator.config.settings import json_schema, load_settings
from aggregator.errors import AggregatorError, ConfigError, ExportError
from aggregator.runtime.service import close_context


@click.command()
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

    settings = settings_or_exit(ctx)
    try:
        chosen = parse_formats(formats)
    except AggregatorError as e:
        click.echo(f"error: {e}", err=True)
        ctx.exit(EXIT_FAILED)
    context = open_or_exit(ctx, settings)
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


@click.command("check-config")
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


@click.command("config-schema")
def config_schema() -> None:
    """Print the JSON Schema of the config file (for editors)."""
    click.echo(json.dumps(json_schema(), ensure_ascii=False, indent=2))


@click.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@global_options
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply every pending migration to the configured database."""
    settings = settings_or_exit(ctx.find_root())
    context = open_or_exit(ctx, settings, migrate=True)
    close_context(context)
    click.echo("database is at the newest schema")
