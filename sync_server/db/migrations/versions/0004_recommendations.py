"""recommendations: decayed item and pair counts, their state, dirty items, merchandising rules

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 14:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "item_counts",
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("sku", name="pk_item_counts"),
    )
    op.create_table(
        "item_pairs",
        sa.Column("a", sa.String(64), nullable=False),
        sa.Column("b", sa.String(64), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("a", "b", name="pk_item_pairs"),
    )
    op.create_table(
        "recs_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("watermark_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("watermark_order", sa.Uuid(), nullable=True),
        sa.Column("reference_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("total_weight", sa.Float(), nullable=False, server_default="0"),
        sa.Column("rebuilt_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_recs_state"),
    )
    op.create_table(
        "dirty_items",
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("sku", name="pk_dirty_items"),
    )
    op.create_table(
        "merchandising_rules",
        sa.Column("rule_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("sku", sa.String(64), nullable=True),
        sa.Column("category", sa.String(200), nullable=True),
        sa.Column("target_sku", sa.String(64), nullable=True),
        sa.Column("weight", sa.Float(), nullable=False, server_default="1"),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("rule_id", name="pk_merchandising_rules"),
    )


def downgrade() -> None:
    for table in ("merchandising_rules", "dirty_items", "recs_state", "item_pairs", "item_counts"):
        op.drop_table(table)
