"""privacy requests

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 00:15:07.782922
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import confide.storage.base

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "legal_holds",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("target_kind", sa.String(length=12), nullable=False),
        sa.Column("target_id", sa.String(length=32), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("review_at", confide.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", confide.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("released_at", confide.storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_legal_holds_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_legal_holds")),
    )
    with op.batch_alter_table("legal_holds", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_legal_holds_organisation_id"), ["organisation_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_legal_holds_target_id"), ["target_id"], unique=False)

    op.create_table(
        "privacy_requests",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("regime", sa.String(length=8), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("channel", sa.String(length=12), nullable=False),
        sa.Column("email_index", sa.String(length=64), nullable=True),
        sa.Column("phone_index", sa.String(length=64), nullable=True),
        sa.Column("contact", confide.storage.base.PersonalText(), nullable=True),
        sa.Column("details", confide.storage.base.PersonalText(), nullable=True),
        sa.Column("agent_designation", confide.storage.base.PersonalText(), nullable=True),
        sa.Column("power_of_attorney", sa.Boolean(), nullable=False),
        sa.Column("person_ids", sa.JSON(), nullable=False),
        sa.Column("received_at", confide.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "acknowledged_at", confide.storage.base.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column(
            "identity_verified_at", confide.storage.base.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("due_at", confide.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "extended_due_at", confide.storage.base.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("extension_reason", sa.Text(), nullable=True),
        sa.Column("reviewed_by", sa.String(length=32), nullable=True),
        sa.Column("reviewed_at", confide.storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("completed_at", confide.storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("partial", sa.Boolean(), nullable=False),
        sa.Column("export_token_hash", sa.String(length=64), nullable=True),
        sa.Column(
            "export_expires_at", confide.storage.base.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("reminded_50_at", confide.storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("reminded_80_at", confide.storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_privacy_requests_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_requests")),
    )
    with op.batch_alter_table("privacy_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_privacy_requests_email_index"), ["email_index"], unique=False
        )
        batch_op.create_index(
            "ix_privacy_requests_org_state", ["organisation_id", "state"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_privacy_requests_organisation_id"), ["organisation_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_privacy_requests_phone_index"), ["phone_index"], unique=False
        )

    op.create_table(
        "erasure_tasks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("request_id", sa.String(length=32), nullable=False),
        sa.Column("store", sa.String(length=40), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("finished_at", confide.storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_erasure_tasks_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["privacy_requests.id"],
            name=op.f("fk_erasure_tasks_request_id_privacy_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasure_tasks")),
    )
    with op.batch_alter_table("erasure_tasks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_erasure_tasks_organisation_id"), ["organisation_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_erasure_tasks_request_id"), ["request_id"], unique=False
        )

    op.create_table(
        "privacy_request_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("request_id", sa.String(length=32), nullable=False),
        sa.Column("at", confide.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("from_state", sa.String(length=20), nullable=True),
        sa.Column("to_state", sa.String(length=20), nullable=False),
        sa.Column("actor_id", sa.String(length=32), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_privacy_request_events_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["privacy_requests.id"],
            name=op.f("fk_privacy_request_events_request_id_privacy_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_request_events")),
    )
    with op.batch_alter_table("privacy_request_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_privacy_request_events_organisation_id"),
            ["organisation_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_privacy_request_events_request_id"), ["request_id"], unique=False
        )

    op.create_table(
        "verification_codes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("request_id", sa.String(length=32), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("expires_at", confide.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("used_at", confide.storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_verification_codes_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["privacy_requests.id"],
            name=op.f("fk_verification_codes_request_id_privacy_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verification_codes")),
    )
    with op.batch_alter_table("verification_codes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_verification_codes_organisation_id"), ["organisation_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_verification_codes_request_id"), ["request_id"], unique=False
        )

    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "privacy_auto_approve", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("subject_ref", sa.String(length=32), nullable=True))

    with op.batch_alter_table("persons", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("restricted", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column(
                "marketing_objection", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
        batch_op.add_column(
            sa.Column(
                "automated_objection", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("subject_ref")
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.drop_column("privacy_auto_approve")
    with op.batch_alter_table("persons", schema=None) as batch_op:
        batch_op.drop_column("automated_objection")
        batch_op.drop_column("marketing_objection")
        batch_op.drop_column("restricted")

    with op.batch_alter_table("verification_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_verification_codes_request_id"))
        batch_op.drop_index(batch_op.f("ix_verification_codes_organisation_id"))

    op.drop_table("verification_codes")
    with op.batch_alter_table("privacy_request_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_privacy_request_events_request_id"))
        batch_op.drop_index(batch_op.f("ix_privacy_request_events_organisation_id"))

    op.drop_table("privacy_request_events")
    with op.batch_alter_table("erasure_tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_erasure_tasks_request_id"))
        batch_op.drop_index(batch_op.f("ix_erasure_tasks_organisation_id"))

    op.drop_table("erasure_tasks")
    with op.batch_alter_table("privacy_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_privacy_requests_phone_index"))
        batch_op.drop_index(batch_op.f("ix_privacy_requests_organisation_id"))
        batch_op.drop_index("ix_privacy_requests_org_state")
        batch_op.drop_index(batch_op.f("ix_privacy_requests_email_index"))

    op.drop_table("privacy_requests")
    with op.batch_alter_table("legal_holds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_legal_holds_target_id"))
        batch_op.drop_index(batch_op.f("ix_legal_holds_organisation_id"))

    op.drop_table("legal_holds")
