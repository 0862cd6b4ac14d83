"""An HTML page that lists items (``type: html``), read with the selectors the source's
``html`` block gives (config/selectors.py): the item list, and in each item its title,
link, date and summary. The body of each item is its linked page, read by the
``full_text`` processing step; the list gives the title, link, date and teaser.

Pure: bytes in, values out. An item without a title or an http(s) link is skipped (and
counted in a warning); an item without a readable date gets its first-seen time, as any
undated feed item does (decide.settle_date).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lxml import etree, html

from aggregator.config.selectors import to_xpath
from aggregator.errors import ParseError
from aggregator.ingest.encodings import decode_body
from aggregator.ingest.fields import ParseRules, clean, parse_date, plain_text, web_link
from aggregator.model import ParsedFeed, ParsedItem


class _Field:
    """One configured selector, compiled once per parse."""

    def __init__(self, selector: str) -> None:
        path, self.attribute = to_xpath(selector)
        self.xpath = etree.XPath(path)

    def all(self, context: Any) -> list[Any]:
        found = self.xpath(context)
        return list(found) if isinstance(found, list) else []

    def first(self, context: Any) -> str | None:
        for found in self.all(context):
            value: str | None = None
            if isinstance(found, str):  # an XPath that ends in @attr or text()
                value = str(found)
            elif isinstance(found, etree._Element):
                if self.attribute is not None:
                    value = found.get(self.attribute)
                else:
                    value = "".join(str(part) for part in found.itertext())
            if value is not None and value.strip():
                return value.strip()
        return None


def parse_html_list(body: bytes, content_type: str | None, rules: ParseRules) -> ParsedFeed:
    config: Mapping[str, str | None] = rules.html or {}
    if not config.get("items") or not config.get("title"):
        raise ParseError("type html needs html.items and html.title")
    text = decode_body(body, content_type).text
    try:
        document = html.document_fromstring(text)
    except (etree.ParserError, ValueError) as e:
        raise ParseError(f"not an HTML page: {e}") from e
    fields = {
        name: _Field(selector)
        for name, selector in config.items()
        if selector and name in ("title", "link", "date", "summary")
    }
    base = rules.base_url
    items: list[ParsedItem] = []
    skipped = 0
    for element in _Field(str(config["items"])).all(document):
        if not isinstance(element, etree._Element):
            continue
        title = plain_text(fields["title"].first(element))
        link = web_link(clean(fields["link"].first(element)), base) if "link" in fields else None
        if not title or link is None:
            skipped += 1
            continue
        dated = None
        if "date" in fields:
            dated = parse_date(fields["date"].first(element), rules.source_tz, rules.date_format)
        summary = clean(fields["summary"].first(element)) if "summary" in fields else None
        items.append(
            ParsedItem(
                title=title,
                link=link,
                summary=summary,
                published_at=dated[0] if dated else None,
                published_offset_minutes=dated[1] if dated else None,
            )
        )
    if not items and not skipped:
        raise ParseError(f"html.items {config['items']!r} matched nothing on the page")
    warnings = (f"{skipped} list entries without a title or link skipped",) if skipped else ()
    return ParsedFeed(
        title=plain_text(document.findtext(".//title")) or None,
        link=base,
        items=tuple(items),
        version="html-list",
        warnings=warnings,
    )
