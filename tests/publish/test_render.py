"""What the renderers say about an item, read back from the documents: dates readers sort
on, provenance, plain text escaped for each format, untitled items. Items reach the store
through the real path (a real HTTP server, the parser, the store on SQLite and
PostgreSQL) and are rendered by the publisher as the web app and exports render them."""

from __future__ import annotations

import html
import json
import uuid
from datetime import datetime
from pathlib import Path

import lxml.html
import yaml
from lxml import etree

from aggregator.config.settings import Settings, parse_settings
from aggregator.publish.export import export
from aggregator.publish.publisher import FeedRequest, Publisher
from aggregator.publish.query import FeedQuery
from aggregator.publish.render import ITEM_NAMESPACE
from aggregator.runtime.scheduler import run_pass
from aggregator.store.sql import SqlStore
from tests.conftest import FIXTURES
from tests.feedcheck import CHECKS, STRICT
from tests.feedserver import FeedServer, Route
from tests.ingest.test_update import make_context

ATOM = "{http://www.w3.org/2005/Atom}"
SITE = "https://news.example"


def fetched(store: SqlStore, feed_server: FeedServer, config: str, **bodies: bytes) -> Settings:
    """``bodies`` served as /{name}.xml, ``config`` formatted with their URLs, one pass."""
    for name, body in bodies.items():
        feed_server.routes[f"/{name}.xml"] = Route(body)
    urls = {name: feed_server.url(f"/{name}.xml") for name in bodies}
    settings = parse_settings(
        f"site_url: {SITE}\nallow_networks: [127.0.0.0/8]\n" + config.format(**urls)
    )
    outcomes, _ = run_pass(make_context(settings, store))
    assert [o.error for o in outcomes] == [None] * len(outcomes)
    return settings


def rendered(settings: Settings, store: SqlStore, extension: str, key: str = "all") -> bytes:
    publisher = Publisher(settings, store, SITE)
    request = FeedRequest(key, None if key == "all" else (key,), extension, FeedQuery())
    body = publisher.render(request).body
    assert CHECKS[extension](body) == []
    return body


def atom_entries(body: bytes) -> dict[str, etree._Element]:
    """Entries by their alternate link."""
    root = etree.fromstring(body, STRICT)
    return {
        str(entry.find(ATOM + "link").get("href")): entry  # type: ignore[union-attr]
        for entry in root.iter(ATOM + "entry")
    }


# --------------------------------------------------------------------------- dates

DATES_CONFIG = """
categories: {{news: {{title: 新闻}}}}
sources:
  - {{id: atom, url: "{atom}", category: news}}
  - {{id: rss, url: "{rss}", category: news}}
"""
SEED_LINK = "http://finews.zning.xyz/html_News/NewsShare.html?infoCode=NW202201252261008680"
# (link, what readers sort by): the entry's own updated time, else its published time
EXPECTED_UPDATED = {
    "http://example.com/news/atom10-1.html": "2022-01-25T15:30:00+08:00",  # updated given
    "http://example.com/news/atom10-3.html": "2022-01-24T18:00:00+08:00",  # only updated
    SEED_LINK: "2022-01-25T15:24:31+08:00",  # RSS: none, so the published one
}


def test_atom_updated_and_json_date_modified_are_the_items_own(
    store: SqlStore, feed_server: FeedServer
) -> None:
    settings = fetched(
        store,
        feed_server,
        DATES_CONFIG,
        atom=(FIXTURES / "atom10.xml").read_bytes(),
        rss=(FIXTURES / "seed.rss").read_bytes(),
    )
    stored = {item.link: item for item in store.list_items(limit=10)}
    assert all(item.updated_at.year > 2022 for item in stored.values())  # stored today

    entries = atom_entries(rendered(settings, store, "atom"))
    got = {link: entries[link].findtext(ATOM + "updated") for link in EXPECTED_UPDATED}
    assert got == EXPECTED_UPDATED
    items = json.loads(rendered(settings, store, "json"))["items"]
    modified = {item["url"]: item["date_modified"] for item in items}
    assert {link: modified[link] for link in EXPECTED_UPDATED} == EXPECTED_UPDATED
    # the store's own time is still the API's, and the feed's (it changed when we wrote)
    feed = etree.fromstring(rendered(settings, store, "atom"), STRICT)
    newest = max(item.updated_at for item in stored.values())
    assert datetime.fromisoformat(str(feed.findtext(ATOM + "updated"))) == newest


