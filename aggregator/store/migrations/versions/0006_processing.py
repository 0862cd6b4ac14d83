"""Processing steps: items they drop are counted per fetch and remembered per source.

fetches.dropped_count: items the steps dropped in that fetch.
sources.last_dropped_count: the same, of the last fetch that parsed the feed.
dropped_items: (source, stable id) the steps dropped, with the item's hash and the steps'
fingerprint: not processed (or fetched for full text) again while both stay the same.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

from aggregator.store.schema import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.add_column(
            sa.Column("last_dropped_count", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("fetches") as batch:
        batch.add_column(
            sa.Column("dropped_count", sa.Integer(), nullable=False, server_default="0")
        )
    op.create_table(
        "dropped_items",
        sa.Column("source_id", sa.String(100), primary_key=True),
        sa.Column("stable_id", sa.String(255), primary_key=True),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("steps_sha256", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("dropped_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_dropped_items_dropped_at", "dropped_items", ["dropped_at"])


def downgrade() -> None:
    op.drop_index("ix_dropped_items_dropped_at", "dropped_items")
    op.drop_table("dropped_items")
    with op.batch_alter_table("fetches") as batch:
        batch.drop_column("dropped_count")
    with op.batch_alter_table("sources") as batch:
        batch.drop_column("last_dropped_count")
