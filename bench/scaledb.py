"""The scale benchmark's feeds and PostgreSQL database (bench/scale.py); no business logic.

feeds     corpus/setup/feed-NNNNN.xml: each feed's older items (--per-feed minus
          --new-per-feed of them); corpus/full/feed-NNNNN.xml: all of them, the
          newest --new-per-feed being what a cold pass finds new. corpus/live is a
          symlink to one of the two (nginx serves corpus/, the sources' URLs are
          /live/feed-NNNNN.xml), switched by renaming a new link over it.
database  CREATE DATABASE; `aggregator db upgrade` (the real migrations); the store's
          own sync_config puts in the configured sources and categories; COPY of
          items, item_categories and item_sources (bench/prefill.py's rows); then
          prefill.FINISH_SQL and the item_id sequence make them consistent. A real
          pass over corpus/setup (run by bench/scale.py) then stores the feeds' older
          items exactly as the service does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import corpus
import prefill
import psycopg
from psycopg import conninfo, sql

ITEM_COLUMNS = (
    "item_id, stable_id, seq, first_seq, title, link, content, author, published_at, "
    "published_offset_minutes, first_seen_at, updated_at, update_count, source_id"
)


@dataclasses.dataclass(frozen=True)
class Category:
    slug: str
    name: str  # the media name items carry as their author
    title: str


def categories(count: int) -> list[Category]:
    return [Category(f"cat-{c:03d}", f"媒体{c:03d}", f"媒体{c:03d}新闻") for c in range(count)]


def source_id(index: int) -> str:
    return f"s{index + 1:05d}"


def feed_file(index: int) -> str:
    return f"feed-{index + 1:05d}.xml"


def write_feeds(
    root: Path, sources: int, per_feed: int, new_per_feed: int, cats: list[Category], seed: int
) -> int:
    """Write corpus/setup and corpus/full (half RSS 2.0, half Atom 1.0; each item's author
    one of the categories' names, at random); return the bytes of the full set."""
    rng = random.Random(seed)
    total = 0
    for part in ("setup", "full"):
        (root / part).mkdir(parents=True, exist_ok=True)
    for index in range(sources):
        items = [
            dataclasses.replace(
                corpus.make_item(rng, index * per_feed + k),
                author=cats[rng.randrange(len(cats))].name,
            )
            for k in range(per_feed)
        ]  # newest first: the first new_per_feed are the ones a cold pass finds new
        render = corpus.rss_document if index % 2 == 0 else corpus.atom_document
        name = feed_file(index)
        full = render(name.removesuffix(".xml"), items).encode()
        (root / "full" / name).write_bytes(full)
        older = render(name.removesuffix(".xml"), items[new_per_feed:]).encode()
        (root / "setup" / name).write_bytes(older)
        total += len(full)
    return total


def use_feeds(root: Path, part: str) -> None:
    """Point corpus/live (what the sources' URLs name) at corpus/<part>, atomically."""
    link = root / "live"
    temporary = root / "live.new"
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(part)
    os.replace(temporary, link)


def write_config(
    path: Path, database: str, port: int, sources: int, cats: list[Category], threads: int
) -> None:
    """Every source due once a day, no jitter (the bench sets due times itself)."""
    lines = [
        f"database: {database}",
        "auto_migrate: false  # `aggregator db upgrade` ran once",
        "timezone: Asia/Shanghai",
        "site_url: http://bench.example",
        "allow_networks: [127.0.0.0/8]  # the feeds are served on 127.0.0.1",
        "housekeeping:",
        "  every: 7d  # runs once, at the first start",
        "defaults:",
        "  interval: 1d",
        "  jitter_fraction: 0",
        f"  workers: {threads}",
        "categories:",
    ]
    for cat in cats:
        lines += [f"  {cat.slug}:", f"    title: {cat.title}", f"    name: {cat.name}"]
    lines.append("sources:")
    for index in range(sources):
        lines += [
            f"  - id: {source_id(index)}",
            f"    url: http://127.0.0.1:{port}/live/{feed_file(index)}",
            "    category_from: author",
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def psycopg_url(url: str) -> str:
    """psycopg takes the libpq form of a SQLAlchemy postgresql(+psycopg) URL."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _admin(url: str) -> tuple[psycopg.Connection[Any], str]:
    target = psycopg_url(url)
    name = conninfo.conninfo_to_dict(target)["dbname"]
    admin = psycopg.connect(conninfo.make_conninfo(target, dbname="postgres"), autocommit=True)
    return admin, str(name)


def database_exists(url: str) -> bool:
    admin, name = _admin(url)
    with admin:
        return (
            admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            is not None
        )


def drop_database(url: str) -> None:
    admin, name = _admin(url)
    with admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def create_database(url: str) -> None:
    drop_database(url)
    admin, name = _admin(url)
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def bulk_fill(url: str, count: int, cats: list[Category], sources: int, seed: int = 7) -> None:
    """COPY ``count`` generated items (each in one category, first seen by one source)."""
    now = datetime.now(UTC)
    author = {cat.slug: cat.name for cat in cats}
    slugs = [cat.slug for cat in cats]
    ids = [source_id(i) for i in range(sources)]

    def rows() -> Any:
        return prefill.item_rows(count, slugs, ids, seed)

    with psycopg.connect(psycopg_url(url)) as conn, conn.cursor() as cur:
        cur.execute("SET synchronous_commit = off")
        with cur.copy(f"COPY items ({ITEM_COLUMNS}) FROM STDIN") as copy:
            for r in rows():
                copy.write_row(
                    (
                        r.item_id,
                        r.stable_id,
                        r.item_id,
                        r.item_id,
                        r.title,
                        r.link,
                        prefill.BODY,
                        author[r.category_slug],
                        r.published_at,
                        prefill.OFFSET_MINUTES,
                        now,
                        now,
                        0,
                        r.source_id,
                    )
                )
        with cur.copy(
            "COPY item_categories (item_id, category_slug, published_at, added_at) FROM STDIN"
        ) as copy:
            for r in rows():
                copy.write_row((r.item_id, r.category_slug, r.published_at, now))
        with cur.copy(
            "COPY item_sources (item_id, source_id, content_sha256, first_seen_at, "
            "last_seen_at) FROM STDIN"
        ) as copy:
            for r in rows():
                digest = hashlib.sha256(r.stable_id.encode()).hexdigest()
                copy.write_row((r.item_id, r.source_id, digest, now, now))
        for statement in prefill.FINISH_SQL:
            cur.execute(statement)
        # explicit ids do not move the serial's sequence; the store's inserts rely on it
        cur.execute(
            "SELECT setval(pg_get_serial_sequence('items', 'item_id'), "
            "(SELECT max(item_id) FROM items))"
        )
    vacuum(url)


def vacuum(url: str, tables: str = "") -> None:
    with psycopg.connect(psycopg_url(url), autocommit=True) as conn:
        conn.execute(f"VACUUM (ANALYZE) {tables}")


def sizes(url: str) -> dict[str, Any]:
    """The database's size, and its tables and indexes by size."""
    with psycopg.connect(psycopg_url(url)) as conn:
        total = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        relations = conn.execute(
            "SELECT c.relname, c.relkind, pg_total_relation_size(c.oid), "
            "pg_relation_size(c.oid), coalesce(t.n_live_tup, 0) "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "LEFT JOIN pg_stat_user_tables t ON t.relid = c.oid "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i') "
            "ORDER BY pg_total_relation_size(c.oid) DESC"
        ).fetchall()
    tables = [
        {"name": name, "total_bytes": whole, "heap_bytes": heap, "rows": rows}
        for name, kind, whole, heap, rows in relations
        if kind == "r"
    ]
    indexes = [{"name": name, "bytes": heap} for name, kind, _, heap, _ in relations if kind == "i"]
    return {"database_bytes": total[0] if total else 0, "tables": tables, "indexes": indexes}
