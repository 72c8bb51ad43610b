"""outbox jobs for onward recipients: erasure notices to an address, not a destination

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 05:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("recipient", sa.String(length=320), nullable=True))
        batch_op.alter_column("destination_id", existing_type=sa.String(length=32), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM outbox WHERE destination_id IS NULL")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.alter_column("destination_id", existing_type=sa.String(length=32), nullable=False)
        batch_op.drop_column("recipient")
