"""Static exports: the same documents the web service serves, written as files so nginx
or a CDN can serve them, and Jekyll posts in the original site's format.

    feeds/{slug|all}.{xml,atom,json}     --format rss, atom, json
    index.html, category/{slug}.html, item/{id}.html          --format html
    _posts/YYYY-MM-DD-{id}.md                                  --format jekyll

Every file is written to a temporary name beside it and renamed into place, so a reader
(or a crash) never sees half a file. Paths are built only from validated slugs and ids,
and checked to stay inside the output folder.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from aggregator.errors import ExportError
from aggregator.model import StoredItem
from aggregator.publish.pages import (
    HOME_LATEST_ITEMS,
    Section,
    outlet_names,
    page_item,
    render_home,
    render_item_page,
)
from aggregator.publish.publisher import FeedRequest, Publisher
from aggregator.publish.query import FeedQuery
from aggregator.publish.render import ItemView, jekyll_filename, render_jekyll_post
from aggregator.slug import is_valid_slug

FORMATS = ("rss", "atom", "json", "html", "jekyll")
FEED_EXTENSIONS = {"rss": "xml", "atom": "atom", "json": "json"}
HTML_CATEGORY_LIMIT = 500
BATCH = 500


def write_atomically(out_dir: Path, relative: str, data: bytes) -> Path:
    """Write ``out_dir/relative`` via a temporary file and a rename."""
    root = out_dir.resolve()
    target = (root / relative).resolve()
    if root not in target.parents:
        raise ExportError(f"refusing to write outside {root}: {relative!r}")
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def parse_formats(raw: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
    unknown = [name for name in chosen if name not in FORMATS]
    if unknown or not chosen:
        raise ExportError(
            f"unknown format(s) {', '.join(unknown) or '(none)'}: use {', '.join(FORMATS)}"
        )
    return chosen


def _all_items(publisher: Publisher, slug: str | None) -> Iterator[StoredItem]:
    offset = 0
    while True:
        page = publisher.store.list_feed_items((slug,) if slug else None, BATCH, offset)
        yield from page
        if len(page) < BATCH:
            return
        offset += BATCH


def export(
    publisher: Publisher, out_dir: Path, formats: Sequence[str], category: str | None = None
) -> list[Path]:
    """Write the chosen formats for one category (or all); returns the files written."""
    infos = publisher.categories()
    if category is not None and category not in infos:
        raise ExportError(f"no category {category!r} (known: {', '.join(sorted(infos))})")
    slugs = [category] if category else sorted(infos)
    for slug in slugs:
        if not is_valid_slug(slug):
            raise ExportError(f"category slug {slug!r} is not safe as a file name")
    titles = {slug: info.title for slug, info in infos.items()}
    sources = publisher.store.list_source_info()
    written: list[Path] = []
    base = publisher.site_url
    for name in formats:
        if name in FEED_EXTENSIONS:
            keys: list[tuple[str, tuple[str, ...] | None]] = [(s, (s,)) for s in slugs]
            if category is None:
                keys.append(("all", None))
            for key, key_slugs in keys:
                request = FeedRequest(key, key_slugs, FEED_EXTENSIONS[name], FeedQuery())
                document = publisher.render(request, base=base)
                written.append(
                    write_atomically(out_dir, f"feeds/{key}.{FEED_EXTENSIONS[name]}", document.body)
                )
        elif name == "html":
            sections = []
            outlets = outlet_names(infos.values())
            for slug in slugs:
                request = FeedRequest(slug, (slug,), "html", FeedQuery(limit=HTML_CATEGORY_LIMIT))
                document = publisher.render(request, base=base)
                written.append(write_atomically(out_dir, f"category/{slug}.html", document.body))
                latest = publisher.store.list_feed_items((slug,), 5)
                if latest:
                    sections.append(
                        Section(slug, titles[slug], tuple(page_item(i, outlets) for i in latest))
                    )
                page_order = list(_all_items(publisher, slug))
                for position, item in enumerate(page_order):
                    if item.category_slugs[0] != slug and item.category_slugs[0] in slugs:
                        continue  # its page is written from its first category, as served
                    categories = [(s, titles.get(s, s)) for s in item.category_slugs]
                    newer = page_order[position - 1] if position > 0 else None
                    older = page_order[position + 1] if position + 1 < len(page_order) else None
                    page = render_item_page(
                        item, categories, base, outlets=outlets, newer=newer, older=older
                    )
                    written.append(write_atomically(out_dir, f"item/{item.item_id}.html", page))
            if category is None:
                newest = publisher.store.list_feed_items(None, HOME_LATEST_ITEMS)
                home = render_home(sections, base, latest=[page_item(i, outlets) for i in newest])
                written.append(write_atomically(out_dir, "index.html", home))
        elif name == "jekyll":
            seen: set[int] = set()
            for slug in slugs:
                for view in publisher.views(list(_all_items(publisher, slug)), titles, sources):
                    if view.item.item_id in seen:
                        continue
                    seen.add(view.item.item_id)
                    written.append(_write_post(out_dir, view, base))
    return written


def _write_post(out_dir: Path, view: ItemView, site_url: str) -> Path:
    return write_atomically(
        out_dir, f"_posts/{jekyll_filename(view.item)}", render_jekyll_post(view, site_url)
    )
