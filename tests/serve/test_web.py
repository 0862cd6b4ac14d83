"""The HTTP service in-process (Starlette's TestClient) over a store filled through the
real ingest path, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import feedparser
import pytest
from openapi_spec_validator import validate
from sqlalchemy import event
from starlette.testclient import TestClient

from aggregator.config.settings import Settings, parse_settings
from aggregator.model import CategoryRef, FetchOutcome, IntentKind, ItemIntent, OutcomeKind
from aggregator.publish.render import atom_id
from aggregator.runtime.scheduler import run_pass
from aggregator.serve.app import ADMIN_ENDPOINTS, ENDPOINTS, create_app
from aggregator.serve.openapi import openapi_document
from aggregator.store import SourceUpdate
from aggregator.store.sql import SqlStore
from tests.conftest import FIXTURES, ROOT, Seed
from tests.feedcheck import CHECKS
from tests.feedserver import FeedServer, Route
from tests.ingest.test_update import make_context

HOSTILE = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title>恶意</title>
<link>http://evil.example/</link><description>d</description>
<item><title>&amp;lt;script&amp;gt;alert(1)&amp;lt;/script&amp;gt; 标题 &amp;amp; "引号"</title>
<link>http://evil.example/1</link><guid>http://evil.example/1</guid>
<description>&lt;p onclick="x()"&gt;正文 &amp;copy;
&lt;a href="javascript:alert(1)"&gt;链接&lt;/a&gt;
&lt;img src="/x.png" onerror="alert(2)"&gt;&lt;/p&gt;
&lt;script&gt;alert(3)&lt;/script&gt;</description>
<dc:creator>证券时报</dc:creator><pubDate>Tue, 25 Jan 2022 10:00:00 +0800</pubDate></item>
<item><title>控制字符\x01与代理</title><link>http://evil.example/2</link>
<dc:creator>证券时报</dc:creator></item>
</channel></rss>""".replace("\x01", "&#x1;")

CONFIG = """
site_url: http://news.example
allow_networks: [127.0.0.0/8]
categories:
  shanghaizhengquanbao: {{title: 上海证券报新闻, description: 上证报, name: 上海证券报}}
sources:
  - {{id: seed, url: "{seed}", category_from: author}}
  - {{id: rss20, url: "{rss20}", category_from: author, category: misc}}
  - {{id: atom10, url: "{atom10}", category_from: author}}
  - {{id: dates, url: "{dates}", category_from: author, category: misc}}
  - {{id: hostile, url: "{hostile}", category_from: author}}
"""


@pytest.fixture
def published(store: SqlStore, feed_server: FeedServer) -> Iterator[tuple[Settings, SqlStore]]:
    for name in ("seed.rss", "rss20.xml", "atom10.xml", "dates.xml"):
        feed_server.routes["/" + name] = Route((FIXTURES / name).read_bytes())
    feed_server.routes["/hostile.xml"] = Route(HOSTILE.encode())
    text = CONFIG.format(
        seed=feed_server.url("/seed.rss"),
        rss20=feed_server.url("/rss20.xml"),
        atom10=feed_server.url("/atom10.xml"),
        dates=feed_server.url("/dates.xml"),
        hostile=feed_server.url("/hostile.xml"),
    ).replace("categories:\n", "categories:\n  misc: {title: 其他}\n")
    settings = parse_settings(text)
    outcomes, _ = run_pass(make_context(settings, store))
    assert all(o.error is None for o in outcomes), outcomes
    return settings, store


@pytest.fixture
def client(published: tuple[Settings, SqlStore]) -> TestClient:
    settings, store = published
    return TestClient(create_app(settings, store))


def feed_keys(store: SqlStore) -> list[str]:
    slugs = [c.slug for c in store.list_categories() if c.item_count]
    return [*slugs, "all", "merge?c=" + ",".join(slugs[:3])]


def split_key(key: str, ext: str) -> str:
    name, _, query = key.partition("?")
    return f"/feeds/{name}.{ext}" + (f"?{query}" if query else "")


