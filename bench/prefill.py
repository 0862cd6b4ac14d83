"""Bulk rows for benchmark databases; holds no business logic.

A database of a million items is built in a minute by writing generated rows straight
into the schema the real migrations created, instead of ingesting them through the
service. Used by bench/republish.py (SQLite, executemany) and bench/scale.py
(PostgreSQL, COPY). After the rows are in, the statements in ``FINISH_SQL`` leave the
database as the store itself would have: the seq counter at the highest seq, and each
category's ``last_seq`` freshness stamp at its newest member.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

BODY = "<p>" + "上海证券交易所今日公布的数据显示，市场成交保持活跃。" * 6 + "</p>"
START = datetime(2022, 1, 1, tzinfo=UTC)
OFFSET_MINUTES = 480  # the original publication offset kept with each item (UTC+8)

FINISH_SQL = (
    "UPDATE counters SET value = (SELECT coalesce(max(seq), 0) FROM items) WHERE name = 'item_seq'",
    "UPDATE categories SET last_seq = coalesce((SELECT max(i.seq) FROM items i "
    "JOIN item_categories c ON c.item_id = i.item_id "
    "WHERE c.category_slug = categories.slug), last_seq)",
)


class ItemRow(NamedTuple):
    """One generated item: ``item_id`` = ``seq`` = its number, one category, one source."""

    item_id: int
    stable_id: str
    title: str
    link: str
    published_at: datetime
    source_id: str
    category_slug: str


def item_rows(
    count: int, slugs: Sequence[str], source_ids: Sequence[str], seed: int = 7
) -> Iterator[ItemRow]:
    """Items 1..count, 30 s apart from 2022-01-01 (plus up to 29 s of noise), each in a
    random one of ``slugs``, first seen by ``source_ids`` in turn. Deterministic."""
    rng = random.Random(seed)
    for n in range(1, count + 1):
        published = START + timedelta(seconds=n * 30 + rng.randrange(30))
        yield ItemRow(
            n,
            f"NW2022{n:014d}",
            f"第{n}条 财经新闻标题 市场动态",
            f"http://finews.example/a?infoCode=NW2022{n:014d}",
            published,
            source_ids[n % len(source_ids)],
            slugs[rng.randrange(len(slugs))],
        )
