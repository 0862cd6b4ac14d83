"""Initial schema: sources, categories, items, memberships, provenance, fetch log.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

from aggregator.store.schema import BigId, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("source_id", sa.String(100), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("effective_url", sa.Text()),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("category", sa.String(100)),
        sa.Column("etag", sa.Text()),
        sa.Column("last_modified", sa.Text()),
        sa.Column("body_sha256", sa.String(64)),
        sa.Column("next_due_at", UTCDateTime(), nullable=False),
        sa.Column("lease_owner", sa.String(200)),
        sa.Column("lease_until", UTCDateTime()),
        sa.Column("last_fetch_at", UTCDateTime()),
        sa.Column("last_success_at", UTCDateTime()),
        sa.Column("last_outcome", sa.String(20)),
        sa.Column("last_status", sa.Integer()),
        sa.Column("last_error", sa.Text()),
        sa.Column("consecutive_errors", sa.Integer(), nullable=False),
        sa.Column("last_item_count", sa.Integer()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("source_id", name="pk_sources"),
    )
    op.create_index("ix_sources_due", "sources", ["enabled", "next_due_at"])
    op.create_table(
        "categories",
        sa.Column("slug", sa.String(100), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("name", sa.Text()),
        sa.Column("identity_key", sa.Text()),
        sa.Column("origin", sa.String(10), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("slug", name="pk_categories"),
        sa.UniqueConstraint("identity_key", name="uq_categories_identity_key"),
    )
    op.create_table(
        "items",
        sa.Column("item_id", BigId, autoincrement=True, nullable=False),
        sa.Column("stable_id", sa.String(255), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("link", sa.Text()),
        sa.Column("guid", sa.Text()),
        sa.Column("summary", sa.Text()),
        sa.Column("content", sa.Text()),
        sa.Column("author", sa.Text()),
        sa.Column("published_at", UTCDateTime(), nullable=False),
        sa.Column("published_offset_minutes", sa.Integer(), nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("update_count", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("item_id", name="pk_items"),
        sa.UniqueConstraint("stable_id", name="uq_items_stable_id"),
        sa.UniqueConstraint("seq", name="uq_items_seq"),
    )
    op.create_index("ix_items_published", "items", ["published_at", "item_id"])
    op.create_table(
        "item_categories",
        sa.Column("item_id", BigId, nullable=False),
        sa.Column("category_slug", sa.String(100), nullable=False),
        sa.Column("published_at", UTCDateTime(), nullable=False),
        sa.Column("added_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["items.item_id"],
            ondelete="CASCADE",
            name="fk_item_categories_item_id_items",
        ),
        sa.ForeignKeyConstraint(
            ["category_slug"],
            ["categories.slug"],
            name="fk_item_categories_category_slug_categories",
        ),
        sa.PrimaryKeyConstraint("item_id", "category_slug", name="pk_item_categories"),
    )
    op.create_index(
        "ix_item_categories_feed", "item_categories", ["category_slug", "published_at", "item_id"]
    )
    op.create_table(
        "item_sources",
        sa.Column("item_id", BigId, nullable=False),
        sa.Column("source_id", sa.String(100), nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"], ["items.item_id"], ondelete="CASCADE", name="fk_item_sources_item_id_items"
        ),
        sa.PrimaryKeyConstraint("item_id", "source_id", name="pk_item_sources"),
    )
    op.create_index("ix_item_sources_source", "item_sources", ["source_id"])
    op.create_table(
        "fetches",
        sa.Column("fetch_id", BigId, autoincrement=True, nullable=False),
        sa.Column("source_id", sa.String(100), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("http_status", sa.Integer()),
        sa.Column("bytes_received", sa.Integer(), nullable=False),
        sa.Column("new_count", sa.Integer(), nullable=False),
        sa.Column("updated_count", sa.Integer(), nullable=False),
        sa.Column("unchanged_count", sa.Integer(), nullable=False),
        sa.Column("item_count", sa.Integer()),
        sa.Column("error", sa.Text()),
        sa.Column("error_class", sa.String(100)),
        sa.PrimaryKeyConstraint("fetch_id", name="pk_fetches"),
    )
    op.create_index("ix_fetches_source_started", "fetches", ["source_id", "started_at"])
    counters = op.create_table(
        "counters",
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_counters"),
    )
    op.bulk_insert(counters, [{"name": "item_seq", "value": 0}])


def downgrade() -> None:
    for index, table in (
        ("ix_fetches_source_started", "fetches"),
        ("ix_item_sources_source", "item_sources"),
        ("ix_item_categories_feed", "item_categories"),
        ("ix_items_published", "items"),
        ("ix_sources_due", "sources"),
    ):
        op.drop_index(index, table_name=table)
    for table in (
        "counters",
        "fetches",
        "item_sources",
        "item_categories",
        "items",
        "categories",
        "sources",
    ):
        op.drop_table(table)