def test_an_updated_time_in_the_future_is_clamped_to_the_fetch(
    store: SqlStore, feed_server: FeedServer
) -> None:
    atom = (FIXTURES / "atom10.xml").read_bytes()
    settings = fetched(
        store,
        feed_server,
        "categories: {{news: {{title: 新闻}}}}\n"
        'sources: [{{id: atom, url: "{atom}", category: news}}]',
        atom=atom.replace(b"2022-01-25T15:30:00", b"2099-01-01T00:00:00"),
    )
    (item,) = [i for i in store.list_items(limit=10) if str(i.link).endswith("atom10-1.html")]
    assert item.source_updated_at == item.first_seen_at  # the fetch's time
    entry = atom_entries(rendered(settings, store, "atom"))[str(item.link)]
    assert str(entry.findtext(ATOM + "updated")).startswith(str(item.first_seen_at.year))


# --------------------------------------------------------------------------- provenance


def test_atom_source_has_the_source_feeds_id_title_and_updated(
    store: SqlStore, feed_server: FeedServer, tmp_path: Path
) -> None:
    """RFC 4287 4.2.11, for a source on the web and one in a file on this server."""
    (tmp_path / "atom10.xml").write_bytes((FIXTURES / "atom10.xml").read_bytes())
    settings = fetched(
        store,
        feed_server,
        DATES_CONFIG.replace('"{atom}"', f'"{(tmp_path / "atom10.xml").as_uri()}"'),
        rss=(FIXTURES / "seed.rss").read_bytes(),
    )
    entries = atom_entries(rendered(settings, store, "atom"))
    sources = {
        link: {
            child.tag.removeprefix(ATOM): child.text or child.get("href")
            for child in entries[link].find(ATOM + "source")  # type: ignore[union-attr]
        }
        for link in EXPECTED_UPDATED
    }
    file_id = f"urn:uuid:{uuid.uuid5(ITEM_NAMESPACE, 'source:atom')}"
    assert sources == {
        "http://example.com/news/atom10-1.html": {
            "id": file_id,  # no URL to publish: nor in the id
            "title": "财经要闻 Atom 1.0（测试）",
            "updated": "2022-01-25T15:30:00+08:00",
        },
        "http://example.com/news/atom10-3.html": {
            "id": file_id,
            "title": "财经要闻 Atom 1.0（测试）",
            "updated": "2022-01-24T18:00:00+08:00",
        },
        SEED_LINK: {
            "id": feed_server.url("/rss.xml"),
            "title": "上海证券报新闻（测试）",
            "updated": "2022-01-25T15:24:31+08:00",
            "link": feed_server.url("/rss.xml"),
        },
    }


# --------------------------------------------------------------------------- plain text