@pytest.mark.parametrize("ext", ["xml", "atom", "json"])
def test_every_output_validates_and_reads_back(
    client: TestClient, published: tuple[Settings, SqlStore], ext: str
) -> None:
    _, store = published
    keys = feed_keys(store)
    assert len(keys) >= 5
    for key in keys:
        response = client.get(split_key(key, ext))
        assert response.status_code == 200, key
        assert response.headers["content-type"].endswith("charset=utf-8")
        assert CHECKS[ext](response.content) == [], key
        if ext == "json":
            items = response.json()["items"]
            got = [(i["id"], i["title"], i["url"]) for i in items]
        else:
            parsed = feedparser.parse(response.content)
            assert not parsed.bozo, (key, parsed.get("bozo_exception"))
            got = [(e.id, e.title, e.link) for e in parsed.entries]
        name, _, query = key.partition("?")
        slugs = (
            None
            if name == "all"
            else (tuple(query.removeprefix("c=").split(",")) if name == "merge" else (name,))
        )
        expected_items = store.list_feed_items(slugs, 50)
        expected = [
            (
                atom_id(i.stable_id) if ext == "atom" else i.stable_id,
                i.title,
                i.link or f"http://news.example/item/{i.item_id}.html",
            )
            for i in expected_items
        ]
        assert got == expected, key
        assert len({g[0] for g in got}) == len(got)  # never a duplicate


def test_channel_metadata(client: TestClient) -> None:
    parsed = feedparser.parse(client.get("/feeds/shanghaizhengquanbao.xml").content)
    assert parsed.feed.title == "上海证券报新闻"
    assert parsed.feed.subtitle == "上证报"
    assert parsed.feed.language == "zh-cn"
    assert parsed.feed.ttl == "30"
    self_links = [link.href for link in parsed.feed.links if link.rel == "self"]
    assert self_links == ["http://news.example/feeds/shanghaizhengquanbao.xml"]
    entry = next(e for e in parsed.entries if e.id == "NW202201252261008680")
    assert entry.source.title  # provenance: the source named
    assert entry.published == "Tue, 25 Jan 2022 15:24:31 +0800"


def test_untrusted_content_never_comes_out_live(client: TestClient) -> None:
    for path in (
        "/feeds/zhengquanshibao.xml",
        "/feeds/zhengquanshibao.atom",
        "/category/zhengquanshibao.html",
        "/",
    ):
        text = client.get(path).text
        assert "<script" not in text, path  # escaped (&lt;script) when it is a title
        for needle in ("onclick", "onerror", "javascript:"):
            assert needle not in text, (path, needle)
    # JSON Feed titles are plain text by the spec; the HTML fields must be inert
    for item in client.get("/feeds/zhengquanshibao.json").json()["items"]:
        html = item["content_html"] + item.get("summary", "")
        for needle in ("<script", "onclick", "onerror", "javascript:"):
            assert needle not in html, needle
    page = client.get("/category/zhengquanshibao.html").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; 标题 &amp; &#34;引号&#34;" in page


def test_conditional_polling_gets_304_until_a_new_item(
    published: tuple[Settings, SqlStore], client: TestClient, feed_server: FeedServer
) -> None:
    settings, store = published
    first = client.get("/feeds/shanghaizhengquanbao.atom")
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    for _ in range(3):
        again = client.get("/feeds/shanghaizhengquanbao.atom", headers={"If-None-Match": etag})
        assert again.status_code == 304
        assert again.content == b""
    by_date = client.get(
        "/feeds/shanghaizhengquanbao.atom", headers={"If-Modified-Since": modified}
    )
    assert by_date.status_code == 304
    # another source's change elsewhere does not disturb this feed
    feed_server.routes["/rss20.xml"].body = feed_server.routes["/rss20.xml"].body.replace(
        b"</channel>", b"<item><title>x</title><link>http://a.example/new</link></item></channel>"
    )
    run_pass(make_context(settings, store), ["rss20"])
    assert (
        client.get("/feeds/shanghaizhengquanbao.atom", headers={"If-None-Match": etag}).status_code
        == 304
    )
    # a new item in the category: 200 with it
    feed_server.routes["/seed.rss"].body = (
        (FIXTURES / "seed.rss")
        .read_bytes()
        .replace(
            b"<item>",
            b"<item><title>\xe6\x96\xb0</title><link>http://a.example/szb</link>"
            b"<dc:creator>\xe4\xb8\x8a\xe6\xb5\xb7\xe8\xaf\x81\xe5\x88\xb8\xe6\x8a\xa5</dc:creator>"
            b"</item><item>",
            1,
        )
    )
    run_pass(make_context(settings, store), ["seed"])
    fresh = client.get("/feeds/shanghaizhengquanbao.atom", headers={"If-None-Match": etag})
    assert fresh.status_code == 200
    assert fresh.headers["etag"] != etag
    assert next(e.title for e in feedparser.parse(fresh.content).entries) == "新"


