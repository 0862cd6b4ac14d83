"""The processing steps' YAML, parsed into frozen typed options (the steps themselves
are in aggregator/process/).

A step is a one-key mapping, the key naming the step and its value holding its options:

    process:
      - block: {pattern: "广告|推广", fields: [title]}
      - rewrite: {remove: ["div.share"], drop_query: ["utm_*"]}

Patterns and selectors are checked here, so a bad one is a config error with its file,
line and key like any other. Every key is documented in docs/configuration.md.
"""

from __future__ import annotations

import difflib
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
)

ItemField = Literal["title", "content", "summary", "author", "categories", "link"]
TextField = Literal["title", "content", "summary", "author"]
Script = Literal["zh-hans", "zh-hant", "zh-tw", "zh-hk"]


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as e:
        raise ValueError(f"bad regex {value!r}: {e}") from e
    return value


def _check_selector(value: str) -> str:
    from cssselect import GenericTranslator, SelectorError

    try:
        GenericTranslator().css_to_xpath(value)
    except SelectorError as e:
        raise ValueError(f"bad CSS selector {value!r}: {e}") from e
    return value


Regex = Annotated[str, AfterValidator(_check_regex)]
Selector = Annotated[str, AfterValidator(_check_selector)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Match(_Frozen):
    """``keep`` and ``block``: a regular expression searched in the named fields."""

    pattern: Regex
    fields: tuple[ItemField, ...] = Field(("title", "content"), min_length=1)


class Replacement(_Frozen):
    pattern: Regex
    with_: str = Field("", alias="with")
    fields: tuple[TextField, ...] = Field(("title", "summary", "content"), min_length=1)


class Rewrite(_Frozen):
    remove: tuple[Selector, ...] = ()  # elements removed from content and summary
    replace: tuple[Replacement, ...] = ()
    drop_query: tuple[str, ...] = ()  # query parameter names (fnmatch: utm_*) dropped


class PageUrl(_Frozen):
    """Where an item's page is read from: its link with this replacement (a print or
    mobile version of the page, or a local copy)."""

    pattern: Regex
    with_: str = Field(alias="with")


class FullText(_Frozen):
    min_chars: int = Field(300, ge=0)  # 0: always fetch the article
    selector: Selector | None = None  # else the extraction library finds the article
    page_url: PageUrl | None = None  # default: the item's link


class Convert(_Frozen):
    to: Script
    fields: tuple[TextField, ...] = Field(("title", "summary", "content"), min_length=1)


class KeepStep(_Frozen):
    keep: Match


class BlockStep(_Frozen):
    block: Match


class RewriteStep(_Frozen):
    rewrite: Rewrite


class FullTextStep(_Frozen):
    full_text: FullText


class ConvertStep(_Frozen):
    convert: Convert


STEP_MODELS: dict[str, type[BaseModel]] = {
    "keep": KeepStep,
    "block": BlockStep,
    "rewrite": RewriteStep,
    "full_text": FullTextStep,
    "convert": ConvertStep,
}


def _step_name(value: Any) -> str | None:
    if isinstance(value, dict) and len(value) == 1:
        return f"Step{next(iter(value))}"  # a capitalised tag: left out of error paths
    if isinstance(value, BaseModel):
        return f"Step{next(iter(type(value).model_fields))}"
    return None


def _one_known_step(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value
    known = ", ".join(STEP_MODELS)
    if not isinstance(value, dict) or len(value) != 1:
        raise ValueError(f"a step is a mapping with one key, the step's name ({known})")
    name = next(iter(value))
    if name not in STEP_MODELS:
        close = difflib.get_close_matches(str(name), list(STEP_MODELS), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(f"unknown step {name!r} ({hint}known: {known})")
    if value[name] is None:  # "- rewrite:" with nothing under it
        return {name: {}}
    return value


StepConfig = Annotated[
    Annotated[KeepStep, Tag("Stepkeep")]
    | Annotated[BlockStep, Tag("Stepblock")]
    | Annotated[RewriteStep, Tag("Steprewrite")]
    | Annotated[FullTextStep, Tag("Stepfull_text")]
    | Annotated[ConvertStep, Tag("Stepconvert")],
    Discriminator(_step_name),
    BeforeValidator(_one_known_step),
]
"""One configured step: ``{name: options}``."""


def step_name(step: BaseModel) -> str:
    """The name a configured step was given (``block`` for ``BlockStep``)."""
    return next(iter(type(step).model_fields))


def step_options(step: BaseModel) -> BaseModel:
    options: BaseModel = getattr(step, step_name(step))
    return options
