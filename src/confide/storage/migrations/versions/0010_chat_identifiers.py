"""chat identifiers: emails and phones typed in chats, as blind indexes, for rights requests

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26 06:15:45.335119
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import confide.storage.base

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chat_identifiers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("conversation_id", sa.String(length=32), nullable=False),
        sa.Column("visitor_id", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("blind_index", sa.String(length=64), nullable=False),
        sa.Column("created_at", confide.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_chat_identifiers_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_chat_identifiers_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["visitor_id"],
            ["visitors.id"],
            name=op.f("fk_chat_identifiers_visitor_id_visitors"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_identifiers")),
    )
    with op.batch_alter_table("chat_identifiers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_chat_identifiers_conversation_id"), ["conversation_id"], unique=False
        )
        batch_op.create_index(
            "ix_chat_identifiers_org_index", ["organisation_id", "blind_index"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_chat_identifiers_visitor_id"), ["visitor_id"], unique=False
        )

    with op.batch_alter_table("privacy_requests", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("visitor_ids", sa.JSON(), server_default="[]", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("privacy_requests", schema=None) as batch_op:
        batch_op.drop_column("visitor_ids")

    with op.batch_alter_table("chat_identifiers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_chat_identifiers_visitor_id"))
        batch_op.drop_index("ix_chat_identifiers_org_index")
        batch_op.drop_index(batch_op.f("ix_chat_identifiers_conversation_id"))

    op.drop_table("chat_identifiers")