def test_gzip_head_and_headers(client: TestClient) -> None:
    plain = client.get("/feeds/all.xml", headers={"Accept-Encoding": "identity"})
    zipped = client.get("/feeds/all.xml", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.content == plain.content  # httpx decodes it
    assert zipped.headers["etag"] != plain.headers["etag"]  # a strong ETag per encoding
    assert "Accept-Encoding" in plain.headers["vary"]
    assert plain.headers["cache-control"].startswith("public")
    head = client.head("/feeds/all.xml", headers={"Accept-Encoding": "identity"})
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["etag"] == plain.headers["etag"]
    # either variant's ETag validates
    assert (
        client.get(
            "/feeds/all.xml",
            headers={"If-None-Match": zipped.headers["etag"], "Accept-Encoding": "identity"},
        ).status_code
        == 304
    )


def test_unknown_category_lists_what_exists(client: TestClient) -> None:
    response = client.get("/feeds/nope.xml")
    assert response.status_code == 404
    assert response.text.startswith("404 Not Found: no category 'nope'.")
    assert "shanghaizhengquanbao" in response.text
    assert "上海证券报新闻" in response.text
    page = client.get("/category/nope.html")
    assert page.status_code == 404
    assert "shanghaizhengquanbao" in page.text


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("/feeds/all.xml?q=(", "400 Bad Request: bad pattern in q: missing ): ("),
        ("/feeds/all.xml?exclude=[", "400 Bad Request: bad pattern in exclude:"),
        ("/feeds/all.xml?limit=0", "400 Bad Request: limit must be a whole number from 1 to 500"),
        ("/feeds/all.xml?since=yesterday", "400 Bad Request: since must be a sequence number"),
        ("/feeds/all?format=csv", "400 Bad Request: unknown format 'csv' (use xml, atom or json)"),
        ("/feeds/merge.xml", "400 Bad Request: merge needs c=slug1,slug2"),
    ],
    ids=["bad q", "bad exclude", "zero limit", "bad since", "bad format", "empty merge"],
)
def test_bad_parameters_are_clear_400s(client: TestClient, url: str, message: str) -> None:
    response = client.get(url)
    assert response.status_code == 400
    assert response.text.startswith(message)


def ids_of(client: TestClient, url: str) -> list[str]:
    return [item["id"] for item in client.get(url).json()["items"]]


def test_query_parameters(client: TestClient, published: tuple[Settings, SqlStore]) -> None:
    _, store = published
    everything = ids_of(client, "/feeds/all.json?limit=500")
    assert ids_of(client, "/feeds/all.json?limit=2") == everything[:2]
    assert ids_of(client, "/feeds/all?format=json&limit=2") == everything[:2]
    seqs = sorted(i.seq for i in store.list_feed_items(None, 500))
    newer = ids_of(client, f"/feeds/all.json?since={seqs[-3]}")
    assert len(newer) == 2
    only = ids_of(client, "/feeds/all.json?q=网络安全")
    assert only == ["NW202201252261008680"]
    assert "NW202201252261008680" not in ids_of(
        client, "/feeds/all.json?exclude=网络安全&limit=500"
    )
    assert ids_of(client, "/feeds/all.json?q=NOMATCHANYWHERE") == []
    future = ids_of(client, "/feeds/all.json?since=2999-01-01T00:00:00Z")
    assert future == []


def test_ordering_is_newest_first_and_stable(client: TestClient) -> None:
    items = client.get("/feeds/all.json?limit=500").json()["items"]
    stamps = [datetime.fromisoformat(i["date_published"]) for i in items]
    assert stamps == sorted(stamps, reverse=True)
    assert ids_of(client, "/feeds/all.json?limit=500") == [i["id"] for i in items]


def test_merged_feed_has_each_item_once(
    client: TestClient, published: tuple[Settings, SqlStore]
) -> None:
    _, store = published
    slugs = [c.slug for c in store.list_categories() if c.item_count]
    merged = ids_of(client, "/feeds/merge.json?limit=500&c=" + ",".join(slugs))
    assert len(merged) == len(set(merged)) == store.count_items()


