"""retention

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 00:21:23.018102
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import confide.storage.base

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "retention_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("started_at", confide.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", confide.storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("as_of", confide.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retention_runs")),
    )
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("contract_start", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("contract_end", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("retention_months", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "behaviour_retention_days", sa.Integer(), nullable=False, server_default="395"
            )
        )
        batch_op.add_column(
            sa.Column(
                "end_of_contract", sa.String(length=20), nullable=False, server_default="delete"
            )
        )
        batch_op.add_column(
            sa.Column("returned_at", confide.storage.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("purged_at", confide.storage.base.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.drop_column("purged_at")
        batch_op.drop_column("returned_at")
        batch_op.drop_column("end_of_contract")
        batch_op.drop_column("behaviour_retention_days")
        batch_op.drop_column("retention_months")
        batch_op.drop_column("contract_end")
        batch_op.drop_column("contract_start")

    op.drop_table("retention_runs")
