"""Which securities a text names: A shares (``600519.SH``, ``000001.SZ``,
``430047.BJ``), Hong Kong (``00700.HK``) and US tickers (``AAPL.US``). Pure.

Codes are recognised by their written form and the exchange's code ranges, never as any
bare six digits: ``成交额600519万元``, ``2025年600519``, a phone number and an order id are
not tickers. The forms, each checked against the ranges below:

    600519.SH  000001.SZ  430047.BJ  00700.HK  AAPL.US  AAPL.O    suffixed
    SH600519   sz000001   BJ430047                                 prefixed
    NASDAQ:AAPL  NYSE: BABA                                        US exchange prefix
    贵州茅台(600519)  腾讯控股（00700）                             a name, then the code
    股票代码：600519   证券代码 600519                               a code label, then it

Names without a code (贵州茅台, 宁德时代) come from the operator's names file, matched by
one Aho-Corasick automaton (pyahocorasick) built once per configuration: its cost per
text grows with the text, not with the number of names. Overlapping names keep the
leftmost longest (中国平安银行 is not 平安银行 inside 中国平安).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aggregator.errors import ConfigError

# Stock code ranges by exchange (SSE: 60x main board, 688/689 STAR, 900 B shares; SZSE:
# 000-003 main board, 300-302 ChiNext, 200 B shares; BSE: 43/83/87 and the 920 series).
# The ranges are disjoint, so a bare code's exchange is known from its digits.
_RANGES: Mapping[str, re.Pattern[str]] = {
    "SH": re.compile(r"(?:60[0-35]|68[89]|900)\d{3}"),
    "SZ": re.compile(r"(?:00[0-3]|30[0-2]|200)\d{3}"),
    "BJ": re.compile(r"(?:43|83|87)\d{4}|920\d{3}"),
}
_SUFFIX_ALIASES = {"SH": "SH", "SS": "SH", "SZ": "SZ", "BJ": "BJ"}

_D = r"(?<![0-9A-Za-z.])"  # not inside a longer number, word or code
_E = r"(?![0-9A-Za-z])"
_SUFFIXED = re.compile(_D + r"(\d{6})\.(SH|SS|SZ|BJ)" + _E, re.IGNORECASE)
_HK = re.compile(_D + r"(\d{4,5})\.HK" + _E, re.IGNORECASE)
# .O/.N/.OQ: Nasdaq and NYSE as Wind and Reuters write them
_US = re.compile(_D + r"([A-Z]{1,5}(?:\.[A-Z])?)\.(US|OQ|O|N)" + _E)
_PREFIXED = re.compile(r"(?<![0-9A-Za-z])(SH|SZ|BJ)(\d{6})" + _E, re.IGNORECASE)
_US_PREFIXED = re.compile(r"(?<![A-Za-z])(NASDAQ|NYSE|AMEX)\s*[:：]\s*([A-Z]{1,5})" + _E)
# a name (CJK or Latin, ending in a letter) then the code in ASCII or full-width brackets
# and no unit after it: 净利润(000123)万元 is an amount
_UNIT = r"(?!\s*[万亿元股%％个年月日号手倍])"
_AFTER_NAME = re.compile(r"[\u4e00-\u9fffA-Za-z][(（]\s*(\d{6}|0\d{4})\s*[)）]" + _UNIT)
_AFTER_LABEL = re.compile(r"(?:股票|证券|股份)?代码\s*[:：为是]?\s*(\d{6})(?!\d)" + _UNIT)


def exchange_of(code: str) -> str | None:
    """The exchange of a bare six-digit A-share code, or None if it is in no range."""
    for exchange, pattern in _RANGES.items():
        if pattern.fullmatch(code):
            return exchange
    return None


def _a_share(digits: str, exchange: str | None = None) -> str | None:
    found = exchange_of(digits)
    if found is None or (exchange is not None and exchange != found):
        return None
    return f"{digits}.{found}"


@dataclass(frozen=True, slots=True)
class NameMatcher:
    """Security names to codes, as one automaton (build it once with ``build_matcher``)."""

    automaton: Any  # ahocorasick.Automaton: untyped C extension
    size: int

    def codes_in(self, text: str) -> set[str]:
        if self.size == 0 or not text:
            return set()
        found: set[str] = set()
        end_of_last = -1
        # iter_long yields the leftmost longest matches without overlaps
        for end, (name, code) in self.automaton.iter_long(text):
            start = end - len(name) + 1
            if start > end_of_last:
                found.add(code)
                end_of_last = end
        return found


def build_matcher(names: Iterable[tuple[str, str]]) -> NameMatcher:
    """An automaton over ``(name, code)`` pairs; codes must already be normalised."""
    import ahocorasick

    automaton = ahocorasick.Automaton()
    size = 0
    for name, code in names:
        if name:
            automaton.add_word(name, (name, code))
            size += 1
    if size:
        automaton.make_automaton()
    return NameMatcher(automaton, size)


EMPTY_MATCHER = NameMatcher(None, 0)


def normalise_code(text: str) -> str | None:
    """``600519``, ``SH600519``, ``600519.SH``, ``00700.HK``, ``AAPL.US`` to one form."""
    value = text.strip()
    if match := _SUFFIXED.fullmatch(value):
        return _a_share(match[1], _SUFFIX_ALIASES[match[2].upper()])
    if match := _PREFIXED.fullmatch(value):
        return _a_share(match[2], match[1].upper())
    if match := _HK.fullmatch(value):
        return f"{int(match[1]):05d}.HK"
    if match := _US.fullmatch(value):
        return f"{match[1]}.US"
    if re.fullmatch(r"\d{6}", value):
        return _a_share(value)
    return None


def parse_names_csv(text: str, filename: str) -> list[tuple[str, str]]:
    """The operator's names file: a header ``name,code``, then one security a line."""
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or not {"name", "code"} <= set(reader.fieldnames):
        raise ConfigError([f"{filename}:1: ticker_names: needs the columns name and code"])
    pairs: list[tuple[str, str]] = []
    problems: list[str] = []
    for row in reader:
        name, raw = (row.get("name") or "").strip(), (row.get("code") or "").strip()
        code = normalise_code(raw)
        if not name or code is None:
            problems.append(f"{filename}:{reader.line_num}: ticker_names: bad row {raw!r}")
            continue
        pairs.append((name, code))
    if problems:
        raise ConfigError(problems)
    return pairs


def find_tickers(text: str, matcher: NameMatcher = EMPTY_MATCHER) -> tuple[str, ...]:
    """Every security ``text`` names, by code or by a known name: sorted, unique."""
    if not text:
        return ()
    found: set[str] = set()
    for match in _SUFFIXED.finditer(text):
        found.add(_a_share(match[1], _SUFFIX_ALIASES[match[2].upper()]) or "")
    for match in _PREFIXED.finditer(text):
        found.add(_a_share(match[2], match[1].upper()) or "")
    for match in _HK.finditer(text):
        found.add(f"{int(match[1]):05d}.HK")
    for match in _US.finditer(text):
        found.add(f"{match[1]}.US")
    for match in _US_PREFIXED.finditer(text):
        found.add(f"{match[2]}.US")
    for match in _AFTER_NAME.finditer(text):
        digits = match[1]
        # five digits in brackets after a name is Hong Kong's form (腾讯控股(00700))
        found.add(f"{digits}.HK" if len(digits) == 5 else _a_share(digits) or "")
    for match in _AFTER_LABEL.finditer(text):
        found.add(_a_share(match[1]) or "")
    found |= matcher.codes_in(text)
    found.discard("")
    return tuple(sorted(found))