def test_api_items_pages_with_a_cursor(
    client: TestClient, published: tuple[Settings, SqlStore]
) -> None:
    _, store = published
    seen: list[str] = []
    cursor = ""
    for _ in range(50):
        page = client.get(f"/api/items?limit=3&cursor={cursor}").json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert sorted(seen) == sorted(i.stable_id for i in store.list_feed_items(None, 500))
    assert client.get("/api/items?cursor=garbage").status_code == 400
    assert client.get("/api/items?category=nope").status_code == 404
    one = client.get("/api/items?category=shanghaizhengquanbao").json()["items"]
    in_category = store.list_feed_items(("shanghaizhengquanbao",), 500)
    assert [i["id"] for i in one] == [i.stable_id for i in sorted(in_category, key=lambda i: i.seq)]
    assert "NW202201252261008680" in [i["id"] for i in one]


def test_cursor_under_concurrent_writes_misses_nothing_and_repeats_nothing(
    published: tuple[Settings, SqlStore], client: TestClient
) -> None:
    """A consumer pages while a writer inserts and updates: every item exactly once as
    new, updates flagged, nothing missed."""
    _, store = published
    ref = CategoryRef("shanghaizhengquanbao", "上海证券报新闻")
    writes = 60
    done = threading.Event()

    def intent(number: int, kind: IntentKind, title: str) -> ItemIntent:
        return ItemIntent(
            kind=kind,
            stable_id=f"NW2022012522610{number:05d}",
            title=title,
            link=None,
            guid=None,
            summary=None,
            content="<p>x</p>",
            author=None,
            published_at=datetime(2022, 1, 25, tzinfo=UTC),
            published_offset_minutes=480,
            is_published_firm=True,
            is_content_external=False,
            content_sha256=title,
            categories=(ref,),
        )

    def writer() -> None:
        keep = SourceUpdate(None, None, None, None, 0)
        for n in range(writes):
            now = datetime.now(UTC)
            out = FetchOutcome("seed", OutcomeKind.OK, now, 0.0, now, 200)
            batch = [intent(n, IntentKind.NEW, f"v1-{n}")]
            if n % 3 == 2:  # and update an earlier one
                batch.append(intent(n - 2, IntentKind.UPDATED, f"v2-{n - 2}"))
            store.apply_fetch(out, "writer", batch, keep)
            time.sleep(0.005)
        done.set()

    seen_new: list[str] = []
    seen_updates: list[str] = []
    cursor = ""
    thread = threading.Thread(target=writer)
    thread.start()
    while True:
        finished = done.is_set()
        page = client.get(f"/api/items?limit=7&cursor={cursor}").json()
        for item in page["items"]:
            (seen_updates if item["is_update"] else seen_new).append(item["id"])
        cursor = page["next_cursor"]
        if finished and not page["has_more"]:
            break
    thread.join()
    stored = {i.stable_id for i in store.list_feed_items(None, 1000)}
    assert len(seen_new) == len(set(seen_new))  # nothing twice
    assert set(seen_new) | set(seen_updates) == stored  # nothing missed
    written = {f"NW2022012522610{n:05d}" for n in range(writes)}
    assert written <= set(seen_new) | set(seen_updates)
    assert len(seen_updates) <= writes // 3 + 1  # each update re-appears at most once
    assert all(i in written for i in seen_updates)


def test_categories_sources_openapi_and_health(
    client: TestClient, published: tuple[Settings, SqlStore]
) -> None:
    settings, store = published
    categories = client.get("/api/categories").json()
    szb = next(c for c in categories if c["slug"] == "shanghaizhengquanbao")
    assert szb["title"] == "上海证券报新闻"
    assert szb["items"] == store.count_items("shanghaizhengquanbao") == 2
    assert szb["feeds"]["atom"] == "http://news.example/feeds/shanghaizhengquanbao.atom"
    sources = client.get("/api/sources").json()
    assert {s["id"] for s in sources} == {"seed", "rss20", "atom10", "dates", "hostile"}
    document = client.get("/openapi.json").json()
    validate(document)
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/readyz").status_code == 200
    stuck = TestClient(create_app(settings, store, scheduler_alive=lambda: False))
    not_ready = stuck.get("/readyz")
    assert not_ready.status_code == 503
    assert not_ready.json()["problems"] == ["scheduler: no dispatch tick recently"]


