"""sites: UK statistics exception; anonymous_counts (R12)

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-26 09:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("uk_stats_exception", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "anonymous_counts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("path", sa.String(length=512), nullable=False),
        sa.Column("pageviews", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_anonymous_counts_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_anonymous_counts_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_anonymous_counts")),
        sa.UniqueConstraint(
            "site_id", "day", "path", name=op.f("uq_anonymous_counts_site_id_day_path")
        ),
    )
    with op.batch_alter_table("anonymous_counts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_anonymous_counts_organisation_id"), ["organisation_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("anonymous_counts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_anonymous_counts_organisation_id"))
    op.drop_table("anonymous_counts")
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.drop_column("uk_stats_exception")
