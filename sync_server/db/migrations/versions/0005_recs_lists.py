"""recommendation lists kept current: per-store decayed counts, daily baskets for trending,
dirty bestseller, trending and personal lists

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 15:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "store_item_counts",
        sa.Column("store_id", sa.String(64), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("store_id", "sku", name="pk_store_item_counts"),
    )
    op.create_table(
        "item_days",
        sa.Column("store_id", sa.String(64), nullable=False),
        sa.Column("day", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("baskets", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("store_id", "day", "sku", name="pk_item_days"),
    )
    op.create_table(
        "dirty_lists",
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("kind", "key", name="pk_dirty_lists"),
    )


def downgrade() -> None:
    for table in ("dirty_lists", "item_days", "store_item_counts"):
        op.drop_table(table)
