"""The record of processing (art. 30(2), R08, R09): generated from the data map and the
configuration, per organisation and only for its own staff (and ours)."""

from __future__ import annotations

import json
from datetime import date

import pytest

from confide.accountability.datamap import (
    RETENTION_TEXT,
    TABLE_PURPOSES,
    unmapped_personal_tables,
)
from confide.accountability.ropa import SECURITY_MEASURES
from confide.accounts.models import Organisation, User
from confide.clock import FrozenClock
from confide.errors import Forbidden, NotFound
from confide.storage.base import RETENTION_CLASSES
from confide.storage.models import Base
from confide.storage.scope import Scope
from tests.accountability.helpers import World, run


def test_every_table_with_a_visitors_data_has_a_purpose() -> None:
    """A new table holding ``user.*`` data must say what it is for, or the record is wrong."""
    assert unmapped_personal_tables() == []
    assert set(TABLE_PURPOSES) <= set(Base.metadata.tables)


def test_every_retention_class_is_described() -> None:
    assert set(RETENTION_TEXT) == RETENTION_CLASSES


def test_the_record_lists_an_organisations_processing_and_only_its_own(
    database_url: str, clock: FrozenClock
) -> None:
    async def body(w: World) -> None:
        ctx = w.ctx
        async with ctx.db.session(Scope.system()) as s:
            org = await s.get(Organisation, w.org_a)
            assert org is not None
            org.contract_end, org.retention_months = date(2027, 1, 31), 12
        await ctx.delivery_admin.add_destination(
            Scope.system(),
            organisation_id=w.org_a,
            kind="email",
            target="leads@alpha.example",
            region="UK",
            name="Alpha sales inbox",
        )
        await ctx.delivery_admin.add_destination(
            Scope.system(),
            organisation_id=w.org_a,
            kind="webhook",
            target="https://crm.example.com/hook",
            region="US",
            name="US CRM",
        )
        await ctx.delivery_admin.add_destination(
            Scope.system(),
            organisation_id=w.org_b,
            kind="email",
            target="beta@beta.example",
            region="EU",
            name="Beta inbox",
        )
        sp = await w.acct.subprocessors.add(
            w.admin,
            name="Hetzner",
            region="EU",
            purpose="Hosts a database replica.",
            categories=["user.contact", "user.content"],
        )
        record = await w.acct.ropa.for_organisation(w.client_a, w.org_a)
        json.dumps(record)  # JSON as it is served

        assert record["controller"]["name"].startswith("Alpha Cars")
        assert record["processor"]["storage_region"] == "UK"
        groups = {c["group"]: c for c in record["categories"]}
        assert {"user.contact", "user.content", "user.name", "user.location"} <= set(groups)
        assert "persons.email" in groups["user.contact"]["fields"]
        assert "messages.text" in groups["user.content"]["fields"]
        assert "contract" in groups["user.contact"]["retention_classes"]
        assert "behaviour" in groups["user.location"]["retention_classes"]
        assert not any(c["group"].startswith(("account.", "system.")) for c in record["categories"])
        purposes = {p["purpose"]: p for p in record["purposes"]}
        assert set(purposes) == {"chat_support", "lead_handoff", "analytics", "privacy_requests"}
        assert "messages" in purposes["chat_support"]["tables"]
        assert "leads" in purposes["lead_handoff"]["tables"]

        # Its destinations with their regions, and only its own.
        dests = {d["name"]: d for d in record["destinations"]}
        assert set(dests) == {"Alpha sales inbox", "US CRM"}
        assert dests["Alpha sales inbox"] | {"id": ""} == {
            "id": "",
            "name": "Alpha sales inbox",
            "kind": "email",
            "region": "UK",
            "enabled": True,
            "personal_data": True,
        }
        assert dests["US CRM"]["region"] == "US" and dests["US CRM"]["personal_data"] is False
        assert "stripped of personal data" in record["destination_policy"]
        assert record["transfers"]["outside_eu_uk"] == [
            {"kind": "destination", "name": "US CRM", "region": "US"}
        ]
        assert record["transfers"]["personal_data_outside_eu_uk"] is False

        subs = {s["id"]: s for s in record["subprocessors"]}
        assert subs[sp.subprocessor["id"]]["region"] == "EU"
        assert subs[sp.subprocessor["id"]]["status"] == "announced"

        retention = record["retention"]
        assert retention["contract_end"] == "2027-01-31"
        assert retention["latest_deletion"] == "2027-04-30"  # contract end + 3 months
        assert retention["retention_months"] == 12
        assert retention["behaviour_retention_days"] == 395
        assert retention["minimum_months"] == 3
        assert set(retention["classes"]) == RETENTION_CLASSES
        assert record["security_measures"] == list(SECURITY_MEASURES)
        for measure in ("AES-256-GCM", "Blind indexes", "TLS", "Tenant scoping", "hash-chained"):
            assert any(measure in m for m in record["security_measures"]), measure
        assert any("Argon2" in m for m in record["security_measures"])

        # Another organisation's record is not found, like a missing one; operators get none.
        with pytest.raises(NotFound):
            await w.acct.ropa.for_organisation(w.client_a, w.org_b)
        with pytest.raises(NotFound):
            await w.acct.ropa.for_organisation(w.client_b, w.org_a)
        with pytest.raises(NotFound):
            await w.acct.ropa.for_organisation(w.admin, "x" * 22)
        with pytest.raises(NotFound):  # an operator of no site of A: A is not in scope
            await w.acct.ropa.for_organisation(w.operator, w.org_a)
        site = await ctx.sites.create_site(
            organisation_id=w.org_a, name="Alpha Leeds", origins=["https://alpha.example"]
        )
        await ctx.accounts.assign_site(w.operator.user_id, site.id)
        async with ctx.db.session(Scope.system()) as s:
            user = await s.get(User, w.operator.user_id)
            assert user is not None
            operator = await ctx.accounts.principal_for(user)
        with pytest.raises(Forbidden):  # A's chats are theirs; A's record of processing is not
            await w.acct.ropa.for_organisation(operator, w.org_a)
        theirs = await w.acct.ropa.for_organisation(w.client_b, w.org_b)
        assert [d["name"] for d in theirs["destinations"]] == ["Beta inbox"]
        # Our admins see every controller and every sub-processor.
        everything = await w.acct.ropa.all(w.admin)
        ids = {c["controller"]["id"] for c in everything["controllers"]}
        assert {w.org_a, w.org_b} <= ids
        assert sp.subprocessor["id"] in {s["id"] for s in everything["subprocessors"]}
        mine = await w.acct.ropa.all(w.client_b)
        assert [c["controller"]["id"] for c in mine["controllers"]] == [w.org_b]

    run(database_url, clock, body)
