"""Which charset a fetched body is in, and its text: no parsing here.

The order (parser.py calls ``decode_body`` before any parser sees the bytes):

1. a byte-order mark wins; without one, UTF-16 and UTF-32 are told by where the zero
   bytes of the first characters fall (XML 1.0 Appendix F; RFC 8259 section 8.1);
2. valid UTF-8 with multi-byte sequences is UTF-8, whatever the label says (a
   mislabelled feed: "iso-8859-1" over UTF-8 Chinese);
3. then the charset the HTTP header or the XML declaration names, with GB2312 and GBK read
   as GB18030 (their superset: publishers who declare gb2312 routinely use characters
   outside it, such as 镕), and Big5 as Big5-HKSCS;
4. when neither a declared charset nor UTF-8 decodes the bytes: UTF-8 all the same if
   only a few sequences are broken, else GB18030 when they read as Chinese in it (our
   sources are Chinese), else windows-1252; the text then comes with a warning naming
   the charset used, which the feed carries to the fetch log and the source's status.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Sequence
from typing import NamedTuple

XML_ENCODING = re.compile(rb"^\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._:-]+)[\"']", re.I)
CHARSET_PARAMETER = re.compile(r"charset\s*=\s*\"?([A-Za-z0-9._:-]+)", re.I)
_ALIASES = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "big5": "big5hkscs",
    "cp950": "big5hkscs",
}
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def canonical(name: str) -> str | None:
    """The codec Python has for a charset's name, GB2312/GBK as GB18030 and Big5 as
    Big5-HKSCS; None for a name it does not know."""
    try:
        codec = codecs.lookup(name).name
    except LookupError:
        return None
    return _ALIASES.get(codec, _ALIASES.get(name.lower(), codec))


class Decoded(NamedTuple):
    text: str
    encoding: str  # the codec used
    warning: str | None = (
        None  # set when the charset was a fallback (step 4 of the module docstring)
    )


# XML 1.0 Appendix F: the first character ("<", or JSON's "{", "[" or white space) is
# ASCII, so the zero bytes around it tell the width and the byte order
_WIDE = (
    (re.compile(rb"\x00\x00\x00[\x01-\x7f]"), "utf-32-be"),
    (re.compile(rb"[\x01-\x7f]\x00\x00\x00"), "utf-32-le"),
    (re.compile(rb"\x00[\x01-\x7f]\x00[\x01-\x7f]"), "utf-16-be"),
    (re.compile(rb"[\x01-\x7f]\x00[\x01-\x7f]\x00"), "utf-16-le"),
)
# a non-ASCII character right after a Latin letter: how Latin-1 text ("très",
# "simulações") looks when read as GB18030, and how Chinese text rarely does
_AFTER_LETTER = re.compile(r"[A-Za-z][^\x00-\x7f]")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
# UTF-8 with a few broken bytes (a byte lost in transit, a cut multi-byte character) is
# still UTF-8: at most one bad sequence to this many good non-ASCII characters
UTF8_GOOD_PER_BAD = 20


def wide_encoding(body: bytes) -> str | None:
    """UTF-16 or UTF-32 (with the byte order), by a byte-order mark or, without one, by
    the zero bytes of the first character; None for anything ASCII-compatible."""
    for bom, name in _BOMS:
        if body.startswith(bom):
            return None if name == "utf-8-sig" else name
    head = body[:4]
    return next((name for pattern, name in _WIDE if pattern.fullmatch(head)), None)


def _reads_as_chinese(text: str) -> bool:
    """Whether GB18030's reading of a body is Chinese text, not Latin-1 accents read as
    Chinese: "très" and "simulações" are valid GB18030 ("tr鑣", "simula珲es"), but there
    every such character follows a Latin letter, where Chinese ones rarely do (A股)."""
    total = len(_NON_ASCII.findall(text))
    return total > 0 and 2 * len(_AFTER_LETTER.findall(text)) <= total


def _fallback(body: bytes, declared: Sequence[str]) -> Decoded:
    """Neither a declared charset nor UTF-8 decodes ``body``: UTF-8 all the same when only
    a few bytes break it, else GB18030 when the bytes read as Chinese in it, else
    windows-1252; with a warning naming what was used."""
    names = list(dict.fromkeys(name.lower() for name in declared))
    if not names:
        what = "none declared, and the bytes are not UTF-8"
    elif names == ["utf-8"]:
        what = "the bytes are not UTF-8 as declared"
    else:
        what = f"the bytes are neither {' nor '.join(names)} as declared, nor UTF-8"
    text = body.decode("utf-8", errors="replace")
    bad = text.count("\ufffd") - body.count(b"\xef\xbf\xbd")  # U+FFFD given as such
    good = len(_NON_ASCII.findall(text)) - bad
    if good >= UTF8_GOOD_PER_BAD * bad:
        replaced = f"{bad} undecodable sequence{'s' if bad > 1 else ''} replaced"
        return Decoded(text, "utf-8", f"charset: {what}; read as UTF-8, {replaced}")
    try:
        text = body.decode("gb18030")
        if _reads_as_chinese(text):
            return Decoded(text, "gb18030", f"charset: {what}; read as GB18030")
    except UnicodeDecodeError:
        pass
    # the five bytes windows-1252 leaves undefined become U+FFFD (not the C1 controls
    # browsers make of them, which no output may carry)
    text = body.decode("cp1252", errors="replace")
    return Decoded(text, "cp1252", f"charset: {what}; read as windows-1252")


def decode_body(body: bytes, content_type: str | None = None) -> Decoded:
    """Decode a body to text (see the module docstring for the order)."""
    for bom, name in _BOMS:
        if body.startswith(bom):
            return Decoded(body.decode(name, errors="replace"), name)  # the codec eats the BOM
    wide = wide_encoding(body)
    if wide is not None:
        return Decoded(body.decode(wide, errors="replace"), wide)
    declared: list[str] = []
    if content_type and (found := CHARSET_PARAMETER.search(content_type)):
        declared.append(found.group(1))
    if found_decl := XML_ENCODING.match(body[:512]):
        declared.append(found_decl.group(1).decode("ascii"))
    if not body.isascii():
        # Valid UTF-8 with multi-byte sequences is UTF-8, whatever the label says: a
        # single-byte charset such as iso-8859-1 "decodes" any bytes into mojibake, and
        # real GBK text is practically never valid UTF-8 by accident.
        try:
            return Decoded(body.decode("utf-8"), "utf-8")
        except UnicodeDecodeError:
            pass
    for name in [*declared, "utf-8"]:
        codec = canonical(name)
        if codec is None:
            continue
        try:
            return Decoded(body.decode(codec), codec)
        except UnicodeDecodeError:
            continue
    return _fallback(body, declared)
