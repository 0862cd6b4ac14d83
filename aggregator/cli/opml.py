"""``aggregator opml``: the configured sources as OPML 2.0 (``export``), and an OPML
file from another reader as source entries for the config (``import``). Neither edits
the operator's YAML: import writes a fragment to paste or merge."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from aggregator.cli.common import EXIT_CONFIG, EXIT_FAILED, global_options, settings_or_exit
from aggregator.errors import ConfigError


@click.group()
def opml() -> None:
    """OPML: export the configured sources, import another reader's subscriptions."""


@opml.command("export")
@global_options
@click.option("--out", "out_file", default=None, type=click.Path(dir_okay=False), help="File.")
@click.pass_context
def opml_export(ctx: click.Context, out_file: str | None) -> None:
    """Write the configured feed sources as OPML 2.0, grouped by category (stdout, or
    --out FILE). JSON API sources are left out: no other reader can subscribe to them."""
    from aggregator.publish.opml import is_feed_source, render_opml, source_groups

    settings = settings_or_exit(ctx.find_root())
    document = render_opml("aggregator sources", source_groups(settings), datetime.now(UTC))
    skipped = [s.id for s in settings.sources if not is_feed_source(s)]
    if out_file:
        Path(out_file).write_bytes(document)
    else:
        click.echo(document.decode("utf-8"), nl=False)
    if skipped:
        click.echo(
            f"left out {len(skipped)} source(s) that are not feeds (JSON APIs, HTML lists): "
            + ", ".join(skipped),
            err=True,
        )


@opml.command("import")
@global_options
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_file", default=None, type=click.Path(dir_okay=False), help="File.")
@click.pass_context
def opml_import(ctx: click.Context, file: str, out_file: str | None) -> None:
    """Turn FILE's feeds into source entries (YAML, with the categories they need),
    validated as the config is, on stdout or in --out FILE. Merge them into the config
    by hand: the config file is never edited."""
    from aggregator.config.opml import MAX_OPML_BYTES, sources_from_opml, to_yaml

    path = Path(file)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_OPML_BYTES + 1)
        fragment = sources_from_opml(data, path.name)
    except OSError as e:
        click.echo(f"error: {file}: {e.strerror or e}", err=True)
        ctx.exit(EXIT_FAILED)
    except ConfigError as e:
        for problem in e.problems:
            click.echo(f"error: {problem}", err=True)
        ctx.exit(EXIT_CONFIG)
    text = to_yaml(fragment)
    if out_file:
        Path(out_file).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)
    click.echo(f"{len(fragment['sources'])} source(s) from {file}", err=True)
