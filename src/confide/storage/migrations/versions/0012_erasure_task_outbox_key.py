"""erasure tasks: the outbox job of an erasure notice, so its delivery settles the task

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-27 07:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("erasure_tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("outbox_key", sa.String(length=64), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_erasure_tasks_outbox_key"), ["outbox_key"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("erasure_tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_erasure_tasks_outbox_key"))
        batch_op.drop_column("outbox_key")
