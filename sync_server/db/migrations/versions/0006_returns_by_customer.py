"""returns by customer: an index for the card's loyalty points (refunds) and for erasure

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 16:05:00

Every customer card sums the customer's returns; without this index each card built (by the
card worker or at a till's lookup) read the whole returns table.
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("returns", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_returns_customer_id"), ["customer_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("returns", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_returns_customer_id"))
