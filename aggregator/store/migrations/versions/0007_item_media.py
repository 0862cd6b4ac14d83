"""Media: an item's enclosures, thumbnails and images (issue 14), in the feed's order.

item_media: (item, position) -> url, role (enclosure | thumbnail | image | banner), MIME
type, length in bytes, Media RSS medium, width, height, duration in seconds. Deleted with
the item; replaced as a whole when the item is updated.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "item_media",
        sa.Column("item_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("type", sa.String(200)),
        sa.Column("length", sa.BigInteger()),
        sa.Column("medium", sa.String(20)),
        sa.Column("width", sa.Integer()),
        sa.Column("height", sa.Integer()),
        sa.Column("duration_seconds", sa.BigInteger()),
        sa.ForeignKeyConstraint(
            ["item_id"], ["items.item_id"], ondelete="CASCADE", name="fk_item_media_item_id_items"
        ),
        sa.PrimaryKeyConstraint("item_id", "position", name="pk_item_media"),
    )


def downgrade() -> None:
    op.drop_table("item_media")
