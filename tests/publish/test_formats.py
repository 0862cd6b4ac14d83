"""The output formats: every renderer is there whatever was imported first, each renders
a valid document of its content type, and an unknown extension is a clear error."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import lxml.html
import pytest

from aggregator.errors import PublishError, UnknownFormatError
from aggregator.model import SourceInfo, StoredItem
from aggregator.publish import formats
from aggregator.publish.formats import RENDERERS, get_renderer
from aggregator.publish.query import FEED_FORMATS
from aggregator.publish.render import ChannelView, ItemView, atom_id
from tests.feedcheck import CHECKS

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = {
    "xml": "application/rss+xml",
    "atom": "application/atom+xml",
    "json": "application/feed+json",
    "html": "text/html",
}
NOW = datetime(2022, 1, 25, 7, 24, 31, tzinfo=UTC)
CHANNEL = ChannelView(
    key="news",
    title="新闻",
    description="一个分类",
    self_url="https://site.example/feeds/news.xml",
    html_url="https://site.example/category/news.html",
    feed_url_base="https://site.example/feeds/news",
    site_url="https://site.example",
    language="zh-cn",
    ttl_minutes=30,
    updated=NOW,
)
VIEW = ItemView(
    item=StoredItem(
        item_id=1,
        stable_id="NW1",
        seq=7,
        title="标题 <b>",
        link="https://news.example/1",
        guid="NW1",
        summary="<p>摘要</p>",
        content=None,
        author="记者",
        published_at=NOW,
        published_offset_minutes=480,
        first_seen_at=NOW,
        updated_at=NOW,
        update_count=0,
        source_id="src",
        category_slugs=("news",),
        first_seq=7,
    ),
    categories=(("news", "新闻"),),
    source=SourceInfo(source_id="src", url="https://news.example/feed", title="来源"),
)


def run_python(code: str) -> str:
    """Run ``code`` in a fresh interpreter (nothing of the package imported yet)."""
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize(
    "first_import",
    [
        "aggregator.publish.formats",
        "aggregator.publish.publisher",
        "aggregator.publish.render",
    ],
)
def test_a_fresh_interpreter_sees_every_format(first_import: str) -> None:
    """Importing one module, then the registry, gives the full set: nothing depends on
    which module happened to be imported before."""
    code = (
        f"import {first_import}\n"
        "from aggregator.publish.formats import RENDERERS, get_renderer\n"
        "print(','.join(sorted(RENDERERS)))\n"
        "print(get_renderer('html').content_type)\n"
    )
    extensions, html_type = run_python(code).splitlines()
    assert extensions.split(",") == sorted(EXPECTED)
    assert html_type.startswith("text/html")


def test_the_registry_is_exactly_the_documented_formats() -> None:
    doc = formats.__doc__ or ""
    documented = dict(re.findall(r"^    (\w+) .*?  (\S+/\S+) ", doc, re.M))
    assert documented == EXPECTED
    assert set(RENDERERS) == set(EXPECTED)


def test_every_feed_format_a_request_can_ask_for_has_a_renderer() -> None:
    assert set(FEED_FORMATS) <= set(RENDERERS)


def test_the_registry_cannot_be_changed_at_run_time() -> None:
    with pytest.raises(TypeError):
        RENDERERS["md"] = RENDERERS["xml"]  # type: ignore[index]


@pytest.mark.parametrize("extension", sorted(EXPECTED))
def test_each_renderer_makes_a_valid_document_of_its_type(extension: str) -> None:
    renderer = get_renderer(extension)
    assert renderer.extension == extension
    assert renderer.content_type == f"{EXPECTED[extension]}; charset=utf-8"
    body = renderer.render(CHANNEL, [VIEW])
    if extension in CHECKS:
        assert CHECKS[extension](body) == []
    if extension == "json":
        assert json.loads(body)["items"][0]["id"] == "NW1"
    elif extension == "html":
        page = lxml.html.document_fromstring(body)
        assert "标题 <b>" in page.text_content()
    else:  # the stable id, and the self link typed as the document is
        assert (atom_id("NW1") if extension == "atom" else "NW1").encode() in body
        assert f'rel="self" type="{EXPECTED[extension]}"'.encode() in body


@pytest.mark.parametrize("extension", ["md", "rss", "", "XML"])
def test_an_unknown_extension_is_a_clear_error(extension: str) -> None:
    with pytest.raises(UnknownFormatError, match=r"no output format .* \(known: xml, atom"):
        get_renderer(extension)
    assert issubclass(UnknownFormatError, PublishError)
