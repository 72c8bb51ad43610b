"""leads consent and delivery

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 23:46:22.348836
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import confide.storage.base

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "destinations",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("site_id", sa.String(length=32), nullable=True),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("secret", sa.String(length=64), nullable=True),
        sa.Column("region", sa.String(length=8), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", confide.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_destinations_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_destinations_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_destinations")),
    )
    with op.batch_alter_table("destinations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_destinations_organisation_id"), ["organisation_id"], unique=False
        )

    op.create_table(
        "persons",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("visitor_id", sa.String(length=32), nullable=True),
        sa.Column("name", confide.storage.base.PersonalText(), nullable=True),
        sa.Column("email", confide.storage.base.PersonalText(), nullable=True),
        sa.Column("phone", confide.storage.base.PersonalText(), nullable=True),
        sa.Column("address", confide.storage.base.PersonalText(), nullable=True),
        sa.Column("city", confide.storage.base.PersonalText(), nullable=True),
        sa.Column("postcode", confide.storage.base.PersonalText(), nullable=True),
        sa.Column("country", confide.storage.base.PersonalText(), nullable=True),
        sa.Column("email_index", sa.String(length=64), nullable=True),
        sa.Column("phone_index", sa.String(length=64), nullable=True),
        sa.Column("sale_share_opt_out", sa.Boolean(), nullable=False),
        sa.Column("minor", sa.Boolean(), nullable=False),
        sa.Column("created_at", confide.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", confide.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_persons_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_persons_site_id_sites"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["visitor_id"],
            ["visitors.id"],
            name=op.f("fk_persons_visitor_id_visitors"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_persons")),
    )
    with op.batch_alter_table("persons", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_persons_organisation_id"), ["organisation_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_persons_site_id"), ["site_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_persons_visitor_id"), ["visitor_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_persons_email_index"), ["email_index"], unique=False)
        batch_op.create_index(batch_op.f("ix_persons_phone_index"), ["phone_index"], unique=False)

    op.create_table(
        "person_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("person_id", sa.String(length=32), nullable=False),
        sa.Column("lead_id", sa.String(length=32), nullable=True),
        sa.Column("conversation_id", sa.String(length=32), nullable=True),
        sa.Column("field_name", sa.String(length=32), nullable=False),
        sa.Column("value", confide.storage.base.PersonalText(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.String(length=32), nullable=True),
        sa.Column("at", confide.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_person_changes_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["persons.id"],
            name=op.f("fk_person_changes_person_id_persons"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_person_changes_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_person_changes")),
    )
    with op.batch_alter_table("person_changes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_person_changes_organisation_id"), ["organisation_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_person_changes_person_id"), ["person_id"], unique=False
        )

    op.create_table(
        "consent_records",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("conversation_id", sa.String(length=32), nullable=True),
        sa.Column("request_id", sa.String(length=32), nullable=True),
        sa.Column("visitor_id", sa.String(length=32), nullable=True),
        sa.Column("person_id", sa.String(length=32), nullable=True),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=12), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("text_sha256", sa.String(length=64), nullable=False),
        sa.Column("answer", sa.String(length=12), nullable=False),
        sa.Column("policy_version", sa.String(length=40), nullable=False, server_default="1"),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("message_seq", sa.Integer(), nullable=True),
        sa.Column("ip_truncated", sa.String(length=48), nullable=True),
        sa.Column("user_agent", sa.String(length=80), nullable=True),
        sa.Column("answered_at", confide.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_consent_records_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_consent_records_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_consent_records_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_records")),
    )
    with op.batch_alter_table("consent_records", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_consent_records_conversation_id"), ["conversation_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_consent_records_organisation_id"), ["organisation_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_consent_records_person_id"), ["person_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_consent_records_visitor_id"), ["visitor_id"], unique=False
        )

    op.create_table(
        "consent_requests",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("conversation_id", sa.String(length=32), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("policy_url", sa.Text(), nullable=True),
        sa.Column("policy_version", sa.String(length=40), nullable=False, server_default="1"),
        sa.Column("requested_by", sa.String(length=32), nullable=True),
        sa.Column("requested_at", confide.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_consent_requests_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_consent_requests_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_consent_requests_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_requests")),
    )
    with op.batch_alter_table("consent_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_consent_requests_conversation_id"), ["conversation_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_consent_requests_organisation_id"), ["organisation_id"], unique=False
        )

    op.create_table(
        "leads",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("person_id", sa.String(length=32), nullable=False),
        sa.Column("conversation_id", sa.String(length=32), nullable=True),
        sa.Column("visit_id", sa.String(length=32), nullable=True),
        sa.Column("purpose", sa.String(length=20), nullable=False),
        sa.Column("vehicle", confide.storage.base.PersonalText(), nullable=True),
        sa.Column("trade_in", confide.storage.base.PersonalText(), nullable=True),
        sa.Column("comments", confide.storage.base.PersonalText(), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("delivery_state", sa.String(length=20), nullable=False),
        sa.Column("consent_id", sa.String(length=32), nullable=True),
        sa.Column("sale_share_opt_out", sa.Boolean(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=32), nullable=True),
        sa.Column("created_at", confide.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", confide.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", confide.storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_leads_conversation_id_conversations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_leads_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["persons.id"],
            name=op.f("fk_leads_person_id_persons"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_leads_site_id_sites"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_leads")),
    )
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_leads_conversation_id"), ["conversation_id"], unique=False
        )
        batch_op.create_index(
            "ix_leads_org_created", ["organisation_id", "created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_leads_person_id"), ["person_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_leads_site_id"), ["site_id"], unique=False)

    op.create_table(
        "onward_transfers",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("lead_id", sa.String(length=32), nullable=False),
        sa.Column("recipient_name", sa.Text(), nullable=False),
        sa.Column("recipient_contact", sa.Text(), nullable=False),
        sa.Column("reason", confide.storage.base.PersonalText(), nullable=False),
        sa.Column("requested_by", sa.String(length=32), nullable=True),
        sa.Column("at", confide.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["lead_id"],
            ["leads.id"],
            name=op.f("fk_onward_transfers_lead_id_leads"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_onward_transfers_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_onward_transfers_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_onward_transfers")),
    )
    with op.batch_alter_table("onward_transfers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_onward_transfers_lead_id"), ["lead_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_onward_transfers_organisation_id"), ["organisation_id"], unique=False
        )

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("event", sa.String(length=24), nullable=False),
        sa.Column("lead_id", sa.String(length=32), nullable=True),
        sa.Column("destination_id", sa.String(length=32), nullable=False),
        sa.Column("idempotency_key", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column(
            "next_attempt_at", confide.storage.base.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("lease_until", confide.storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.Column("created_at", confide.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", confide.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("done_at", confide.storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["destination_id"],
            ["destinations.id"],
            name=op.f("fk_outbox_destination_id_destinations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_outbox_lead_id_leads"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_outbox_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_outbox_idempotency_key")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_lead_id"), ["lead_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_outbox_organisation_id"), ["organisation_id"], unique=False
        )
        batch_op.create_index("ix_outbox_state_due", ["state", "next_attempt_at"], unique=False)

    op.create_table(
        "delivery_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=10), nullable=False),
        sa.Column("detail", sa.String(length=300), nullable=True),
        sa.Column("at", confide.storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["outbox.id"],
            name=op.f("fk_delivery_attempts_job_id_outbox"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_delivery_attempts_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_attempts")),
    )
    with op.batch_alter_table("delivery_attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_delivery_attempts_job_id"), ["job_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_delivery_attempts_organisation_id"), ["organisation_id"], unique=False
        )

    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("person_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("rating", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("rating_comment", confide.storage.base.PersonalText(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("rated_at", confide.storage.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(batch_op.f("ix_conversations_person_id"), ["person_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_conversations_person_id_persons"),
            "persons",
            ["person_id"],
            ["id"],
            ondelete="SET NULL",
        )

    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("country", sa.String(length=2), nullable=False, server_default="GB")
        )
        batch_op.add_column(sa.Column("privacy_policy_url", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("policy_version", sa.String(length=40), nullable=False, server_default="1")
        )
        batch_op.add_column(sa.Column("consent_text", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("min_age", sa.Integer(), nullable=False, server_default="16"))

    with op.batch_alter_table("visitors", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("gpc", sa.Boolean(), nullable=False, server_default=sa.false())
        )

    with op.batch_alter_table("visits", schema=None) as batch_op:
        batch_op.add_column(sa.Column("person_id", sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f("ix_visits_person_id"), ["person_id"], unique=False)
        batch_op.create_index("ix_visits_site_started", ["site_id", "started_at"], unique=False)

    _protect_consent_evidence()


#: Consent evidence is append-only (R25): the database refuses an UPDATE, whatever the code does.
_IMMUTABLE = "consent evidence is immutable: record a new answer instead"


def _protect_consent_evidence() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "CREATE TRIGGER consent_records_immutable BEFORE UPDATE ON consent_records "
            f"BEGIN SELECT RAISE(ABORT, '{_IMMUTABLE}'); END"
        )
        return
    op.execute(
        "CREATE FUNCTION consent_records_immutable() RETURNS trigger AS $$ "
        f"BEGIN RAISE EXCEPTION '{_IMMUTABLE}'; END $$ LANGUAGE plpgsql"
    )
    op.execute(
        "CREATE TRIGGER consent_records_immutable BEFORE UPDATE ON consent_records "
        "FOR EACH ROW EXECUTE FUNCTION consent_records_immutable()"
    )


def downgrade() -> None:
    with op.batch_alter_table("visitors", schema=None) as batch_op:
        batch_op.drop_column("gpc")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS consent_records_immutable")
    else:
        op.execute("DROP TRIGGER IF EXISTS consent_records_immutable ON consent_records")
        op.execute("DROP FUNCTION IF EXISTS consent_records_immutable()")
    with op.batch_alter_table("visits", schema=None) as batch_op:
        batch_op.drop_index("ix_visits_site_started")
        batch_op.drop_index(batch_op.f("ix_visits_person_id"))
        batch_op.drop_column("person_id")

    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.drop_column("min_age")
        batch_op.drop_column("consent_text")
        batch_op.drop_column("policy_version")
        batch_op.drop_column("privacy_policy_url")
        batch_op.drop_column("country")

    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_conversations_person_id_persons"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_conversations_person_id"))
        batch_op.drop_column("rated_at")
        batch_op.drop_column("rating_comment")
        batch_op.drop_column("rating")
        batch_op.drop_column("person_id")

    with op.batch_alter_table("delivery_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delivery_attempts_organisation_id"))
        batch_op.drop_index(batch_op.f("ix_delivery_attempts_job_id"))

    op.drop_table("delivery_attempts")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_state_due")
        batch_op.drop_index(batch_op.f("ix_outbox_organisation_id"))
        batch_op.drop_index(batch_op.f("ix_outbox_lead_id"))

    op.drop_table("outbox")
    with op.batch_alter_table("onward_transfers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_onward_transfers_organisation_id"))
        batch_op.drop_index(batch_op.f("ix_onward_transfers_lead_id"))

    op.drop_table("onward_transfers")
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_leads_site_id"))
        batch_op.drop_index(batch_op.f("ix_leads_person_id"))
        batch_op.drop_index("ix_leads_org_created")
        batch_op.drop_index(batch_op.f("ix_leads_conversation_id"))

    op.drop_table("leads")
    with op.batch_alter_table("consent_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_requests_organisation_id"))
        batch_op.drop_index(batch_op.f("ix_consent_requests_conversation_id"))

    op.drop_table("consent_requests")
    with op.batch_alter_table("consent_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_records_visitor_id"))
        batch_op.drop_index(batch_op.f("ix_consent_records_person_id"))
        batch_op.drop_index(batch_op.f("ix_consent_records_organisation_id"))
        batch_op.drop_index(batch_op.f("ix_consent_records_conversation_id"))

    op.drop_table("consent_records")
    with op.batch_alter_table("person_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_person_changes_person_id"))
        batch_op.drop_index(batch_op.f("ix_person_changes_organisation_id"))

    op.drop_table("person_changes")
    with op.batch_alter_table("persons", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_persons_visitor_id"))
        batch_op.drop_index(batch_op.f("ix_persons_site_id"))
        batch_op.drop_index(batch_op.f("ix_persons_organisation_id"))

    op.drop_table("persons")
    with op.batch_alter_table("destinations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_destinations_organisation_id"))

    op.drop_table("destinations")
