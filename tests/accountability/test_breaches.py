"""The breach register and notices (art. 33(2), (3), (5); R38) on SQLite and PostgreSQL: each
affected organisation's client admins get an email with every art. 33(3) field (real SMTP) and an
inbox message; unaffected organisations get nothing; the time to notify is recorded."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from confide.audit.models import AuditEntry
from confide.clock import FrozenClock
from confide.errors import Forbidden, InvalidInput, NotFound
from confide.storage.scope import Scope
from tests.accountability.helpers import World, principal, run

FACTS = {
    "nature": "A misconfigured log export copied lead emails to a backup bucket readable by staff.",
    "categories": ["user.contact.email", "user.name"],
    "subjects_approx": 240,
    "records_approx": 310,
    "consequences": "Low: the copies were internal; phishing is possible if they leaked further.",
    "measures": "Bucket locked and the copies destroyed; access logs reviewed; export fixed.",
    "contact_name": "Dana Protection",
    "contact_email": "dpo@confide-example.com",
}


def test_notifying_a_breach_emails_each_affected_admin_with_every_article_33_field(
    database_url: str, clock: FrozenClock
) -> None:
    async def body(w: World) -> None:
        from confide.accounts.models import Role

        org_c = (await w.ctx.accounts.create_organisation("Gamma Garage")).id
        client_c = await principal(w.ctx, Role.CLIENT, org_c, "Gil Gamma")
        discovered = w.clock.now() - timedelta(hours=5, minutes=30)
        breach = await w.acct.breaches.record(
            w.admin, **FACTS, discovered_at=discovered, organisation_ids=[w.org_a, org_c]
        )
        assert all(o["notified_at"] is None for o in breach["organisations"])
        assert w.sink.messages == []  # recording tells nobody yet
        # Not visible to clients until they are told.
        with pytest.raises(NotFound):
            await w.acct.breaches.get(w.client_a, breach["id"])
        assert await w.acct.breaches.listing(w.client_a) == []
        with pytest.raises(NotFound):  # tenant first: B is not affected, so it is not found
            await w.acct.breaches.notify(w.client_b, breach["id"])

        w.clock.advance(timedelta(minutes=10))
        done = await w.acct.breaches.notify(
            w.admin, breach["id"], portal_url="https://chat.example.test/portal/inbox"
        )

        # One email per affected client admin (two in A, one in C), none to B or our staff.
        to = sorted(m["To"] for m in w.sink.messages)
        assert to == sorted([w.client_a.email, w.client_a2.email, client_c.email])
        mail = w.mail_to(w.client_a.email)[0]
        text = mail.get_content()
        assert breach["id"] in mail["Subject"]
        for label, value in (
            ("(a) Nature of the breach", FACTS["nature"]),
            ("Categories of personal data concerned", "user.contact.email"),
            ("Approximate number of data subjects concerned", "240"),
            ("Approximate number of personal data records concerned", "310"),
            ("(b) Contact point", "Dana Protection <dpo@confide-example.com>"),
            ("(c) Likely consequences", FACTS["consequences"]),
            ("(d) Measures taken or proposed", FACTS["measures"]),
            ("Discovered", f"{discovered:%d %B %Y %H:%M} UTC"),
        ):
            line = next((ln for ln in text.splitlines() if label in ln), "")
            assert value in line, f"{label!r} missing or wrong in:\n{text}"
        assert "Gamma Garage" not in text  # another client is never named
        assert "Gamma Garage" in w.mail_to(client_c.email)[0].get_content()

        # notified_at and the time to notify, per organisation, against the 24 h target.
        orgs = {o["organisation_id"]: o for o in done["organisations"]}
        for org in (w.org_a, org_c):
            assert orgs[org]["notified_at"] == w.clock.now().isoformat()
            assert orgs[org]["time_to_notify_seconds"] == (5 * 60 + 40) * 60
            assert orgs[org]["time_to_notify"] == "5 h 40 min"
            assert orgs[org]["within_target"] is True
        assert orgs[w.org_a]["emails_sent"] == 2 and done["all_notified"] is True

        # The inbox of each affected organisation has it; B's does not.
        [notice] = [i for i in await w.acct.inbox.messages(w.client_a) if i.ref == breach["id"]]
        assert notice.kind == "breach" and FACTS["measures"] in notice.body
        assert not [i for i in await w.acct.inbox.messages(w.client_b) if i.ref == breach["id"]]

        # Now A's staff see it (with only their own organisation), B's still do not.
        seen = await w.acct.breaches.get(w.client_a2, breach["id"])
        assert [o["organisation_id"] for o in seen["organisations"]] == [w.org_a]
        assert [b["id"] for b in await w.acct.breaches.listing(w.client_a)] == [breach["id"]]
        with pytest.raises(NotFound):
            await w.acct.breaches.get(w.client_b, breach["id"])
        with pytest.raises(Forbidden):  # told, but notices are sent by our staff
            await w.acct.breaches.notify(w.client_a, breach["id"])

        # Notifying again tells nobody twice.
        before = len(w.sink.messages)
        again = await w.acct.breaches.notify(w.admin, breach["id"])
        assert len(w.sink.messages) == before
        assert again["organisations"] == done["organisations"]

        async with w.ctx.db.session(Scope.system(), read_only=True) as s:
            actions = list(
                await s.scalars(
                    select(AuditEntry.action).where(AuditEntry.subject_ref == breach["id"])
                )
            )
        assert sorted(actions) == ["breach.notified", "breach.notified", "breach.recorded"]

    run(database_url, clock, body)


def test_a_late_notice_is_shown_as_late(database_url: str, clock: FrozenClock) -> None:
    async def body(w: World) -> None:
        breach = await w.acct.breaches.record(
            w.admin,
            **FACTS,
            discovered_at=w.clock.now() - timedelta(days=1, hours=2, minutes=5),
            organisation_ids=[w.org_b],
        )
        done = await w.acct.breaches.notify(w.admin, breach["id"])
        [org] = done["organisations"]
        assert org["within_target"] is False and org["time_to_notify"] == "1 day 2 h 05 min"

    run(database_url, clock, body)


def test_a_breach_record_needs_its_facts(database_url: str, clock: FrozenClock) -> None:
    async def body(w: World) -> None:
        now = w.clock.now()
        good = {**FACTS, "discovered_at": now, "organisation_ids": [w.org_a]}
        with pytest.raises(Forbidden):
            await w.acct.breaches.record(w.client_a, **good)
        for change, message in (
            ({"nature": " "}, "nature"),
            ({"categories": ["contact"]}, "not a data category"),
            ({"categories": []}, "at least one data category"),
            ({"contact_email": "not-an-email"}, "email"),
            ({"discovered_at": now + timedelta(hours=1)}, "future"),
            ({"organisation_ids": []}, "at least one affected organisation"),
        ):
            with pytest.raises(InvalidInput, match=message):
                await w.acct.breaches.record(w.admin, **{**good, **change})
        with pytest.raises(NotFound):
            await w.acct.breaches.record(w.admin, **{**good, "organisation_ids": ["x" * 22]})

    run(database_url, clock, body)


def test_a_notice_whose_emails_all_failed_is_emailed_again(
    database_url: str, clock: FrozenClock
) -> None:
    """The portal notice stands when the mail relay is down; the next ``notify`` sends the
    emails it could not send (and posts no second portal notice)."""

    async def body(w: World) -> None:
        from confide.testing import free_port

        breach = await w.acct.breaches.record(
            w.admin, **FACTS, discovered_at=w.clock.now(), organisation_ids=[w.org_b]
        )
        postman = w.acct.breaches.postman
        working = postman.settings
        postman.settings = working.model_copy(update={"smtp_port": free_port()})  # relay down
        first = await w.acct.breaches.notify(w.admin, breach["id"])
        (org,) = first["organisations"]
        assert org["notified_at"] is not None and org["emails_sent"] == 0
        assert w.mail_to(w.client_b.email) == []

        postman.settings = working
        again = await w.acct.breaches.notify(w.admin, breach["id"])
        (org,) = again["organisations"]
        assert org["emails_sent"] == 1 and len(w.mail_to(w.client_b.email)) == 1
        assert org["notified_at"] == first["organisations"][0]["notified_at"]  # told back then
        notices = [i for i in await w.acct.inbox.messages(w.client_b) if i.ref == breach["id"]]
        assert len(notices) == 1
        await w.acct.breaches.notify(w.admin, breach["id"])
        assert len(w.mail_to(w.client_b.email)) == 1  # sent: not again

    run(database_url, clock, body)
