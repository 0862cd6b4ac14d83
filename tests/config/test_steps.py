"""Processing steps in the config: every mistake is one line naming file, line and key."""

from __future__ import annotations

import pytest

from aggregator.config.settings import json_schema, parse_settings
from aggregator.config.steps import BlockStep, FullTextStep, RewriteStep
from aggregator.errors import ConfigError

CONFIG = """\
categories:
  news: {{title: News}}
defaults:
  process:
    - block: {{pattern: "广告"}}
sources:
  - id: a
    url: https://example.com/feed.xml
    category: news
    process:
      - rewrite: {{drop_query: [utm_*]}}
{step}
"""

BAD_STEPS = [
    pytest.param(
        "      - blok: {pattern: x}",
        "sources.yaml:12: sources[0].process[1]: unknown step 'blok' (did you mean 'block'? "
        "known: keep, block, rewrite, full_text, convert)",
        id="unknown step",
    ),
    pytest.param(
        '      - keep: {pattern: "([a"}',
        "sources.yaml:12: sources[0].process[1].keep.pattern: bad regex '([a': "
        "unterminated character set at position 1",
        id="bad regex",
    ),
    pytest.param(
        '      - rewrite: {remove: ["div..share"]}',
        "sources.yaml:12: sources[0].process[1].rewrite.remove[0]: bad CSS selector "
        "'div..share': Expected ident, got <DELIM '.' at 4>",
        id="bad selector",
    ),
    pytest.param(
        "      - rewrite:\n          replace: [{pattern: '(', with: ''}]",
        "sources.yaml:13: sources[0].process[1].rewrite.replace[0].pattern: bad regex '(': "
        "missing ), unterminated subpattern at position 0",
        id="bad regex in a replacement, on its own line",
    ),
    pytest.param(
        '      - full_text: {selector: "p["}',
        "sources.yaml:12: sources[0].process[1].full_text.selector: bad CSS selector 'p[': "
        "Expected ident or '*', got <EOF at 2>",
        id="bad full-text selector",
    ),
    pytest.param(
        "      - {block: {pattern: x}, keep: {pattern: y}}",
        "sources.yaml:12: sources[0].process[1]: a step is a mapping with one key, the step's "
        "name (keep, block, rewrite, full_text, convert)",
        id="two steps in one mapping",
    ),
    pytest.param(
        "      - full_text: {min_chars: -1}",
        "sources.yaml:12: sources[0].process[1].full_text.min_chars: "
        "Input should be greater than or equal to 0",
        id="negative min_chars",
    ),
]


@pytest.mark.parametrize(("step", "problem"), BAD_STEPS)
def test_a_bad_step_is_one_line_with_file_line_and_key(step: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(CONFIG.format(step=step), "sources.yaml")
    assert caught.value.problems == [problem]


def test_steps_parse_in_order_defaults_first() -> None:
    step = "      - full_text: {min_chars: 0, selector: 'div#ContentBody'}\n      - rewrite:"
    settings = parse_settings(CONFIG.format(step=step), "sources.yaml")
    steps = settings.sources[0].effective_steps(settings.defaults)
    assert [type(s) for s in steps] == [BlockStep, RewriteStep, FullTextStep, RewriteStep]
    assert steps[2].full_text.selector == "div#ContentBody"  # type: ignore[union-attr]


def test_the_schema_covers_the_steps() -> None:
    schema = json_schema()
    process = schema["$defs"]["Source"]["properties"]["process"]
    names = {
        next(iter(schema["$defs"][ref["$ref"].rsplit("/", 1)[1]]["properties"]))
        for ref in process["items"]["oneOf"]
    }
    assert names == {"keep", "block", "rewrite", "full_text", "convert"}
    assert "with" in schema["$defs"]["Replacement"]["properties"]
