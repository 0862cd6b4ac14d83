"""Text helpers shared by parsing and rendering. Holds no business logic."""

from __future__ import annotations

import re

from lxml import etree

# Characters XML 1.0 forbids (C0 controls but tab/newline/return, DEL, lone surrogates,
# non-characters): none may reach an output document, so none is kept at ingest either.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]")


def xml_safe(text: str | None) -> str:
    """Text with every character XML 1.0 forbids removed."""
    return _XML_INVALID.sub("", text) if text else ""


def untrusted_xml_parser() -> etree.XMLParser:
    """An lxml parser for documents from outside (feeds, OPML files): no DTD, no entity
    expansion, no network, no huge trees (XXE and billion laughs come to nothing), and
    comments and processing instructions dropped."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        recover=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        load_dtd=False,
    )
