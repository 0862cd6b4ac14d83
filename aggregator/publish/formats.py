"""The output formats by extension: every renderer of a feed or page, listed here.

    xml   RSS 2.0 (feedgen)     application/rss+xml     render.render_rss
    atom  Atom 1.0 (feedgen)    application/atom+xml    render.render_atom
    json  JSON Feed 1.1         application/feed+json   render.render_json_feed
    html  a category page       text/html               pages.render_html

The list is written out, not filled by decorators as modules are imported, so it is
complete whichever module was imported first (a registering decorator in ``pages`` meant
no ``html`` renderer until something had imported ``pages``). A renderer takes a channel
and its items, ``(ChannelView, Sequence[ItemView]) -> bytes``. The Jekyll post is not a
format here: ``render.render_jekyll_post`` renders one item with the site URL, and the
exporter calls it for each item. Model: datasette's ``register_output_renderer``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from aggregator.errors import UnknownFormatError
from aggregator.publish.pages import HTML_CONTENT_TYPE, render_html
from aggregator.publish.render import (
    ATOM_CONTENT_TYPE,
    JSON_FEED_CONTENT_TYPE,
    RSS_CONTENT_TYPE,
    ChannelView,
    ItemView,
    render_atom,
    render_json_feed,
    render_rss,
)


@dataclass(frozen=True, slots=True)
class Renderer:
    extension: str
    content_type: str
    render: Callable[[ChannelView, Sequence[ItemView]], bytes]


RENDERERS: Mapping[str, Renderer] = MappingProxyType(
    {
        renderer.extension: renderer
        for renderer in (
            Renderer("xml", RSS_CONTENT_TYPE, render_rss),
            Renderer("atom", ATOM_CONTENT_TYPE, render_atom),
            Renderer("json", JSON_FEED_CONTENT_TYPE, render_json_feed),
            Renderer("html", HTML_CONTENT_TYPE, render_html),
        )
    }
)


def get_renderer(extension: str) -> Renderer:
    """The renderer for ``extension``; raises UnknownFormatError for any other."""
    renderer = RENDERERS.get(extension)
    if renderer is None:
        known = ", ".join(RENDERERS)
        raise UnknownFormatError(f"no output format {extension!r} (known: {known})")
    return renderer
