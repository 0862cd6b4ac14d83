"""Static exports, through the real CLI: the Jekyll golden file byte for byte, feeds and
pages as files, atomic writes and clear failures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from aggregator.errors import ExportError
from aggregator.publish.export import write_atomically
from tests.conftest import FIXTURES, SEED_POST, SHARED_SEED
from tests.conftest import ROOT as REPO_ROOT
from tests.feedcheck import CHECKS
from tests.feedserver import FeedServer, Route

ROOT = Path(__file__).resolve().parents[2]


def aggregator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aggregator", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.fixture
def ingested(tmp_path: Path, feed_server: FeedServer) -> Path:
    """A config whose store holds the seed (fetched over HTTP, sanitized) and more."""
    feed_server.routes["/seed.rss"] = Route((FIXTURES / "seed.rss").read_bytes())
    feed_server.routes["/rss20.xml"] = Route((FIXTURES / "rss20.xml").read_bytes())
    feed_server.routes["/quotes.xml"] = Route(
        """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>q</title><link>http://q.example/</link><description>d
</description><item><title>标题: "引号" #井号 'single' \\ [括号] {x}</title>
<link>http://q.example/1</link><description>&lt;p&gt;体&lt;/p&gt;</description>
<pubDate>Wed, 26 Jan 2022 09:00:00 +0800</pubDate></item></channel></rss>""".encode()
    )
    config = tmp_path / "sources.yaml"
    config.write_text(
        f"""
database: sqlite:///{tmp_path / "db.sqlite"}
allow_networks: [127.0.0.0/8]
categories:
  shanghaizhengquanbao: {{title: 上海证券报新闻, name: 上海证券报}}
  misc: {{title: 其他}}
sources:
  - {{id: seed, url: "{feed_server.url("/seed.rss")}", category_from: author}}
  - {{id: rss20, url: "{feed_server.url("/rss20.xml")}", category: misc}}
  - {{id: quotes, url: "{feed_server.url("/quotes.xml")}", category: misc}}
""",
        encoding="utf-8",
    )
    result = aggregator("--config", str(config), "fetch", "--strict")
    assert result.returncode == 0, result.stdout + result.stderr
    return config


def export_seed_site(config: Path, out: Path) -> None:
    """Jekyll posts, with the original site's own URL (as its posts link to it)."""
    result = aggregator(
        "--config",
        str(config),
        "export",
        "--out",
        str(out),
        "--format",
        "jekyll",
        "--site-url",
        "//finews.withounder.com",
    )
    assert result.returncode == 0, result.stderr


