"""``aggregator reprocess``: changed steps reach stored items only when asked, as updates
with new seqs; the next fetch still finds those items unchanged."""

from __future__ import annotations

import pytest

from aggregator.errors import SourceBusyError, SourceNotFoundError
from aggregator.ingest.reprocess import reprocess_source
from aggregator.runtime.scheduler import run_pass
from aggregator.store.sql import SqlStore
from tests.feedserver import FeedServer, Route
from tests.ingest.test_update import make_context
from tests.process.test_processing import rss, settings_for

ITEMS = [
    ("1", "A股收涨（责任编辑：甲）", "https://news.example.cn/1?from=mirror", "<p>正文一</p>"),
    ("2", "港股高开", "https://news.example.cn/2", "<p>正文二</p>"),
    ("3", "【广告】开户", "https://news.example.cn/3", "<p>广告</p>"),
]
NEW_STEPS = """\
      - block: {pattern: "广告", fields: [title]}
      - rewrite:
          replace: [{pattern: "（责任编辑：.*?）", with: "", fields: [title]}]
          drop_query: [from]"""


def test_changed_steps_apply_to_stored_items_only_when_asked(
    store: SqlStore, feed_server: FeedServer
) -> None:
    feed_server.routes["/feed.xml"] = Route(rss(ITEMS))
    before = make_context(settings_for(feed_server, "      - convert: {to: zh-hans}"), store)
    run_pass(before)
    first = {i.stable_id: i for i in store.list_items()}
    assert len(first) == 3

    after = make_context(settings_for(feed_server, NEW_STEPS), store)
    feed_server.routes["/feed.xml"] = Route(rss(ITEMS, title="测试二"))
    (outcome,), _ = run_pass(after)
    assert (outcome.unchanged_count, outcome.updated_count) == (3, 0)  # steps not re-run

    report = reprocess_source(after, "src")
    assert (report.items, report.updated) == (3, 1)
    assert report.would_drop == (("guid:src:3", "block: title has '广告'"),)
    changed = store.find_item("guid:src:1")
    assert changed is not None
    assert (changed.title, changed.link) == ("A股收涨", "https://news.example.cn/1")
    assert changed.seq > max(i.seq for i in first.values())  # an update readers see
    assert store.find_item("guid:src:3") is not None  # reprocessing never deletes
    assert store.find_item("guid:src:2") == first["guid:src:2"]

    feed_server.routes["/feed.xml"] = Route(rss(ITEMS, title="测试三"))
    (again,), _ = run_pass(after)
    assert (again.unchanged_count, again.updated_count) == (3, 0)
    assert "3 stored item(s), 1 updated, 1 the steps would now drop" in report.summary()


def test_reprocess_refuses_unknown_and_busy_sources(
    store: SqlStore, feed_server: FeedServer
) -> None:
    feed_server.routes["/feed.xml"] = Route(rss(ITEMS))
    ctx = make_context(settings_for(feed_server, NEW_STEPS), store)
    with pytest.raises(SourceNotFoundError, match="no source 'nope' in the config"):
        reprocess_source(ctx, "nope")
    with pytest.raises(SourceNotFoundError):  # configured, never stored
        reprocess_source(ctx, "src")
    run_pass(ctx)
    store.claim_sources(["src"], ctx.now(), "someone-else", ctx.settings.defaults.lease)
    with pytest.raises(SourceBusyError, match="being fetched by another process"):
        reprocess_source(ctx, "src")


def test_reprocessing_an_item_keeps_its_media(store: SqlStore, feed_server: FeedServer) -> None:
    enclosure = b'<enclosure url="https://cdn.example.cn/1.mp3" length="9" type="audio/mpeg"/>'
    body = rss(ITEMS).replace(b"</item>", enclosure + b"</item>", 1)
    feed_server.routes["/feed.xml"] = Route(body)
    run_pass(make_context(settings_for(feed_server, "      - convert: {to: zh-hans}"), store))
    stored = store.find_item("guid:src:1")
    assert stored is not None
    assert [m.url for m in stored.media] == ["https://cdn.example.cn/1.mp3"]
    report = reprocess_source(make_context(settings_for(feed_server, NEW_STEPS), store), "src")
    assert report.updated == 1
    changed = store.find_item("guid:src:1")
    assert changed is not None
    assert changed.title == "A股收涨"  # updated by the new steps
    assert changed.media == stored.media
