"""Several processes, one schedule: per-host politeness, housekeeping once per cluster,
and retention that does not let pruned items come back.

sources.host: the host of the URL fetched (per-host limits count leases and fetches by it).
pruned_items: stable ids removed by retention; a fetch skips them.
jobs: periodic work; a process runs a job only by moving its next_run_at forward first.
fetches(started_at): pruning the fetch log and counting a host's recent fetches.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from urllib.parse import urlsplit

import sqlalchemy as sa
from alembic import op

from aggregator.store.schema import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.add_column(sa.Column("host", sa.String(255)))
        batch.create_index("ix_sources_host", ["host"])
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT source_id, url, effective_url FROM sources")).all()
    for source_id, url, effective_url in rows:
        host = (urlsplit(effective_url or url).hostname or "").lower()
        conn.execute(
            sa.text("UPDATE sources SET host = :host WHERE source_id = :id"),
            {"host": host, "id": source_id},
        )
    op.create_index("ix_fetches_started", "fetches", ["started_at"])
    op.create_table(
        "pruned_items",
        sa.Column("stable_id", sa.String(255), primary_key=True),
        sa.Column("pruned_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_pruned_items_pruned_at", "pruned_items", ["pruned_at"])
    op.create_table(
        "jobs",
        sa.Column("name", sa.String(50), primary_key=True),
        sa.Column("next_run_at", UTCDateTime(), nullable=False),
        sa.Column("last_owner", sa.String(200)),
        sa.Column("last_started_at", UTCDateTime()),
        sa.Column("last_result", sa.Text()),
    )


def downgrade() -> None:
    op.drop_table("jobs")
    op.drop_index("ix_pruned_items_pruned_at", "pruned_items")
    op.drop_table("pruned_items")
    op.drop_index("ix_fetches_started", "fetches")
    with op.batch_alter_table("sources") as batch:
        batch.drop_index("ix_sources_host")
        batch.drop_column("host")