def test_every_endpoint_is_in_openapi_and_docs() -> None:
    paths = openapi_document()["paths"]
    docs = (ROOT / "docs" / "http.md").read_text(encoding="utf-8")
    for path, _ in ENDPOINTS + ADMIN_ENDPOINTS:
        assert path in paths, path
        assert f"`{path}" in docs, path


def test_replicas_stay_correct_when_another_process_writes(
    published: tuple[Settings, SqlStore], feed_server: FeedServer, database_url: str
) -> None:
    settings, store = published
    replicas = [SqlStore(database_url), SqlStore(database_url)]
    clients = [TestClient(create_app(settings, r)) for r in replicas]
    etags = [c.get("/feeds/all.xml").headers["etag"] for c in clients]
    assert etags[0] == etags[1]  # same stamp, same document, same validator
    feed_server.routes["/dates.xml"].body = feed_server.routes["/dates.xml"].body.replace(
        b"</channel>",
        b"<item><title>replica</title><link>http://a.example/r</link></item></channel>",
    )
    run_pass(make_context(settings, store), ["dates"])  # "another process" writes
    for c, etag in zip(clients, etags, strict=True):
        response = c.get("/feeds/all.xml", headers={"If-None-Match": etag})
        assert response.status_code == 200  # never a stale 304
        assert b"replica" in response.content
    for r in replicas:
        r.close()


def test_pages_render_and_escape(
    client: TestClient, seed: Seed, published: tuple[Settings, SqlStore]
) -> None:
    home = client.get("/")
    assert home.status_code == 200
    assert 'href="http://news.example/category/shanghaizhengquanbao.html"' in home.text
    category = client.get("/category/shanghaizhengquanbao.html")
    assert 'type="application/rss+xml"' in category.text
    assert seed.title in category.text
    stored = published[1].find_item(seed.info_code)
    assert stored is not None
    assert f'href="http://news.example/item/{stored.item_id}.html"' in category.text
    item = client.get(f"/item/{stored.item_id}.html")
    assert item.status_code == 200
    assert '<p class="em_media">' in item.text
    assert client.get("/category/shanghaizhengquanbao.html?page=0").status_code == 400
    assert client.get("/item/99999.html").status_code == 404


def test_feeds_keep_serving_when_sources_fail(
    published: tuple[Settings, SqlStore], client: TestClient, feed_server: FeedServer
) -> None:
    settings, store = published
    before = client.get("/feeds/all.json").json()["items"]
    for route in feed_server.routes.values():
        route.status, route.validators = 500, False
    outcomes, _ = run_pass(make_context(settings, store))
    assert all(o.kind is OutcomeKind.ERROR for o in outcomes)
    assert client.get("/feeds/all.json").json()["items"] == before


def test_an_unchanged_feed_is_answered_without_a_query_until_anyone_commits(
    published: tuple[Settings, SqlStore], feed_server: FeedServer, database_url: str
) -> None:
    settings, store = published
    if store.change_token() is None:
        pytest.skip("PostgreSQL has no query-free change token: each request costs one query")
    client = TestClient(create_app(settings, store))
    first = client.get("/feeds/all.xml")
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        for _ in range(3):
            again = client.get("/feeds/all.xml", headers={"If-None-Match": first.headers["etag"]})
            assert again.status_code == 304
        assert client.get("/feeds/all.xml").content == first.content
        assert statements == []  # answered from memory
        # another connection (as another process would) commits a new item
        other = SqlStore(database_url)
        feed_server.routes["/dates.xml"].body = feed_server.routes["/dates.xml"].body.replace(
            b"</channel>",
            b"<item><title>fresh</title><link>http://a.example/f</link></item></channel>",
        )
        run_pass(make_context(settings, other), ["dates"])
        other.close()
        fresh = client.get("/feeds/all.xml", headers={"If-None-Match": first.headers["etag"]})
        assert fresh.status_code == 200
        assert b"fresh" in fresh.content
        assert statements  # revalidated against the database
    finally:
        event.remove(store.engine, "before_cursor_execute", count)


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/category/shanghaizhengquanbao.html",
        "/item/1.html",
        "/api/items?limit=5",
        "/api/categories",
        "/api/sources",
        "/openapi.json",
    ],
)
def test_every_output_has_validators_and_answers_304(client: TestClient, path: str) -> None:
    first = client.get(path)
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert etag.startswith('"')
    assert not etag.startswith("W/")
    assert "last-modified" in first.headers
    again = client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""


