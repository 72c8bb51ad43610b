"""accountability: sub-processors, breaches, policy versions, inbox, newsletter, notices

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 00:27:10.780871
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import confide.storage.base

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "breaches",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("nature", sa.Text(), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("subjects_approx", sa.Integer(), nullable=False),
        sa.Column("records_approx", sa.Integer(), nullable=False),
        sa.Column("consequences", sa.Text(), nullable=False),
        sa.Column("measures", sa.Text(), nullable=False),
        sa.Column("contact_name", sa.String(length=200), nullable=False),
        sa.Column("contact_email", sa.String(length=320), nullable=False),
        sa.Column("discovered_at", confide.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", confide.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_breaches")),
    )
    op.create_table(
        "newsletter_subscriptions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("email", confide.storage.base.PersonalText(), nullable=False),
        sa.Column("email_index", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("confirm_hash", sa.String(length=64), nullable=True),
        sa.Column(
            "confirm_expires_at", confide.storage.base.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("unsubscribe_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", confide.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", confide.storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "unsubscribed_at", confide.storage.base.UTCDateTime(timezone=True), nullable=True
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_newsletter_subscriptions")),
        sa.UniqueConstraint("confirm_hash", name=op.f("uq_newsletter_subscriptions_confirm_hash")),
        sa.UniqueConstraint("email_index", name=op.f("uq_newsletter_subscriptions_email_index")),
        sa.UniqueConstraint(
            "unsubscribe_token", name=op.f("uq_newsletter_subscriptions_unsubscribe_token")
        ),
    )
    op.create_table(
        "notices",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("ref", sa.String(length=40), nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=True),
        sa.Column("recipient_kind", sa.String(length=12), nullable=False),
        sa.Column("recipient_id", sa.String(length=32), nullable=False),
        sa.Column("sent_at", confide.storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("error", sa.String(length=120), nullable=True),
        sa.Column("created_at", confide.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notices")),
    )
    with op.batch_alter_table("notices", schema=None) as batch_op:
        batch_op.create_index("ix_notices_kind_ref", ["kind", "ref"], unique=False)

    op.create_table(
        "policy_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("version", sa.String(length=40), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("text_sha256", sa.String(length=64), nullable=False),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("published_at", confide.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("published_by", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_versions")),
        sa.UniqueConstraint("version", name=op.f("uq_policy_versions_version")),
    )
    op.create_table(
        "subprocessors",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("region", sa.String(length=8), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("announced_at", confide.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("effective_at", confide.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("announced_by", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subprocessors")),
    )
    op.create_table(
        "breach_organisations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("breach_id", sa.String(length=32), nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("notified_at", confide.storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("emails_sent", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["breach_id"],
            ["breaches.id"],
            name=op.f("fk_breach_organisations_breach_id_breaches"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_breach_organisations_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_breach_organisations")),
        sa.UniqueConstraint(
            "breach_id",
            "organisation_id",
            name=op.f("uq_breach_organisations_breach_id_organisation_id"),
        ),
    )
    with op.batch_alter_table("breach_organisations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_breach_organisations_breach_id"), ["breach_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_breach_organisations_organisation_id"), ["organisation_id"], unique=False
        )

    op.create_table(
        "inbox_messages",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("ref", sa.String(length=40), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", confide.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_inbox_messages_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox_messages")),
    )
    with op.batch_alter_table("inbox_messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_inbox_messages_org_created", ["organisation_id", "created_at"], unique=False
        )

    op.create_table(
        "inbox_reads",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(length=32), nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("read_at", confide.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["inbox_messages.id"],
            name=op.f("fk_inbox_reads_message_id_inbox_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_inbox_reads_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_inbox_reads_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox_reads")),
        sa.UniqueConstraint(
            "message_id", "user_id", name=op.f("uq_inbox_reads_message_id_user_id")
        ),
    )
    with op.batch_alter_table("inbox_reads", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_inbox_reads_organisation_id"), ["organisation_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_inbox_reads_user_id"), ["user_id"], unique=False)

    op.create_table(
        "subprocessor_objections",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("subprocessor_id", sa.String(length=32), nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=True),
        sa.Column("reason", confide.storage.base.PersonalText(), nullable=False),
        sa.Column("created_at", confide.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_subprocessor_objections_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subprocessor_id"],
            ["subprocessors.id"],
            name=op.f("fk_subprocessor_objections_subprocessor_id_subprocessors"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_subprocessor_objections_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subprocessor_objections")),
        sa.UniqueConstraint(
            "subprocessor_id",
            "organisation_id",
            name=op.f("uq_subprocessor_objections_subprocessor_id_organisation_id"),
        ),
    )
    with op.batch_alter_table("subprocessor_objections", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_subprocessor_objections_organisation_id"),
            ["organisation_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_subprocessor_objections_subprocessor_id"),
            ["subprocessor_id"],
            unique=False,
        )

    _protect_policy_versions()


#: A published policy version is what it was (R57): the database refuses UPDATE and DELETE.
_IMMUTABLE = "policy versions are immutable: publish a new version instead"


def _protect_policy_versions() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER policy_versions_no_{event.lower()} BEFORE {event} ON "
                f"policy_versions BEGIN SELECT RAISE(ABORT, '{_IMMUTABLE}'); END"
            )
        return
    op.execute(
        "CREATE FUNCTION policy_versions_immutable() RETURNS trigger AS $$ "
        f"BEGIN RAISE EXCEPTION '{_IMMUTABLE}'; END $$ LANGUAGE plpgsql"
    )
    op.execute(
        "CREATE TRIGGER policy_versions_immutable BEFORE UPDATE OR DELETE ON policy_versions "
        "FOR EACH ROW EXECUTE FUNCTION policy_versions_immutable()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS policy_versions_no_update")
        op.execute("DROP TRIGGER IF EXISTS policy_versions_no_delete")
    else:
        op.execute("DROP TRIGGER IF EXISTS policy_versions_immutable ON policy_versions")
        op.execute("DROP FUNCTION IF EXISTS policy_versions_immutable()")
    with op.batch_alter_table("subprocessor_objections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subprocessor_objections_subprocessor_id"))
        batch_op.drop_index(batch_op.f("ix_subprocessor_objections_organisation_id"))

    op.drop_table("subprocessor_objections")
    with op.batch_alter_table("inbox_reads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inbox_reads_user_id"))
        batch_op.drop_index(batch_op.f("ix_inbox_reads_organisation_id"))

    op.drop_table("inbox_reads")
    with op.batch_alter_table("inbox_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_inbox_messages_org_created")

    op.drop_table("inbox_messages")
    with op.batch_alter_table("breach_organisations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_breach_organisations_organisation_id"))
        batch_op.drop_index(batch_op.f("ix_breach_organisations_breach_id"))

    op.drop_table("breach_organisations")
    op.drop_table("subprocessors")
    op.drop_table("policy_versions")
    with op.batch_alter_table("notices", schema=None) as batch_op:
        batch_op.drop_index("ix_notices_kind_ref")

    op.drop_table("notices")
    op.drop_table("newsletter_subscriptions")
    op.drop_table("breaches")
