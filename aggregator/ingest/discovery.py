"""Feed autodiscovery: a source URL that is a site's HTML page names its feeds in
``<link rel="alternate" type="...">`` elements (https://www.rssboard.org/rss-autodiscovery);
the first of a type we read is followed. Pure: bytes in, a URL out.
"""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

from lxml import etree, html

from aggregator.ingest.encodings import decode_body

FEED_TYPES = frozenset(
    (
        "application/rss+xml",
        "application/atom+xml",
        "application/feed+json",
        "application/json",  # JSON Feed 1.0 pages often say only this
    )
)
HTML_PAGE_ERROR = "an HTML page, not a feed"  # what parse_body says of one


def find_feed_link(body: bytes, content_type: str | None, page_url: str) -> str | None:
    """The first feed the page links to with rel="alternate" and a feed type, resolved
    against the page's URL; None when it names none. A page reached over http(s) may only
    lead to http(s) (never to a file: URL on the machine)."""
    try:
        document = html.document_fromstring(decode_body(body, content_type).text)
    except (etree.ParserError, ValueError):
        return None
    for link in document.iter("link"):
        rels = (link.get("rel") or "").lower().split()
        kind = (link.get("type") or "").split(";")[0].strip().lower()
        href = (link.get("href") or "").strip()
        if "alternate" not in rels or kind not in FEED_TYPES or not href:
            continue
        try:
            url = urljoin(page_url, href)
            scheme = urlsplit(url).scheme.lower()
        except ValueError:
            continue
        page_scheme = urlsplit(page_url).scheme.lower()
        if scheme in ("http", "https") or (scheme == "file" and page_scheme == "file"):
            return url
    return None
