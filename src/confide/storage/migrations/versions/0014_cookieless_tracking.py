"""sites: tracking identity and salt rotation; tracking_salts (R21 cookieless counting)

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-26 09:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "tracking_identity", sa.String(length=10), nullable=False, server_default="cookie"
            )
        )
        batch_op.add_column(
            sa.Column("salt_rotation", sa.String(length=8), nullable=False, server_default="daily")
        )
    op.create_table(
        "tracking_salts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("rotation", sa.String(length=8), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("salt", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracking_salts")),
        sa.UniqueConstraint(
            "rotation", "period_start", name=op.f("uq_tracking_salts_rotation_period_start")
        ),
    )


def downgrade() -> None:
    op.drop_table("tracking_salts")
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.drop_column("salt_rotation")
        batch_op.drop_column("tracking_identity")
