"""Which copy of a shared item is stored, and dates readers sort on.

sources.precedence: the source's place in the order of precedence (0 first), set from the
config at every start and reload; NULL until then, and for sources no longer configured.
items.source_updated_at: Atom's updated, JSON Feed's date_modified (nullable: most RSS
items give none, and items stored before this have none either; the outputs fall back to
the published time). items.updated_at stays the time we stored the item.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

from aggregator.store.schema import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.add_column(sa.Column("precedence", sa.Integer()))
    with op.batch_alter_table("items") as batch:
        batch.add_column(sa.Column("source_updated_at", UTCDateTime()))


def downgrade() -> None:
    # In place (SQLite 3.35+, which RETURNING needs already): a batch rebuild of items
    # would drop the table, and with foreign keys on that empties its memberships.
    op.execute("ALTER TABLE items DROP COLUMN source_updated_at")
    op.execute("ALTER TABLE sources DROP COLUMN precedence")