def test_jekyll_export_of_the_seed_is_byte_identical(ingested: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    export_seed_site(ingested, out)
    post = out / "_posts" / "2022-01-25-NW202201252261008680.md"
    assert post.read_bytes() == SEED_POST.read_bytes()


@pytest.mark.parametrize(
    "order", [("paper", "mirror"), ("mirror", "paper")], ids=["paper first", "mirror first"]
)
def test_jekyll_export_of_the_seed_is_byte_identical_in_any_fetch_order(
    tmp_path: Path, feed_server: FeedServer, database_url: str, order: tuple[str, str]
) -> None:
    """The seed reaches the store from the paper's feed and from a mirror (another guid,
    ``&from=mirror`` in its link), each fetched by a process of its own, on SQLite and
    PostgreSQL: the paper, listed first, takes precedence, so its copy is the one
    exported whichever came first."""
    feed_server.routes["/paper.rss"] = Route((FIXTURES / "seed.rss").read_bytes())
    feed_server.routes["/mirror.rss"] = Route((FIXTURES / "seed-mirror.rss").read_bytes())
    config = tmp_path / "sources.yaml"
    config.write_text(
        f"""
database: {database_url}
allow_networks: [127.0.0.0/8]
categories:
  shanghaizhengquanbao: {{title: 上海证券报新闻, name: 上海证券报}}
sources:
  - {{id: paper, url: "{feed_server.url("/paper.rss")}", category_from: author}}
  - {{id: mirror, url: "{feed_server.url("/mirror.rss")}", category_from: author}}
""",
        encoding="utf-8",
    )
    for source_id in order:
        result = aggregator("--config", str(config), "fetch", "--strict", "--source", source_id)
        assert result.returncode == 0, result.stdout + result.stderr
    out = tmp_path / "site"
    export_seed_site(config, out)
    assert [p.name for p in (out / "_posts").iterdir()] == [SEED_POST.name]
    assert (out / "_posts" / SEED_POST.name).read_bytes() == SEED_POST.read_bytes()


@pytest.mark.skipif(
    not SHARED_SEED.is_file(),
    reason=f"the shared seed post is not beside this checkout ({SHARED_SEED}); the in-repo "
    "golden copy is checked by test_jekyll_export_of_the_seed_is_byte_identical",
)
def test_jekyll_export_equals_the_shared_seed_post(ingested: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    export_seed_site(ingested, out)
    post = out / "_posts" / "2022-01-25-NW202201252261008680.md"
    assert post.read_bytes() == SHARED_SEED.read_bytes()
    assert SEED_POST.read_bytes() == SHARED_SEED.read_bytes()  # the golden copy is true


@pytest.mark.slow
def test_a_copy_of_the_repository_alone_passes_the_seed_tests(tmp_path: Path) -> None:
    """A checkout with nothing beside it (no ../shared) still passes the tests that use the
    seed: they read only what the repository holds."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split("\n")
    copy = tmp_path / "nothing-beside" / "clone"
    for name in filter(None, listed):
        source = REPO_ROOT / name
        if source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            (copy / name).write_bytes(source.read_bytes())
    env = {**os.environ, "PYTHONPATH": str(copy)}
    env.pop("AGGREGATOR_TEST_POSTGRES_URL", None)  # SQLite is enough to show it
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-rs",
            "tests/publish/test_export.py",
            "tests/ingest/test_parser.py",
            "-k",
            "seed and not a_copy_of_the_repository",
        ],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "the shared seed post is not beside this checkout" in result.stdout


def test_jekyll_titles_with_yaml_specials_stay_valid(ingested: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    assert (
        aggregator(
            "--config",
            str(ingested),
            "export",
            "--out",
            str(out),
            "--format",
            "jekyll",
            "--category",
            "misc",
        ).returncode
        == 0
    )
    posts = sorted((out / "_posts").iterdir())
    assert posts
    for post in posts:
        front = post.read_text(encoding="utf-8").split("---\n")[1]
        data = yaml.safe_load(front)
        assert data["layout"] == "post"
        assert data["categories"] == "misc"
    quoted = [
        yaml.safe_load(p.read_text(encoding="utf-8").split("---\n")[1])["title"] for p in posts
    ]
    # valid YAML whatever the title holds, and escaped for the HTML layouts print it in
    assert "标题: &quot;引号&quot; #井号 &#x27;single&#x27; \\ [括号] {x}" in quoted


def test_feed_and_page_export(ingested: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    result = aggregator(
        "--config", str(ingested), "export", "--out", str(out), "--site-url", "https://news.example"
    )
    assert result.returncode == 0, result.stderr
    for ext in ("xml", "atom", "json"):
        for name in ("shanghaizhengquanbao", "misc", "all"):
            body = (out / "feeds" / f"{name}.{ext}").read_bytes()
            assert CHECKS[ext](body) == [], (name, ext)
    assert (out / "index.html").read_text(encoding="utf-8").count("/category/") >= 2
    page = (out / "category" / "shanghaizhengquanbao.html").read_text(encoding="utf-8")
    assert 'href="https://news.example/feeds/shanghaizhengquanbao.atom"' in page
    assert list((out / "item").glob("*.html"))
    assert not list(out.rglob(".*"))  # no temporary files left behind


def test_static_pages_are_the_served_pages(ingested: Path, tmp_path: Path) -> None:
    """The exported home page opens with the latest items across outlets, and item pages
    link the items beside them in their category, as the server's pages do."""
    out = tmp_path / "site"
    result = aggregator("--config", str(ingested), "export", "--out", str(out), "--format", "html")
    assert result.returncode == 0, result.stderr
    home = (out / "index.html").read_text(encoding="utf-8")
    assert '<section class="latest">' in home
    assert "上海证券报" in home  # the seed's outlet, named in the latest list
    misc = sorted((out / "item").glob("*.html"))
    linked = [p.read_text(encoding="utf-8") for p in misc]
    assert any('rel="next"' in page for page in linked)
    assert any('rel="prev"' in page for page in linked)


def test_export_failures_exit_non_zero_without_partial_files(
    ingested: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "feeds").write_text("a file where a folder should be", encoding="utf-8")
    result = aggregator("--config", str(ingested), "export", "--out", str(out))
    assert result.returncode == 1
    assert result.stderr.startswith("export failed:")
    assert sorted(p.name for p in out.iterdir()) == ["feeds"]  # nothing half-written
    unknown = aggregator(
        "--config", str(ingested), "export", "--out", str(tmp_path / "x"), "--category", "nope"
    )
    assert unknown.returncode == 1
    assert "no category 'nope'" in unknown.stderr
    bad_format = aggregator(
        "--config", str(ingested), "export", "--out", str(tmp_path / "y"), "--format", "pdf"
    )
    assert bad_format.returncode == 1
    assert "unknown format(s) pdf" in bad_format.stderr
    assert not (tmp_path / "x").exists()
    assert not (tmp_path / "y").exists()


def test_writes_never_escape_the_output_folder(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="refusing to write outside"):
        write_atomically(tmp_path, "../escape.txt", b"x")
    with pytest.raises(ExportError):
        write_atomically(tmp_path, "/etc/passwd", b"x")
    assert not (tmp_path.parent / "escape.txt").exists()
    target = write_atomically(tmp_path, "a/b.txt", b"data")
    assert target.read_bytes() == b"data"
