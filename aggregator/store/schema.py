"""The database tables (SQLAlchemy Core). Alembic migrations in aggregator/migrations
create exactly these; a test compares the two so they cannot drift.

Every timestamp column holds UTC (``UTCDateTime`` stores naive UTC on SQLite, which has
no time zone type, and gives back aware datetimes everywhere).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)
# An autoincrementing 64-bit key that is still SQLite's rowid alias.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; every datetime is aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


sources = Table(
    "sources",
    metadata,
    Column("source_id", String(100), primary_key=True),
    Column("url", Text, nullable=False),
    Column("effective_url", Text),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("category", String(100)),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("body_sha256", String(64)),
    Column("next_due_at", UTCDateTime, nullable=False),
    Column("lease_owner", String(200)),
    Column("lease_until", UTCDateTime),
    Column("last_fetch_at", UTCDateTime),
    Column("last_success_at", UTCDateTime),
    Column("last_outcome", String(20)),
    Column("last_status", Integer),
    Column("last_error", Text),
    Column("consecutive_errors", Integer, nullable=False, default=0),
    Column("last_item_count", Integer),
    Column("created_at", UTCDateTime, nullable=False),
    Column("feed_title", Text),  # the source feed's own title, for <source> provenance
    # a permanent redirect seen on consecutive fetches, adopted when it repeats (0003)
    Column("pending_redirect_url", Text),
    Column("pending_redirect_count", Integer, nullable=False, server_default="0"),
    Column("gone_count", Integer, nullable=False, server_default="0"),  # consecutive 410s
    Column("retired_at", UTCDateTime),  # set after repeated 410 Gone: no longer fetched
    Column("last_warning", Text),  # what was odd about the last fetch that did not fail
    Column("interval_seconds", Integer),  # as configured: a shorter one applies at once
    Column("host", String(255)),  # of the URL fetched, for per-host politeness (0004)
    # the place in the order of precedence (0 first: its copy of a shared item is the one
    # stored); NULL for a source no longer configured, which yields to all others (0005)
    Column("precedence", Integer),
    # items the processing steps dropped in the last fetch that parsed the feed (0006)
    Column("last_dropped_count", Integer, nullable=False, server_default="0"),
    Index("ix_sources_due", "enabled", "next_due_at"),
    Index("ix_sources_host", "host"),
)

categories = Table(
    "categories",
    metadata,
    Column("slug", String(100), primary_key=True),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("name", Text),
    Column("identity_key", Text, unique=True),
    Column("origin", String(10), nullable=False),  # config | derived
    Column("created_at", UTCDateTime, nullable=False),
    # the highest item seq written into the category: a feed's freshness stamp
    Column("last_seq", BigInteger, nullable=False, server_default="0"),
)

items = Table(
    "items",
    metadata,
    Column("item_id", BigId, primary_key=True, autoincrement=True),
    Column("stable_id", String(255), nullable=False, unique=True),
    Column("seq", BigInteger, nullable=False, unique=True),
    Column("title", Text, nullable=False),
    Column("link", Text),
    Column("guid", Text),
    Column("summary", Text),
    Column("content", Text),
    Column("author", Text),
    Column("published_at", UTCDateTime, nullable=False),
    Column("published_offset_minutes", Integer, nullable=False),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("update_count", Integer, nullable=False, default=0),
    # whose copy is stored: the source that takes precedence among those that carried it
    Column("source_id", String(100), nullable=False),
    Column("first_seq", BigInteger, nullable=False),  # seq != first_seq: it changed
    # the item's own last change as its feed gave it (Atom updated, JSON Feed
    # date_modified); updated_at is when we stored it (0005)
    Column("source_updated_at", UTCDateTime),
    Index("ix_items_published", "published_at", "item_id"),
)

item_categories = Table(
    "item_categories",
    metadata,
    Column("item_id", BigId, ForeignKey("items.item_id", ondelete="CASCADE"), primary_key=True),
    Column("category_slug", String(100), ForeignKey("categories.slug"), primary_key=True),
    Column("published_at", UTCDateTime, nullable=False),  # copied: one index serves a feed
    Column("added_at", UTCDateTime, nullable=False),
    Index("ix_item_categories_feed", "category_slug", "published_at", "item_id"),
)

# the securities an item names (finance/tickers.py); published_at is copied so one index
# serves a ticker's feed, as item_categories does a category's
item_tickers = Table(
    "item_tickers",
    metadata,
    Column("item_id", BigId, ForeignKey("items.item_id", ondelete="CASCADE"), primary_key=True),
    Column("code", String(20), primary_key=True),
    Column("published_at", UTCDateTime, nullable=False),
    Index("ix_item_tickers_feed", "code", "published_at", "item_id"),
)

item_sources = Table(
    "item_sources",
    metadata,
    Column("item_id", BigId, ForeignKey("items.item_id", ondelete="CASCADE"), primary_key=True),
    Column("source_id", String(100), primary_key=True),
    Column("content_sha256", String(64), nullable=False),  # this source's version
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Index("ix_item_sources_source", "source_id"),
)

fetches = Table(
    "fetches",
    metadata,
    Column("fetch_id", BigId, primary_key=True, autoincrement=True),
    Column("source_id", String(100), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("duration_ms", Integer, nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("http_status", Integer),
    Column("bytes_received", Integer, nullable=False, default=0),
    Column("new_count", Integer, nullable=False, default=0),
    Column("updated_count", Integer, nullable=False, default=0),
    Column("unchanged_count", Integer, nullable=False, default=0),
    Column("item_count", Integer),
    Column("error", Text),
    Column("error_class", String(100)),
    Column("warning", Text),
    Column("dropped_count", Integer, nullable=False, server_default="0"),  # (0006)
    Index("ix_fetches_source_started", "source_id", "started_at"),
    Index("ix_fetches_started", "started_at"),
)

# Items pruned by retention, by stable id: a source that still lists one does not bring
# it back (0004).
pruned_items = Table(
    "pruned_items",
    metadata,
    Column("stable_id", String(255), primary_key=True),
    Column("pruned_at", UTCDateTime, nullable=False),
    Index("ix_pruned_items_pruned_at", "pruned_at"),
)

# An item's media (0007): enclosures, thumbnails, images, in the feed's order (position).
# Replaced as a whole when the item is updated.
item_media = Table(
    "item_media",
    metadata,
    Column("item_id", BigId, ForeignKey("items.item_id", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("url", Text, nullable=False),
    Column("role", String(20), nullable=False),  # enclosure | thumbnail | image | banner
    Column("type", String(200)),
    Column("length", BigInteger),
    Column("medium", String(20)),
    Column("width", Integer),
    Column("height", Integer),
    Column("duration_seconds", BigInteger),
)

# Items a source's processing steps dropped (process/, 0006): not processed again while
# the source gives them unchanged (content_sha256) to the same steps (steps_sha256).
dropped_items = Table(
    "dropped_items",
    metadata,
    Column("source_id", String(100), primary_key=True),
    Column("stable_id", String(255), primary_key=True),
    Column("content_sha256", String(64), nullable=False),
    Column("steps_sha256", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("dropped_at", UTCDateTime, nullable=False),
    Index("ix_dropped_items_dropped_at", "dropped_at"),
)

# Periodic work done once per cluster: whoever moves next_run_at forward runs it (0004).
jobs = Table(
    "jobs",
    metadata,
    Column("name", String(50), primary_key=True),
    Column("next_run_at", UTCDateTime, nullable=False),
    Column("last_owner", String(200)),
    Column("last_started_at", UTCDateTime),
    Column("last_result", Text),
)

counters = Table(
    "counters",
    metadata,
    Column("name", String(50), primary_key=True),
    Column("value", BigInteger, nullable=False),
)
