"""Rows to values for the ``SqlStore`` groups (no business logic): a source's state, and
stored items with their categories."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select

from aggregator.model import Media, SourceState, StoredItem
from aggregator.store.dbapi import chunks
from aggregator.store.schema import item_categories, item_media, item_tickers


def stored_items(conn: Connection, rows: Sequence[Any]) -> list[StoredItem]:
    ids = [row.item_id for row in rows]
    slugs: dict[int, list[str]] = {}
    for chunk in chunks(ids):
        for row in conn.execute(
            select(item_categories.c.item_id, item_categories.c.category_slug)
            .where(item_categories.c.item_id.in_(chunk))
            .order_by(item_categories.c.category_slug)
        ):
            slugs.setdefault(row.item_id, []).append(row.category_slug)
    codes: dict[int, list[str]] = {}
    for chunk in chunks(ids):
        for row in conn.execute(
            select(item_tickers.c.item_id, item_tickers.c.code)
            .where(item_tickers.c.item_id.in_(chunk))
            .order_by(item_tickers.c.code)
        ):
            codes.setdefault(row.item_id, []).append(row.code)
    media = _media_of(conn, ids)
    return [
        StoredItem(
            item_id=row.item_id,
            stable_id=row.stable_id,
            seq=row.seq,
            title=row.title,
            link=row.link,
            guid=row.guid,
            summary=row.summary,
            content=row.content,
            author=row.author,
            published_at=row.published_at,
            published_offset_minutes=row.published_offset_minutes,
            first_seen_at=row.first_seen_at,
            updated_at=row.updated_at,
            update_count=row.update_count,
            source_id=row.source_id,
            category_slugs=tuple(slugs.get(row.item_id, ())),
            first_seq=row.first_seq,
            source_updated_at=row.source_updated_at,
            tickers=tuple(codes.get(row.item_id, ())),
            media=tuple(media.get(row.item_id, ())),
        )
        for row in rows
    ]


def _media_of(conn: Connection, ids: Sequence[int]) -> dict[int, list[Media]]:
    found: dict[int, list[Media]] = {}
    c = item_media.c
    for chunk in chunks(ids):
        for row in conn.execute(
            select(item_media).where(c.item_id.in_(chunk)).order_by(c.item_id, c.position)
        ):
            found.setdefault(row.item_id, []).append(
                Media(
                    url=row.url,
                    role=row.role,
                    type=row.type,
                    length=row.length,
                    medium=row.medium,
                    width=row.width,
                    height=row.height,
                    duration_seconds=row.duration_seconds,
                )
            )
    return found


def source_state(row: Any) -> SourceState:
    return SourceState(
        source_id=row.source_id,
        url=row.url,
        effective_url=row.effective_url,
        etag=row.etag,
        last_modified=row.last_modified,
        body_sha256=row.body_sha256,
        consecutive_errors=row.consecutive_errors,
        next_due_at=row.next_due_at,
        last_fetch_at=row.last_fetch_at,
        last_success_at=row.last_success_at,
        last_item_count=row.last_item_count,
        feed_title=row.feed_title,
        pending_redirect_url=row.pending_redirect_url,
        pending_redirect_count=row.pending_redirect_count,
        gone_count=row.gone_count,
        retired_at=row.retired_at,
        last_warning=row.last_warning,
    )
