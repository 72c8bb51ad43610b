"""privacy_requests: access scope, identity facts, declaration, data points (R47)

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-26 11:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import confide.storage.base

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("privacy_requests", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "access_scope", sa.String(length=12), nullable=False, server_default="specific"
            )
        )
        batch_op.add_column(
            sa.Column("identity_facts", confide.storage.base.PersonalText(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("declared_at", confide.storage.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("data_points", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("privacy_requests", schema=None) as batch_op:
        batch_op.drop_column("data_points")
        batch_op.drop_column("declared_at")
        batch_op.drop_column("identity_facts")
        batch_op.drop_column("access_scope")
