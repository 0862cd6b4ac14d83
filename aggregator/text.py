"""Text helpers shared by parsing and rendering. Holds no business logic."""

from __future__ import annotations

import re

# Characters XML 1.0 forbids (C0 controls but tab/newline/return, DEL, lone surrogates,
# non-characters): none may reach an output document, so none is kept at ingest either.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]")


def xml_safe(text: str | None) -> str:
    """Text with every character XML 1.0 forbids removed."""
    return _XML_INVALID.sub("", text) if text else ""
