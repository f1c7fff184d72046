"""orders by ingestion: an index for the recommendations worker's watermark

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 16:50:00

The worker that adds new orders to the recommendation counts reads them in
``(ingested_at, order_id)`` order from its watermark on. Without this index every round sorted
the whole orders table (seconds at a million orders, holding a core while tills pushed). New
orders are appended at its right edge, so ingest pays little for it.
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index("ix_orders_ingested", ["ingested_at", "order_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_ingested")
