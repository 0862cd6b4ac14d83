"""item_tickers: the securities each item names (600519.SH), with the item's published
time copied so one (code, published_at, item_id) index serves a ticker's feed.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

from aggregator.store.schema import BigId, UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "item_tickers",
        sa.Column("item_id", BigId, nullable=False),
        sa.Column("code", sa.String(20), nullable=False),
        sa.Column("published_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"], ["items.item_id"], ondelete="CASCADE", name="fk_item_tickers_item_id_items"
        ),
        sa.PrimaryKeyConstraint("item_id", "code", name="pk_item_tickers"),
    )
    op.create_index("ix_item_tickers_feed", "item_tickers", ["code", "published_at", "item_id"])


def downgrade() -> None:
    op.drop_index("ix_item_tickers_feed", "item_tickers")
    op.drop_table("item_tickers")
