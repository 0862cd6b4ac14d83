"""OPML import: other readers' exports, our own round trip, and hostile files."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.config.opml import MAX_OPML_BYTES, sources_from_opml
from aggregator.config.settings import load_settings
from aggregator.errors import ConfigError
from aggregator.publish.opml import is_feed_source, render_opml, source_groups
from tests.test_architecture import ROOT as PACKAGE_ROOT

SAMPLE_CONFIG = PACKAGE_ROOT.parent / "config" / "sources.yaml"

# The shape Miniflux, FreshRSS and Inoreader export: folders of feeds, titles with
# spaces and non-ASCII, a feed outside any folder, the same title twice.
READER_EXPORT = b"""<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0">
  <head><title>Miniflux</title></head>
  <body>
    <outline text="Tech News" title="Tech News">
      <outline title="Hacker News" text="Hacker News" xmlUrl="https://news.ycombinator.com/rss"
               htmlUrl="https://news.ycombinator.com/" type="rss"/>
      <outline title="LWN" text="LWN" xmlUrl="https://lwn.net/headlines/rss" type="rss"/>
    </outline>
    <outline text="\xe8\xb4\xa2\xe7\xbb\x8f">
      <outline text="Hacker News" xmlUrl="https://hnrss.org/frontpage" type="rss"/>
    </outline>
    <outline text="loose" title="loose feed" xmlUrl="https://example.com/feed.xml"/>
  </body>
</opml>
"""


def test_a_readers_export_becomes_valid_sources() -> None:
    fragment = sources_from_opml(READER_EXPORT, "miniflux.opml")
    sources = {s["id"]: s for s in fragment["sources"]}
    assert sources["hacker-news"] == {
        "id": "hacker-news",
        "url": "https://news.ycombinator.com/rss",
        "category": "tech-news",
    }
    assert sources["hacker-news-2"]["category"] == "caijing"  # pinyin of the folder
    assert sources["loose"]["category"] == "uncategorized"
    assert fragment["categories"] == {
        "tech-news": {"title": "Tech News"},
        "caijing": {"title": "财经"},
        "uncategorized": {"title": "未分类"},
    }


def test_export_then_import_of_the_sample_config_gives_the_same_sources() -> None:
    from datetime import UTC, datetime

    settings = load_settings(SAMPLE_CONFIG)
    document = render_opml("sources", source_groups(settings), datetime.now(UTC))
    fragment = sources_from_opml(document)

    def shape(entry: dict[str, object]) -> dict[str, object]:
        return {k: entry.get(k) for k in ("id", "url", "category", "category_from", "enabled")}

    expected = [
        shape(
            {
                "id": s.id,
                "url": s.url,
                "category": s.category,
                "category_from": s.category_from,
                "enabled": None if s.enabled else False,
            }
        )
        for s in settings.sources
        if is_feed_source(s)
    ]
    assert expected  # the sample has feed sources
    assert [shape(e) for e in fragment["sources"]] == expected


@pytest.mark.parametrize(
    ("document", "message"),
    [
        pytest.param(
            b'<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b'<opml version="2.0"><body><outline text="&x;" xmlUrl="http://a/"/></body></opml>',
            "external entity",  # libxml2 refuses it before our DOCTYPE check
            id="xxe",
        ),
        pytest.param(
            b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
            + b"".join(
                f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i else "&lol;" * 10}">'.encode()
                for i in range(9)
            )
            + b']><opml version="2.0"><body><outline text="&lol8;" xmlUrl="http://a/"/>'
            b"</body></opml>",
            "amplification",
            id="billion-laughs",
        ),
        pytest.param(
            b'<!DOCTYPE opml [<!ENTITY t "text">]><opml version="2.0"><body>'
            b'<outline text="&t;" xmlUrl="http://a/"/></body></opml>',
            "DOCTYPE",
            id="internal-entity",
        ),
        pytest.param(b"<opml><body><outline", "not well-formed", id="truncated"),
        pytest.param(b"<rss version='2.0'><channel/></rss>", "not OPML", id="not-opml"),
        pytest.param(b" " * (MAX_OPML_BYTES + 1), "refused", id="huge"),
        pytest.param(
            b'<opml version="2.0"><body><outline text="x" xmlUrl="ftp://a/f"/></body></opml>',
            "bad URL",
            id="validated-as-config",
        ),
    ],
)
def test_hostile_or_wrong_files_are_one_line(document: bytes, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        sources_from_opml(document, "in.opml")
    assert len(caught.value.problems) == 1
    assert message in caught.value.problems[0]
    assert "\n" not in caught.value.problems[0]


def test_ids_are_always_valid(tmp_path: Path) -> None:
    document = (
        '<opml version="2.0"><body>'
        '<outline text="_weird name!!" xmlUrl="http://a.example/1"/>'
        '<outline text="" xmlUrl="http://b.example/2"/>'
        f'<outline text="{"x" * 300}" xmlUrl="http://c.example/3"/>'
        "</body></opml>"
    ).encode()
    ids = [s["id"] for s in sources_from_opml(document)["sources"]]
    assert len(ids) == 3
    assert all(0 < len(i) <= 100 for i in ids)