def answers(client: TestClient, method: str, path: str, headers: dict[str, str]) -> object:
    response = client.request(method, path, headers=headers)
    return response.status_code, sorted(response.headers.multi_items()), response.content


def test_the_fast_path_answers_exactly_as_the_routes_do(
    published: tuple[Settings, SqlStore],
) -> None:
    """Every variant of a feed request: from a fresh app (the Starlette route renders and
    validates) and again from memory (the fast path, no query), byte for byte."""
    settings, store = published
    if store.change_token() is None:
        pytest.skip("PostgreSQL has no query-free change token: no fast path")
    warm = TestClient(create_app(settings, store))
    paths = ["/feeds/all.xml", "/feeds/shanghaizhengquanbao.json", "/feeds/all?format=atom"]
    for path in paths:
        first = warm.get(path)
        variants: list[dict[str, str]] = [
            {"accept-encoding": "identity"},
            {"accept-encoding": "gzip"},
            {"accept-encoding": "identity", "if-none-match": first.headers["etag"]},
            {"accept-encoding": "gzip", "if-none-match": f'W/"x", {first.headers["etag"]}'},
            {"accept-encoding": "identity", "if-modified-since": first.headers["last-modified"]},
            {"accept-encoding": "identity", "if-modified-since": "Mon, 01 Jan 1990 00:00:00 GMT"},
        ]
        for headers in variants:
            for method in ("GET", "HEAD"):
                fresh = TestClient(create_app(settings, store))
                expected = answers(fresh, method, path, headers)
                statements: list[str] = []

                def count(*args: object, into: list[str] = statements) -> None:
                    into.append(str(args[2]))

                event.listen(store.engine, "before_cursor_execute", count)
                try:
                    got = answers(warm, method, path, headers)
                finally:
                    event.remove(store.engine, "before_cursor_execute", count)
                assert got == expected, (method, path, headers)
                assert statements == [], (method, path, headers)  # answered from memory


def with_cache_entries(settings: Settings, entries: int) -> Settings:
    server = settings.server.model_copy(update={"max_cache_entries": entries})
    return settings.model_copy(update={"server": server})


def test_a_small_cache_evicts_and_every_answer_stays_the_same(
    published: tuple[Settings, SqlStore],
) -> None:
    settings, store = published
    paths = [split_key(key, ext) for key in feed_keys(store) for ext in ("xml", "json")]
    paths += ["/", "/category/shanghaizhengquanbao.html", "/category/misc.html"]
    roomy = TestClient(create_app(settings, store))
    small_app = create_app(with_cache_entries(settings, 3), store)
    small = TestClient(small_app)
    expected = {path: roomy.get(path) for path in paths}
    for _ in range(2):  # the second round finds most of what it needs evicted
        for path in paths:
            response = small.get(path)
            assert response.status_code == 200, path
            assert response.headers["etag"] == expected[path].headers["etag"], path
            assert response.content == expected[path].content, path
            again = small.get(path, headers={"If-None-Match": response.headers["etag"]})
            assert again.status_code == 304, path
    state = small_app.state.aggregator  # type: ignore[attr-defined]  # middleware in front
    assert 0 < len(state.cache) <= 3


def test_the_cache_size_changes_no_etag(published: tuple[Settings, SqlStore]) -> None:
    """Replicas sized differently agree on every validator (the size is no output)."""
    settings, store = published
    one = TestClient(create_app(settings, store))
    other = TestClient(create_app(with_cache_entries(settings, 7), store))
    for path in ("/feeds/all.xml", "/", "/category/misc.html", "/item/1.html"):
        assert one.get(path).headers["etag"] == other.get(path).headers["etag"], path


def test_a_category_without_a_description(client: TestClient) -> None:
    """Its page shows none; its feed, where RSS requires one, gives the title."""
    page = client.get("/category/misc.html").text
    assert '<p class="meta">其他</p>' not in page
    described = client.get("/category/shanghaizhengquanbao.html").text
    assert '<p class="meta">上证报</p>' in described
    assert feedparser.parse(client.get("/feeds/misc.xml").content).feed.subtitle == "其他"
