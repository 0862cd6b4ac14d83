"""Media end to end (issue 14): feeds with enclosures, Media RSS and JSON Feed
attachments, served over HTTP on 127.0.0.1, fetched, parsed, stored (SQLite and
PostgreSQL), and republished in RSS, Atom, JSON Feed and the item page; every output
passes the enclosure rules of the W3C feed validator (tests/feedcheck.py)."""

from __future__ import annotations

import json

import pytest

from aggregator.config.settings import parse_settings
from aggregator.ingest.fields import ParseRules
from aggregator.ingest.parser import parse_body
from aggregator.model import Media
from aggregator.publish.pages import render_item_page
from aggregator.publish.publisher import FeedRequest, Publisher
from aggregator.publish.query import FeedQuery
from aggregator.runtime.scheduler import run_pass
from aggregator.store.sql import SqlStore
from tests.conftest import FIXTURES
from tests.feedcheck import CHECKS
from tests.feedserver import FeedServer, Route
from tests.ingest.test_update import make_context

FEEDS = ("media.rss", "media.atom", "media.json")


@pytest.fixture
def publisher(store: SqlStore, feed_server: FeedServer) -> Publisher:
    sources = []
    for name in FEEDS:
        content_type = "application/feed+json" if name.endswith(".json") else "application/xml"
        feed_server.routes[f"/{name}"] = Route(
            (FIXTURES / name).read_bytes(), content_type=content_type
        )
        source_id = name.replace(".", "-")
        sources.append(f'  - {{id: {source_id}, url: "{feed_server.url("/" + name)}"}}')
    settings = parse_settings(
        "allow_networks: [127.0.0.0/8]\nsite_url: http://news.example\n"
        "categories:\n  podcast: {title: 播客}\n"
        "sources:\n" + "\n".join(s[:-1] + ", category: podcast}" for s in sources) + "\n"
    )
    outcomes, _ = run_pass(make_context(settings, store))
    assert all(o.error is None for o in outcomes), outcomes
    return Publisher(settings, store)


def expected_media(feed_server: FeedServer) -> dict[str, tuple[Media, ...]]:
    """Item link -> the media the source feeds give, read with each feed's own address."""
    found: dict[str, tuple[Media, ...]] = {}
    for name in FEEDS:
        rules = ParseRules(base_url=feed_server.url("/" + name))
        for item in parse_body((FIXTURES / name).read_bytes(), None, rules).items:
            assert item.link is not None
            found[item.link] = item.media
    return found


def test_media_are_stored_and_relative_urls_resolved_against_the_feed(
    publisher: Publisher, feed_server: FeedServer
) -> None:
    stored = {i.link: i.media for i in publisher.store.list_items(limit=50)}
    want = expected_media(feed_server)
    assert stored == want
    assert sum(len(m) for m in stored.values()) == 14
    episode2 = stored["http://example.com/podcast/2.html"]
    assert episode2[0].url == feed_server.url("/media/ep2-720.mp4")  # relative, resolved
    assert episode2[0].duration_seconds == 61


@pytest.mark.parametrize("extension", ["xml", "atom", "json"])
def test_media_round_trip_into_every_feed_format(
    publisher: Publisher, feed_server: FeedServer, extension: str
) -> None:
    body = publisher.render(FeedRequest("podcast", ("podcast",), extension, FeedQuery())).body
    assert CHECKS[extension](body) == []
    # read back by our own parser: every enclosure, image and thumbnail is there
    republished = {item.link: item.media for item in parse_body(body, None, ParseRules()).items}
    for link, media in expected_media(feed_server).items():
        got = republished[link]
        assert [m.url for m in got] == [m.url for m in media], (extension, link)
        for sent, back in zip(media, got, strict=True):
            if sent.role == "enclosure":
                assert back.role == "enclosure"
                # an unknown type: the validator wants one on <enclosure>, not media:content
                assert back.type in (sent.type, sent.type or "application/octet-stream")
                assert (back.length or None) == sent.length
            else:
                assert back.role in ("thumbnail", "image", "banner")
    if extension == "xml":
        assert body.count(b"<enclosure ") == 5  # one in each item that has an enclosure
    if extension == "json":
        items = json.loads(body)["items"]
        audio = next(i for i in items if i["url"] == "http://example.com/audio/1.html")
        assert audio["image"].endswith("/img/a-1.jpg")
        assert audio["banner_image"] == "http://cdn.example.com/a-1-banner.jpg"
        assert audio["attachments"][0] == {
            "url": "http://cdn.example.com/a-1.mp3",
            "mime_type": "audio/mpeg",
            "size_in_bytes": 4096000,
            "duration_in_seconds": 300,
        }


def test_the_item_page_shows_image_audio_and_video_with_type_and_size(
    publisher: Publisher,
) -> None:
    items = {i.link: i for i in publisher.store.list_items(limit=50)}
    episode1 = render_item_page(items["http://example.com/podcast/1.html"], [], "").decode()
    assert '<audio controls preload="none"><source src="http://cdn.example.com/ep1.mp3" ' in (
        episode1
    )
    assert 'type="audio/mpeg"' in episode1
    assert "audio/mpeg，11.8 MB" in episode1
    assert 'width="300" height="300"' in episode1  # the thumbnail
    episode2 = render_item_page(items["http://example.com/podcast/2.html"], [], "").decode()
    assert episode2.count("<video ") == 2
    assert 'width="1280" height="720"' in episode2
    episode3 = render_item_page(items["http://example.com/podcast/3.html"], [], "").decode()
    assert "application/pdf，2.0 KB" in episode3
    assert "javascript:" not in episode3
