"""Untrusted HTML from sources made safe to store and republish, with nh3 (Ammonia).

Kept: ordinary article markup (paragraphs, lists, tables, images, links) and ``class``
attributes (the original site's ``<p class="em_media">`` footer). Dropped: scripts,
styles, event handlers, frames, forms, and any URL whose scheme is not http, https or
mailto (so no ``javascript:`` or ``data:``). Relative URLs are resolved against the
item's link so they still work when republished elsewhere.
"""

from __future__ import annotations

from urllib.parse import urljoin

import nh3

from aggregator.text import xml_safe

_ATTRIBUTES = {
    "*": {"class", "title", "lang", "dir"},
    "a": {"href", "hreflang"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "time": {"datetime"},
}
_URL_ATTRIBUTES = {"href", "src"}
_SCHEMES = {"http", "https", "mailto"}


def sanitize_html(fragment: str | None, base_url: str | None = None) -> str | None:
    """Safe HTML for ``fragment``; None stays None."""
    if fragment is None:
        return None

    def resolve(tag: str, attribute: str, value: str) -> str | None:
        if attribute in _URL_ATTRIBUTES and base_url:
            return urljoin(base_url, value.strip())
        return value

    return nh3.clean(
        xml_safe(fragment),
        attributes=_ATTRIBUTES,
        url_schemes=_SCHEMES,
        attribute_filter=resolve,
        link_rel="noopener noreferrer",
        strip_comments=True,
    )
