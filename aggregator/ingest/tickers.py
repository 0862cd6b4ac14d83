"""The tickers of the items a fetch writes: the configured names file as one matcher per
process (rebuilt when the file changes), and new or changed intents given their codes.
Recognition itself is pure (``finance/tickers.py``); this module only reads the file.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from aggregator.config.settings import Settings
from aggregator.errors import ConfigError
from aggregator.finance.tickers import (
    EMPTY_MATCHER,
    NameMatcher,
    build_matcher,
    find_tickers,
    parse_names_csv,
)
from aggregator.model import IntentKind, ItemIntent

_TAG = re.compile(r"<[^>]*>")  # a code in an href or attribute is not named in the text


@functools.lru_cache(maxsize=4)
def _matcher(path: str, _mtime_ns: int) -> NameMatcher:
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError([f"{path}:0: ticker_names: cannot read the file: {e}"]) from e
    return build_matcher(parse_names_csv(text, path))


def names_matcher(settings: Settings) -> NameMatcher:
    """The automaton of ``ticker_names``, built once per file version (not per item)."""
    if settings.ticker_names is None:
        return EMPTY_MATCHER
    try:
        mtime = Path(settings.ticker_names).stat().st_mtime_ns
    except OSError as e:
        raise ConfigError([f"{settings.ticker_names}:0: ticker_names: {e.strerror}"]) from e
    return _matcher(settings.ticker_names, mtime)


def with_tickers(intents: Sequence[ItemIntent], matcher: NameMatcher) -> tuple[ItemIntent, ...]:
    """New and changed items with the securities their title and text name."""
    return tuple(
        replace(i, tickers=find_tickers(_TAG.sub(" ", _text(i)), matcher))
        if i.kind is not IntentKind.MEMBERSHIP
        else i
        for i in intents
    )


def _text(intent: ItemIntent) -> str:
    return "\n".join(part for part in (intent.title, intent.summary, intent.content) if part)
