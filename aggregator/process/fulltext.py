"""``full_text``: an item whose content is short (a teaser) gets the article from its web
page.

When the item's text (content, else summary; markup not counted) is shorter than
``min_chars`` (0: always), its page is fetched through ``ProcessContext.fetch_page`` (the
orchestrator's, with the source's fetcher, limits and network rules) and the article is
taken from it: the first element ``selector`` matches, else what readability-lxml finds.
The article becomes the content (sanitized later like any content), the teaser the
summary when there was none. A page that does not come, or holds no article, leaves the
item as it was and says so in a warning on the fetch.

readability-lxml rather than trafilatura: on the project's article pages both found the
same article text, readability in 0.6 ms a page against 2.3 ms, with three dependencies
(lxml, cssselect, chardet) against trafilatura's seven more (htmldate, dateparser,
courlan, babel, justext, ...), and it returns the page's own article element with its
markup, which ``rewrite`` selectors can still address (docs/design.md, Processing).
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from aggregator.config.steps import FullText
from aggregator.errors import AggregatorError
from aggregator.model import ParsedItem
from aggregator.process.filters import markup_text
from aggregator.process.values import Dropped, ProcessContext, Step

_SPACE = re.compile(r"\s+")


def text_length(fragment: str | None) -> int:
    """Characters of text in an HTML fragment, white space not counted."""
    return len(_SPACE.sub("", markup_text(fragment))) if fragment else 0


def build_full_text(options: FullText) -> Step:
    selector: Any = None
    if options.selector:
        from lxml.cssselect import CSSSelector

        selector = CSSSelector(options.selector)
    page_url = options.page_url
    page_pattern = re.compile(page_url.pattern) if page_url else None

    def full_text(item: ParsedItem, context: ProcessContext) -> ParsedItem | Dropped:
        if not item.link or context.fetch_page is None or not context.needs_content:
            return item
        teaser = item.content or item.summary
        if options.min_chars and text_length(teaser) >= options.min_chars:
            return item
        url = item.link
        if page_pattern is not None and page_url is not None:
            url = page_pattern.sub(page_url.with_, url)
            if not is_safe_page_url(url):
                context.warn(f"full text of {item.link}: refused page address {url!r}")
                return item
        try:
            page = context.fetch_page(url)
        except AggregatorError as e:
            context.warn(f"full text of {item.link}: {type(e).__name__}: {e}")
            return item
        article = extract_article(page.text, selector)
        if not article:
            context.warn(f"full text of {item.link}: no article found in the page")
            return item
        return replace(item, content=article, summary=item.summary or item.content)

    return full_text


def is_safe_page_url(url: str) -> bool:
    """A page address made from a feed's link stays where the template points: a file:
    address with a ``..`` segment could read any file the process can."""
    parts = urlsplit(url)
    if parts.scheme in ("http", "https"):
        return bool(parts.netloc)
    return parts.scheme == "file" and ".." not in PurePosixPath(unquote(parts.path)).parts


def extract_article(page: str, selector: Any = None) -> str | None:
    """The article of an HTML page as an HTML fragment: the first element ``selector``
    (a compiled CSS selector) matches, else readability's pick; None when there is none."""
    import lxml.etree
    import lxml.html

    if selector is None:
        return _readability(page)
    try:
        root = lxml.html.document_fromstring(page)
    except (lxml.etree.ParserError, ValueError):
        return None
    found = selector(root)
    if not found:
        return None
    article = lxml.html.tostring(found[0], encoding="unicode", with_tail=False).strip()
    return article if text_length(article) else None


def _readability(page: str) -> str | None:
    from readability import Document
    from readability.readability import Unparseable

    try:
        article = Document(page).summary(html_partial=True)
    except (Unparseable, ValueError):
        return None
    return article.strip() if text_length(article) else None
