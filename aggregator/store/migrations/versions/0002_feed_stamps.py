"""Feed freshness stamps and source titles for republishing.

categories.last_seq: the highest item seq written into the category; a feed's ETag
derives from it, so checking an unchanged feed is one primary-key lookup.
sources.feed_title: the source feed's own title, for <source> provenance.
items.first_seq: the seq the item was first stored with; seq != first_seq marks an item
that re-appears in a cursor stream because it changed.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("categories") as batch:
        batch.add_column(sa.Column("last_seq", sa.BigInteger(), nullable=False, server_default="0"))
    with op.batch_alter_table("sources") as batch:
        batch.add_column(sa.Column("feed_title", sa.Text()))
    with op.batch_alter_table("items") as batch:
        batch.add_column(sa.Column("first_seq", sa.BigInteger(), nullable=True))
    op.execute("UPDATE items SET first_seq = seq")
    with op.batch_alter_table("items") as batch:
        batch.alter_column("first_seq", existing_type=sa.BigInteger(), nullable=False)
    # categories that already hold items get their stamp now
    op.execute(
        "UPDATE categories SET last_seq = COALESCE((SELECT MAX(i.seq) FROM items i "
        "JOIN item_categories c ON c.item_id = i.item_id "
        "WHERE c.category_slug = categories.slug), 0)"
    )


def downgrade() -> None:
    with op.batch_alter_table("items") as batch:
        batch.drop_column("first_seq")
    with op.batch_alter_table("sources") as batch:
        batch.drop_column("feed_title")
    with op.batch_alter_table("categories") as batch:
        batch.drop_column("last_seq")
