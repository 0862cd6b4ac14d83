"""The ``html`` block of a ``type: html`` source: selectors of an HTML list page, checked
once when the config is read and turned into XPath for the reader (ingest/htmllist.py).
Holds no business logic.

    "span.time"          CSS: the text of the first match
    "a@href"             CSS, then an attribute of the first match
    "xpath://h3/a"       XPath (anything after "xpath:"), its first result's text
    "xpath://h3/a/@href" XPath to an attribute
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

_ATTRIBUTE = re.compile(r"^(?P<css>.*?)@(?P<name>[A-Za-z_][\w:.-]*)$")


def to_xpath(selector: str) -> tuple[str, str | None]:
    """The selector as (XPath relative to its context, attribute name or None). Raises
    ValueError, with the selector in the message, when it is not valid CSS or XPath."""
    from cssselect import GenericTranslator, SelectorError
    from lxml import etree

    text = selector.strip()
    if text.startswith("xpath:"):
        path = text.removeprefix("xpath:").strip()
        try:
            etree.XPath(path)
        except etree.XPathSyntaxError as e:
            raise ValueError(f"bad XPath {path!r}: {e}") from e
        return path, None
    found = _ATTRIBUTE.match(text)
    css, attribute = (found.group("css"), found.group("name")) if found else (text, None)
    if not css.strip():
        return ".", attribute  # "@href": an attribute of the context element itself
    try:
        return GenericTranslator().css_to_xpath(css, prefix="descendant-or-self::"), attribute
    except SelectorError as e:
        raise ValueError(f"bad CSS selector {css!r}: {e}") from e


def _check_html_selector(value: str) -> str:
    to_xpath(value)  # raises ValueError naming the selector
    return value


HtmlSelector = Annotated[str, AfterValidator(_check_html_selector)]


class HtmlList(BaseModel):
    """Where each item field lives on an HTML list page (``type: html``): CSS selectors
    (``a@href`` for an attribute) or XPath (``xpath:...``), see config/selectors.py."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    items: HtmlSelector  # each match is one item; the others are read inside it
    title: HtmlSelector
    link: HtmlSelector = "a@href"
    date: HtmlSelector | None = None  # without one, items get their first-seen time
    date_format: str | None = None  # strptime; else RFC 822 / ISO 8601
    summary: HtmlSelector | None = None
