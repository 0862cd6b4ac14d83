"""``convert``: Simplified and Traditional Chinese, with OpenCC's tables (the ``opencc``
package: the project's own Python binding, with its phrase tables, so 发 becomes 發 or 髮
by the phrase around it, which no character map can do).

    to: zh-hans    Traditional -> Simplified           (OpenCC t2s)
        zh-hant    Simplified -> Traditional           (s2t, OpenCC's standard forms)
        zh-tw      Simplified -> Traditional, Taiwan   (s2tw)
        zh-hk      Simplified -> Traditional, Hong Kong (s2hk)

Markup passes through untouched: the tables map Chinese characters only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import cache

from aggregator.config.steps import Convert
from aggregator.model import ParsedItem
from aggregator.process.values import Dropped, ProcessContext, Step, with_texts

OPENCC_CONFIGS = {"zh-hans": "t2s", "zh-hant": "s2t", "zh-tw": "s2tw", "zh-hk": "s2hk"}
_loading = threading.Lock()


@cache
def _converter(config: str) -> Callable[[str], str]:
    import opencc

    convert: Callable[[str], str] = opencc.OpenCC(config).convert
    return convert


def converter(script: str) -> Callable[[str], str]:
    """The conversion to ``script`` (loaded once per process: reading the tables takes a
    few hundred milliseconds)."""
    with _loading:
        return _converter(OPENCC_CONFIGS[script])


def build_convert(options: Convert) -> Step:
    fields = options.fields
    to_script = converter(options.to)

    def convert(item: ParsedItem, context: ProcessContext) -> ParsedItem | Dropped:
        changes: dict[str, str] = {}
        for name in fields:
            value = getattr(item, name)
            if value:
                converted = to_script(value)
                if converted != value:
                    changes[name] = converted
        return with_texts(item, changes)

    return convert