MARKUP_FEED = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>t</title><link>http://m.example/</link>
<description>d</description>
<item><title>&amp;lt;a ondblclick="alert(1)"&amp;gt;标题&amp;lt;/a&amp;gt;</title>
<link>http://m.example/1</link><description>正文</description>
<category>&lt;a ondblclick="alert(2)"&gt;上海证券报&lt;/a&gt;</category>
<pubDate>Tue, 25 Jan 2022 15:24:31 +0800</pubDate></item>
<item><title>二</title><link>http://m.example/2</link><description>正文</description>
<category>&amp;lt;b onclick="alert(3)"&amp;gt;外媒&amp;lt;/b&amp;gt;</category>
<pubDate>Tue, 25 Jan 2022 15:24:31 +0800</pubDate></item>
</channel></rss>""".encode()
TITLE = '<a ondblclick="alert(1)">标题</a>'  # double-escaped in the feed: text
NAME = '<b onclick="alert(3)">外媒</b>'  # the same, for a media name


def test_titles_and_category_names_are_text_escaped_for_each_output(
    store: SqlStore, feed_server: FeedServer, tmp_path: Path
) -> None:
    settings = fetched(
        store,
        feed_server,
        "categories: {{shanghaizhengquanbao: {{title: 上海证券报新闻, name: 上海证券报}}}}\n"
        'sources: [{{id: tags, url: "{tags}", category_from: tags}}]',
        tags=MARKUP_FEED,
    )
    # stored as text: markup (a tag's <a>) removed, entities decoded once
    names = {c.name: c for c in store.list_categories()}
    assert set(names) == {"上海证券报", NAME}
    derived = names[NAME]
    assert derived.title == NAME + "新闻"
    assert {i.title for i in store.list_items(limit=5)} == {TITLE, "二"}
    # RSS: the channel <description> is HTML to readers, so the text is escaped for it
    channel = etree.fromstring(rendered(settings, store, "xml", derived.slug), STRICT)
    description = str(channel.findtext("channel/description"))
    assert description == html.escape(NAME + "新闻")
    assert lxml.html.fragment_fromstring(description, create_parent="div").text == NAME + "新闻"
    assert channel.findtext("channel/title") == NAME + "新闻"  # text, as item titles
    # Jekyll: front matter that layouts print into HTML, escaped for it
    out = tmp_path / "site"
    export(Publisher(settings, store, SITE), out, ["jekyll"])
    posts = {p.read_text(encoding="utf-8").split("\n")[2]: p for p in out.glob("_posts/*")}
    assert set(posts) == {
        f"title: {json.dumps(html.escape(TITLE), ensure_ascii=False)}",
        'title: "二"',
    }
    front = [p.read_text(encoding="utf-8").split("---\n")[1] for p in posts.values()]
    loaded = [yaml.safe_load(text)["tags"] for text in front]
    tags = {tag for value in loaded for tag in ([value] if isinstance(value, str) else value)}
    assert tags == {"上海证券报新闻", html.escape(NAME + "新闻")}


# --------------------------------------------------------------------------- untitled

UNTITLED_FEED = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Wire</title><link>http://wire.example/</link>
<description>An English wire</description><language>en</language>
<item><link>http://wire.example/1</link><guid>http://wire.example/1</guid>
<pubDate>Tue, 25 Jan 2022 10:00:00 +0000</pubDate></item>
<item><description>&lt;p&gt;&lt;img src="http://wire.example/c.png"&gt;&lt;/p&gt;</description>
<link>http://wire.example/2</link><pubDate>Tue, 25 Jan 2022 11:00:00 +0000</pubDate></item>
<item><description>&lt;p&gt;Markets rallied on Friday.&lt;/p&gt;</description>
<link>http://wire.example/3</link><pubDate>Tue, 25 Jan 2022 12:00:00 +0000</pubDate></item>
</channel></rss>"""
WIRE = "http://wire.example/"


def test_untitled_items_take_a_title_from_their_text_or_stay_untitled(
    store: SqlStore, feed_server: FeedServer, tmp_path: Path
) -> None:
    settings = fetched(
        store,
        feed_server,
        "categories: {{wire: {{title: Wire}}}}\n"
        'sources: [{{id: wire, url: "{wire}", category: wire}}]',
        wire=UNTITLED_FEED,
    )
    titles = {str(i.link): i.title for i in store.list_items(limit=5)}
    assert titles == {WIRE + "1": "", WIRE + "2": "", WIRE + "3": "Markets rallied on Friday."}
    # RSS: a title or a description; the link stands in only where there is neither
    rss = etree.fromstring(rendered(settings, store, "xml"), STRICT)
    assert {str(i.findtext("link")): i.findtext("title") for i in rss.iter("item")} == {
        WIRE + "1": WIRE + "1",
        WIRE + "2": None,
        WIRE + "3": "Markets rallied on Friday.",
    }
    # Atom: a title is required, so the link
    entries = atom_entries(rendered(settings, store, "atom"))
    assert {link: e.findtext(ATOM + "title") for link, e in entries.items()} == {
        WIRE + "1": WIRE + "1",
        WIRE + "2": WIRE + "2",
        WIRE + "3": "Markets rallied on Friday.",
    }
    # JSON Feed: title is optional
    items = json.loads(rendered(settings, store, "json"))["items"]
    assert {i["url"]: i.get("title") for i in items} == {
        WIRE + "1": None,
        WIRE + "2": None,
        WIRE + "3": "Markets rallied on Friday.",
    }
    out = tmp_path / "site"
    export(Publisher(settings, store, SITE), out, ["rss", "atom", "json", "jekyll"])
    for path in out.rglob("*.*"):
        assert "无标题" not in path.read_text(encoding="utf-8"), path
    posts = [p.read_text(encoding="utf-8") for p in out.glob("_posts/*")]
    assert sorted(yaml.safe_load(p.split("---\n")[1])["title"] for p in posts) == sorted(
        ["", "", "Markets rallied on Friday."]
    )
