"""``SqlStore``'s reading group: source status, items and the fetch log, for the CLI, the
web app and tests."""

from __future__ import annotations

from sqlalchemy import func, select

from aggregator.model import StoredItem
from aggregator.store import FetchRecord, SourceStatus
from aggregator.store.schema import fetches, item_categories, item_sources, items, sources
from aggregator.store.sql.base import SqlStoreBase
from aggregator.store.sql.rows import stored_items


class ReadingMixin(SqlStoreBase):
    def list_source_status(self) -> list[SourceStatus]:
        counts = (
            select(item_sources.c.source_id, func.count().label("n"))
            .group_by(item_sources.c.source_id)
            .subquery()
        )
        with self._read() as conn:
            rows = conn.execute(
                select(sources, func.coalesce(counts.c.n, 0).label("item_count"))
                .select_from(sources.outerjoin(counts, counts.c.source_id == sources.c.source_id))
                .order_by(sources.c.source_id)
            ).all()
        return [
            SourceStatus(
                source_id=row.source_id,
                url=row.effective_url or row.url,
                category=row.category,
                enabled=row.enabled,
                last_fetch_at=row.last_fetch_at,
                last_outcome=row.last_outcome,
                last_status=row.last_status,
                last_error=row.last_error,
                next_due_at=row.next_due_at,
                item_count=int(row.item_count),
                consecutive_errors=row.consecutive_errors,
                retired_at=row.retired_at,
                last_warning=row.last_warning,
                last_dropped_count=row.last_dropped_count,
            )
            for row in rows
        ]

    def count_items(self, category: str | None = None) -> int:
        with self._read() as conn:
            if category is None:
                return int(conn.execute(select(func.count()).select_from(items)).scalar_one())
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(item_categories)
                    .where(item_categories.c.category_slug == category)
                ).scalar_one()
            )

    def find_item(self, stable_id: str) -> StoredItem | None:
        with self._read() as conn:
            row = conn.execute(select(items).where(items.c.stable_id == stable_id)).first()
            return stored_items(conn, [row])[0] if row is not None else None

    def list_items(self, category: str | None = None, limit: int = 50) -> list[StoredItem]:
        query = select(items).order_by(items.c.published_at.desc(), items.c.item_id.desc())
        if category is not None:
            query = query.join(item_categories, item_categories.c.item_id == items.c.item_id)
            query = query.where(item_categories.c.category_slug == category)
        with self._read() as conn:
            return stored_items(conn, conn.execute(query.limit(limit)).all())

    def list_source_items(self, source_id: str) -> list[tuple[StoredItem, str]]:
        with self._read() as conn:
            rows = conn.execute(
                select(items).where(items.c.source_id == source_id).order_by(items.c.item_id)
            ).all()
            hashes = dict(
                conn.execute(
                    select(item_sources.c.item_id, item_sources.c.content_sha256).where(
                        item_sources.c.source_id == source_id
                    )
                ).all()
            )
            found = stored_items(conn, rows)
        return [(item, hashes[item.item_id]) for item in found if item.item_id in hashes]

    def list_fetches(self, source_id: str, limit: int = 20) -> list[FetchRecord]:
        with self._read() as conn:
            rows = conn.execute(
                select(fetches)
                .where(fetches.c.source_id == source_id)
                .order_by(fetches.c.started_at.desc(), fetches.c.fetch_id.desc())
                .limit(limit)
            ).all()
        return [
            FetchRecord(
                row.source_id,
                row.started_at,
                row.outcome,
                row.http_status,
                row.new_count,
                row.updated_count,
                row.unchanged_count,
                row.error,
                row.dropped_count,
            )
            for row in rows
        ]
