"""``SqlStore``'s republishing group: categories, their stamps and feed items, source
provenance and the cheap change token, for the web app and exports."""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import and_, func, or_, select

from aggregator.errors import ItemNotFoundError
from aggregator.model import CategoryInfo, SourceInfo, StoredItem
from aggregator.store.dbapi import SEQ_COUNTER, chunks
from aggregator.store.schema import (
    categories,
    counters,
    item_categories,
    item_tickers,
    items,
    sources,
)
from aggregator.store.sql.base import SqlStoreBase
from aggregator.store.sql.rows import stored_items


class RepublishingMixin(SqlStoreBase):
    def list_categories(self) -> list[CategoryInfo]:
        counts = (
            select(item_categories.c.category_slug, func.count().label("n"))
            .group_by(item_categories.c.category_slug)
            .subquery()
        )
        with self._read() as conn:
            rows = conn.execute(
                select(categories, func.coalesce(counts.c.n, 0).label("item_count"))
                .select_from(
                    categories.outerjoin(counts, counts.c.category_slug == categories.c.slug)
                )
                .order_by(categories.c.slug)
            ).all()
        return [
            CategoryInfo(
                row.slug,
                row.title,
                row.description,
                row.name,
                row.origin,
                int(row.last_seq),
                int(row.item_count),
            )
            for row in rows
        ]

    def find_categories(self, slugs: Sequence[str] | None = None) -> dict[str, CategoryInfo]:
        query = select(categories)
        if slugs is not None:
            query = query.where(categories.c.slug.in_(list(slugs)))
        with self._read() as conn:
            rows = conn.execute(query).all()
        return {
            row.slug: CategoryInfo(
                row.slug, row.title, row.description, row.name, row.origin, int(row.last_seq), -1
            )
            for row in rows
        }

    def category_stamp(self, slugs: Sequence[str] | None) -> int:
        with self._read() as conn:
            if slugs is None:
                query = select(counters.c.value).where(counters.c.name == SEQ_COUNTER)
            else:
                query = select(func.coalesce(func.max(categories.c.last_seq), 0)).where(
                    categories.c.slug.in_(list(slugs))
                )
            return int(conn.execute(query).scalar_one())

    def list_feed_items(
        self,
        slugs: Sequence[str] | None,
        limit: int,
        offset: int = 0,
        since_seq: int | None = None,
        since_time: datetime | None = None,
        ticker: str | None = None,
    ) -> list[StoredItem]:
        if ticker is not None:
            # one security: walk its (code, published_at, item_id) index
            query = (
                select(items)
                .join(item_tickers, item_tickers.c.item_id == items.c.item_id)
                .where(item_tickers.c.code == ticker)
                .order_by(item_tickers.c.published_at.desc(), item_tickers.c.item_id.desc())
            )
            if slugs is not None:
                members = select(item_categories.c.item_id).where(
                    item_categories.c.category_slug.in_(list(slugs))
                )
                query = query.where(items.c.item_id.in_(members))
        elif slugs is not None and len(slugs) == 1:
            # one category: walk its (slug, published_at, item_id) index
            query = (
                select(items)
                .join(item_categories, item_categories.c.item_id == items.c.item_id)
                .where(item_categories.c.category_slug == slugs[0])
                .order_by(item_categories.c.published_at.desc(), item_categories.c.item_id.desc())
            )
        else:
            query = select(items).order_by(items.c.published_at.desc(), items.c.item_id.desc())
            if slugs is not None:
                members = select(item_categories.c.item_id).where(
                    item_categories.c.category_slug.in_(list(slugs))
                )
                query = query.where(items.c.item_id.in_(members))
        if since_seq is not None:
            query = query.where(items.c.seq > since_seq)
        if since_time is not None:
            query = query.where(items.c.updated_at > since_time)
        with self._read() as conn:
            rows = conn.execute(query.limit(limit).offset(offset)).all()
            return stored_items(conn, rows)

    def find_adjacent_items(
        self, slug: str, item_id: int
    ) -> tuple[StoredItem | None, StoredItem | None]:
        member = item_categories.c
        with self._read() as conn:
            published_at = conn.execute(
                select(member.published_at).where(
                    member.category_slug == slug, member.item_id == item_id
                )
            ).scalar_one_or_none()
            if published_at is None:
                return None, None
            # keyset neighbours on the (category_slug, published_at, item_id) index
            after = or_(
                member.published_at > published_at,
                and_(member.published_at == published_at, member.item_id > item_id),
            )
            before = or_(
                member.published_at < published_at,
                and_(member.published_at == published_at, member.item_id < item_id),
            )
            found: list[StoredItem | None] = []
            for condition, order in (
                (after, (member.published_at.asc(), member.item_id.asc())),
                (before, (member.published_at.desc(), member.item_id.desc())),
            ):
                query = (
                    select(items)
                    .join(item_categories, member.item_id == items.c.item_id)
                    .where(member.category_slug == slug, condition)
                    .order_by(*order)
                    .limit(1)
                )
                rows = stored_items(conn, conn.execute(query).all())
                found.append(rows[0] if rows else None)
        return found[0], found[1]

    def list_items_after(
        self, after_seq: int, limit: int, slug: str | None = None, ticker: str | None = None
    ) -> list[StoredItem]:
        query = select(items).where(items.c.seq > after_seq).order_by(items.c.seq)
        if ticker is not None:
            naming = select(item_tickers.c.item_id).where(item_tickers.c.code == ticker)
            query = query.where(items.c.item_id.in_(naming))
        if slug is not None:
            members = select(item_categories.c.item_id).where(
                item_categories.c.category_slug == slug
            )
            query = query.where(items.c.item_id.in_(members))
        with self._read() as conn:
            return stored_items(conn, conn.execute(query.limit(limit)).all())

    def get_item(self, item_id: int) -> StoredItem:
        with self._read() as conn:
            row = conn.execute(select(items).where(items.c.item_id == item_id)).first()
            if row is None:
                raise ItemNotFoundError(f"no item {item_id}")
            return stored_items(conn, [row])[0]

    def list_source_info(self, source_ids: Collection[str] | None = None) -> dict[str, SourceInfo]:
        query = select(
            sources.c.source_id, sources.c.url, sources.c.effective_url, sources.c.feed_title
        )
        with self._read() as conn:
            if source_ids is None:
                rows = conn.execute(query).all()
            else:
                rows = [
                    row
                    for chunk in chunks(sorted(source_ids))
                    for row in conn.execute(query.where(sources.c.source_id.in_(chunk)))
                ]
        return {
            row.source_id: SourceInfo(
                row.source_id, row.feed_title or row.source_id, row.effective_url or row.url
            )
            for row in rows
        }

    def change_token(self) -> tuple[int, ...] | None:
        """A value that changes whenever any process commits, read without a query: on
        SQLite the size and modification time of the database and its WAL (every commit
        appends to the WAL). None on PostgreSQL: there, ask ``category_stamp``."""
        if self._sqlite_files is None:
            return None
        token: list[int] = []
        for path in self._sqlite_files:
            try:
                info = os.stat(path)
            except FileNotFoundError:
                token += [0, 0]
                continue
            token += [info.st_size, info.st_mtime_ns]
        return tuple(token)

    def ping(self) -> None:
        with self._read() as conn:
            conn.execute(select(1)).scalar_one()
