"""Every processing step by name, and ``Pipeline``: one source's steps, compiled.

    keep       filters.build_keep        drop items the pattern is not found in
    block      filters.build_block       drop items the pattern is found in
    rewrite    rewrite.build_rewrite     remove elements, replace text, clean links
    full_text  fulltext.build_full_text  the article from the item's page
    convert    convert.build_convert     Simplified/Traditional Chinese

A builder takes the step's options (config/steps.py) and returns the step, a function
``(ParsedItem, ProcessContext) -> ParsedItem | Dropped`` with its patterns and selectors
compiled. The list is written out, as the renderers' is (publish/formats.py), so it is
complete whatever was imported first. ``compile_steps`` builds a source's pipeline once
per configuration: a fetch looks it up, it does not compile anything per item.
Model: miniflux's ``internal/reader/processor``; shouya/rss-funnel's filter list.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from aggregator.config.steps import StepConfig, step_name, step_options
from aggregator.model import ParsedItem
from aggregator.process.convert import build_convert
from aggregator.process.filters import build_block, build_keep
from aggregator.process.fulltext import build_full_text
from aggregator.process.rewrite import build_rewrite
from aggregator.process.values import Dropped, ProcessContext, Step

STEPS: Mapping[str, Callable[[Any], Step]] = MappingProxyType(
    {
        "keep": build_keep,
        "block": build_block,
        "rewrite": build_rewrite,
        "full_text": build_full_text,
        "convert": build_convert,
    }
)


@dataclass(frozen=True, slots=True)
class Pipeline:
    """One source's steps in order. ``fingerprint`` names their configuration: an item
    dropped under one configuration is looked at again under another."""

    names: tuple[str, ...]
    steps: tuple[Step, ...]
    fingerprint: str

    def __bool__(self) -> bool:
        return bool(self.steps)

    def run(self, item: ParsedItem, context: ProcessContext) -> ParsedItem | Dropped:
        """The item through every step, or the first step's ``Dropped``."""
        for step in self.steps:
            result = step(item, context)
            if isinstance(result, Dropped):
                return result
            item = result
        return item


def fingerprint(configs: Sequence[StepConfig]) -> str:
    """sha256 of the steps' configuration, written out the same way every time."""
    text = json.dumps(
        [step.model_dump(mode="json", by_alias=True) for step in configs],
        ensure_ascii=False,
        sort_keys=True,
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@lru_cache(maxsize=4096)
def compile_steps(configs: tuple[StepConfig, ...]) -> Pipeline:
    """The pipeline of these configured steps (cached: one build per configuration)."""
    names = tuple(step_name(step) for step in configs)
    steps = tuple(
        STEPS[name](step_options(step)) for name, step in zip(names, configs, strict=True)
    )
    return Pipeline(names, steps, fingerprint(configs))
