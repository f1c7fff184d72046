"""card refresh leases: a version per dirty customer and a lease for the worker building it

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 13:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dirty_cards", schema=None) as batch_op:
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dirty_cards", schema=None) as batch_op:
        batch_op.drop_column("leased_until")
        batch_op.drop_column("version")
