"""Untrusted HTML from sources made safe to store and republish, with nh3 (Ammonia).

Kept: ordinary article markup (paragraphs, lists, tables, images, links) and ``class``
attributes (the original site's ``<p class="em_media">`` footer). Dropped: scripts,
styles, event handlers, frames, forms, and any URL whose scheme is not http, https or
mailto (so no ``javascript:`` or ``data:``). Relative URLs are resolved against the
item's link so they still work when republished elsewhere.
"""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

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
_OPTIONS = {
    "attributes": _ATTRIBUTES,
    "url_schemes": _SCHEMES,
    "link_rel": "noopener noreferrer",
    "strip_comments": True,
}
# Built once: nh3.clean converts its options on every call, a third of its cost.
_WITHOUT_URLS = nh3.Cleaner(**_OPTIONS)  # type: ignore[arg-type]


def _has_url_attribute(html: str) -> bool:
    # Entities cannot spell an attribute name, so a substring test is enough; lower()
    # and `in` beat a case-insensitive regex several times over on non-ASCII text.
    lowered = html.lower()
    return "href" in lowered or "src" in lowered


def sanitize_html(fragment: str | None, base_url: str | None = None) -> str | None:
    """Safe HTML for ``fragment``; None stays None."""
    if fragment is None:
        return None

    def resolve(tag: str, attribute: str, value: str) -> str | None:
        if attribute in _URL_ATTRIBUTES and base_url:
            # nh3 checks the scheme before this filter runs, and a value it reads as
            # relative can still join into a scheme: "\xa0javascript:" (an &nbsp; in
            # front) stripped by Python, or a base that is not http. So check again.
            try:
                joined = urljoin(base_url, value.strip())
                scheme = urlsplit(joined).scheme.lower()
            except ValueError:  # "//[x": an unclosed IPv6 host; nh3 would only log it
                return None
            return joined if scheme in _SCHEMES else None
        return value

    def clean(html: str) -> str:
        if base_url and _has_url_attribute(html):
            return nh3.clean(html, attribute_filter=resolve, **_OPTIONS)  # type: ignore[arg-type]
        # No URL to resolve: the filter would hand every value back unchanged, and a call
        # into Python per attribute costs more than the cleaning itself.
        return _WITHOUT_URLS.clean(html)

    try:
        cleaned = clean(fragment)
    except UnicodeEncodeError:  # a lone surrogate: nh3 takes UTF-8 only
        cleaned = clean(xml_safe(fragment))
    return xml_safe(cleaned)  # forbidden characters, also from references such as &#1;
