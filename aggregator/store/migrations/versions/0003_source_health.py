"""Source health: redirects adopted only when they repeat, retirement after repeated
410 Gone, and warnings (a feed that suddenly lists nothing) kept beside errors.

sources.pending_redirect_url / pending_redirect_count: a permanent redirect seen on
consecutive fetches; the URL is adopted when the count reaches the threshold.
sources.gone_count: consecutive 410 answers; sources.retired_at: when they retired it.
sources.last_warning and fetches.warning: what was odd about a fetch that did not fail.
sources.interval_seconds: the configured interval, so a config reload that shortens it
moves the next due time forward at once.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

from aggregator.store.schema import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.add_column(sa.Column("pending_redirect_url", sa.Text()))
        batch.add_column(
            sa.Column("pending_redirect_count", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("gone_count", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("retired_at", UTCDateTime()))
        batch.add_column(sa.Column("last_warning", sa.Text()))
        batch.add_column(sa.Column("interval_seconds", sa.Integer()))
    with op.batch_alter_table("fetches") as batch:
        batch.add_column(sa.Column("warning", sa.Text()))


def downgrade() -> None:
    with op.batch_alter_table("fetches") as batch:
        batch.drop_column("warning")
    with op.batch_alter_table("sources") as batch:
        for name in (
            "interval_seconds",
            "last_warning",
            "retired_at",
            "gone_count",
            "pending_redirect_count",
            "pending_redirect_url",
        ):
            batch.drop_column(name)
