"""Tenant scope in the data layer (``confide.storage.scope``), on SQLite and PostgreSQL.

A session without a scope must refuse any query that touches a tenant table (``MissingScope``),
and a scoped session must only ever return, count, update or delete its scope's rows — whatever
the shape of the query: joins, aliases, subqueries in WHERE or FROM, CTEs, unions, EXISTS,
aggregates, ``Session.get``.

The cases are tables: a new query shape is one line. Each case runs under every scope in
``SCOPES`` and reports every scope where it returned something else than expected.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Executable, delete, exists, func, literal, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from confide.storage.engine import Database
from confide.storage.models import (
    ConsoleSession,
    Conversation,
    Message,
    Organisation,
    Site,
    SiteAssignment,
    User,
    Visitor,
)
from confide.storage.scope import MissingScope, Scope

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
SITES = {"sA1": "orgA", "sA2": "orgA", "sB1": "orgB"}
MESSAGES_PER_CONVERSATION = 2


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def with_db(url: str, work: Callable[[Database], Awaitable[Any]]) -> Any:
    db = Database(url)
    try:
        return await work(db)
    finally:
        await db.dispose()


@pytest.fixture(scope="module")
def url(database_url: str) -> str:
    """The migrated module database (tests/conftest.py), seeded through system-scope sessions:
    organisations A and B; sites A1, A2 (A) and B1 (B); per site a visitor, a conversation and
    two messages; a client user per organisation."""

    async def seed(db: Database) -> None:
        async with db.session(Scope.system()) as s:
            for org in ("orgA", "orgB"):
                s.add(Organisation(id=org, name=f"Org {org[-1]}", created_at=NOW))
            await s.flush()
            for site, org in SITES.items():
                s.add(
                    Site(
                        id=site,
                        organisation_id=org,
                        key=f"key_{site}",
                        name=f"Site {site}",
                        greeting="Hi",
                        allowed_origins=[f"https://{site.lower()}.example"],
                        created_at=NOW,
                    )
                )
                s.add(
                    User(
                        id=f"u_{site}",
                        organisation_id=org,
                        email=f"{site.lower()}@example.com",
                        name=f"Staff {site}",
                        role="client",
                        password_hash="x",
                        failed_logins=0,
                        created_at=NOW,
                    )
                )
            await s.flush()
            for site, org in SITES.items():
                s.add(SiteAssignment(user_id=f"u_{site}", site_id=site))
                s.add(
                    Visitor(
                        id=f"v_{site}",
                        organisation_id=org,
                        site_id=site,
                        token_hash=f"hash_{site}",
                        label=f"Visitor {site}",
                        created_at=NOW,
                        last_seen_at=NOW,
                    )
                )
            await s.flush()
            for site, org in SITES.items():
                s.add(
                    Conversation(
                        id=f"c_{site}",
                        organisation_id=org,
                        site_id=site,
                        visitor_id=f"v_{site}",
                        source="chat",
                        state="waiting",
                        operator_id=None,
                        visitor_name=db.vault.seal(f"v_{site}", org, f"Name {site}"),
                        last_seq=MESSAGES_PER_CONVERSATION,
                        visitor_seen_seq=0,
                        agent_seen_seq=0,
                        created_at=NOW,
                        updated_at=NOW,
                    )
                )
            await s.flush()
            for site, org in SITES.items():
                for seq in range(1, MESSAGES_PER_CONVERSATION + 1):
                    s.add(
                        Message(
                            organisation_id=org,
                            site_id=site,
                            conversation_id=f"c_{site}",
                            seq=seq,
                            client_id=f"cid-{site}-{seq:04d}",
                            author_role="visitor",
                            author_id=None,
                            text=db.vault.seal(f"v_{site}", org, f"hello from {site} #{seq}"),
                            created_at=NOW,
                        )
                    )

    run(with_db(database_url, seed))
    return database_url


# --------------------------------------------------------------------------------------------
# Scopes and what each may see
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Visible:
    sites: frozenset[str]

    @property
    def orgs(self) -> frozenset[str]:
        return frozenset(SITES[s] for s in self.sites)

    @property
    def conversations(self) -> frozenset[str]:
        return frozenset(f"c_{s}" for s in self.sites)


ALL = Visible(frozenset(SITES))

# name → (scope, the sites whose rows it sees). An operator's scope lists the organisations of
# its sites: it sees those organisations, but only its sites' rows.
SCOPES: dict[str, tuple[Scope, Visible]] = {
    "system": (Scope.system(), ALL),
    "admin": (Scope.admin(), ALL),
    "org_a": (Scope.organisation("orgA"), Visible(frozenset({"sA1", "sA2"}))),
    "org_b": (Scope.organisation("orgB"), Visible(frozenset({"sB1"}))),
    "org_unknown": (Scope.organisation("orgZ"), Visible(frozenset())),
    "sites_a1": (Scope.sites(frozenset({"sA1"}), frozenset({"orgA"})), Visible(frozenset({"sA1"}))),
    "sites_a1_b1": (
        Scope.sites(frozenset({"sA1", "sB1"}), frozenset({"orgA", "orgB"})),
        Visible(frozenset({"sA1", "sB1"})),
    ),
}


def orgs_of(v: Visible) -> set[str]:
    """Organisations a scope sees: an operator sees the organisations of its sites."""
    return set(v.orgs)


# --------------------------------------------------------------------------------------------
# Read cases: (name, statement, expected result for what the scope sees)
# A statement's rows are reduced to a set: of the one column, or of tuples; a Message to its site.
# --------------------------------------------------------------------------------------------

Case = tuple[str, Callable[[], Executable], Callable[[Visible], set[Any]]]

#: Shapes built from Core constructs around ORM columns: a restricted scope may refuse them
#: (``MissingScope``) instead of filtering; it may never answer with other tenants' rows.
MAY_REFUSE = {"exists-own", "exists-foreign"}


def _alias_self_join() -> Executable:
    other = aliased(Conversation)
    return select(other.site_id).join(
        Conversation, Conversation.organisation_id == other.organisation_id
    )


def _alias_cross_join() -> Executable:
    """Pairs of conversations: the aliased side must be filtered as much as the plain one."""
    other = aliased(Conversation, name="other")
    return select(other.site_id).join_from(Conversation, other, other.id != Conversation.id)


def _from_subquery() -> Executable:
    sub = select(Conversation.site_id, Conversation.id).subquery()
    return select(sub.c.site_id)


def _from_aliased_subquery() -> Executable:
    sub = aliased(Conversation, select(Conversation).subquery())
    return select(sub.site_id)


def _cte() -> Executable:
    cte = select(Message.site_id).cte("visible_messages")
    return select(cte.c.site_id)


def _union() -> Executable:
    return union_all(select(Message.site_id), select(Conversation.site_id))


def _exists_foreign(site: str) -> Callable[[], Executable]:
    return lambda: select(exists().where(Message.site_id == site))


def _scalar_subquery_per_org() -> Executable:
    count = (
        select(func.count())
        .select_from(Message)
        .where(Message.organisation_id == Organisation.id)
        .scalar_subquery()
    )
    return select(Organisation.id, count)


def _count_pairs(v: Visible) -> set[tuple[str, int]]:
    return {(o, MESSAGES_PER_CONVERSATION * sum(SITES[s] == o for s in v.sites)) for o in v.orgs}


READS: list[Case] = [
    # plain entities
    ("organisations", lambda: select(Organisation.id), orgs_of),
    ("sites", lambda: select(Site.id), lambda v: set(v.sites)),
    (
        "site-by-key",
        lambda: select(Site.id).where(Site.key.in_([f"key_{s}" for s in SITES])),
        lambda v: set(v.sites),
    ),
    ("visitors", lambda: select(Visitor.site_id), lambda v: set(v.sites)),
    ("conversations", lambda: select(Conversation.id), lambda v: set(v.conversations)),
    (
        "conversation-by-foreign-id",
        lambda: select(Conversation.id).where(Conversation.id == "c_sB1"),
        lambda v: {"c_sB1"} & set(v.conversations),
    ),
    ("messages", lambda: select(Message.site_id), lambda v: set(v.sites)),
    ("message-entities", lambda: select(Message), lambda v: set(v.sites)),
    # joins
    (
        "join-message-conversation-site",
        lambda: (
            select(Site.id)
            .join(Conversation, Conversation.site_id == Site.id)
            .join(Message, Message.conversation_id == Conversation.id)
        ),
        lambda v: set(v.sites),
    ),
    (
        "join-from-non-tenant-table",
        lambda: (
            select(Site.id)
            .select_from(User)
            .join(SiteAssignment, SiteAssignment.user_id == User.id)
            .join(Site, Site.id == SiteAssignment.site_id)
        ),
        lambda v: set(v.sites),
    ),
    (
        "outer-join-to-tenant",
        lambda: (
            select(Conversation.id)
            .select_from(User)
            .outerjoin(Conversation, Conversation.visitor_id == func.replace(User.id, "u_", "v_"))
            .where(Conversation.id.is_not(None))
        ),
        lambda v: set(v.conversations),
    ),
    (
        "organisation-join-sites",
        lambda: select(Organisation.id).join(Site, Site.organisation_id == Organisation.id),
        orgs_of,
    ),
    # aliases
    ("aliased-entity", lambda: select(aliased(Message).site_id), lambda v: set(v.sites)),
    ("aliased-self-join", _alias_self_join, lambda v: set(v.sites)),
    (
        "aliased-cross-join",
        _alias_cross_join,
        lambda v: set(v.sites) if len(v.sites) > 1 else set(),
    ),
    # subqueries
    (
        "subquery-in-where",
        lambda: select(Conversation.site_id).where(
            Conversation.id.in_(select(Message.conversation_id).where(Message.seq == 1))
        ),
        lambda v: set(v.sites),
    ),
    (
        "tenant-subquery-under-non-tenant-select",
        lambda: select(User.id).where(User.organisation_id.in_(select(Site.organisation_id))),
        lambda v: {f"u_{s}" for s in SITES if SITES[s] in v.orgs},
    ),
    ("correlated-scalar-subquery", _scalar_subquery_per_org, _count_pairs),
    ("exists-own", _exists_foreign("sA1"), lambda v: {"sA1" in v.sites}),
    ("exists-foreign", _exists_foreign("sB1"), lambda v: {"sB1" in v.sites}),
    ("select-from-subquery", _from_subquery, lambda v: set(v.sites)),
    ("select-from-aliased-subquery", _from_aliased_subquery, lambda v: set(v.sites)),
    ("cte", _cte, lambda v: set(v.sites)),
    ("union", _union, lambda v: set(v.sites)),
    # aggregates
    ("count-column", lambda: select(func.count(Conversation.id)), lambda v: {len(v.sites)}),
    (
        "count-select-from",
        lambda: select(func.count()).select_from(Conversation),
        lambda v: {len(v.sites)},
    ),
    (
        "count-messages-where",
        lambda: select(func.count()).select_from(Message).where(Message.seq >= 1),
        lambda v: {MESSAGES_PER_CONVERSATION * len(v.sites)},
    ),
    (
        "group-by",
        lambda: select(Message.organisation_id).group_by(Message.organisation_id),
        orgs_of,
    ),
    (
        "max-text",
        lambda: select(func.max(Message.client_id)),
        lambda v: {max((f"cid-{s}-0002" for s in v.sites), default=None)},
    ),
]


async def observe(db: Database, scope: Scope, stmt: Executable) -> set[Any]:
    async with db.session(scope) as s:
        rows = (await s.execute(stmt)).all()
    out = set()
    for row in rows:
        value = row[0] if len(row) == 1 else tuple(row)
        out.add(value.site_id if isinstance(value, Message) else value)
    return out


@pytest.mark.parametrize(("name", "build", "expect"), READS, ids=[c[0] for c in READS])
def test_scoped_reads_return_only_the_scopes_rows(
    url: str, name: str, build: Callable[[], Executable], expect: Callable[[Visible], set[Any]]
) -> None:
    async def work(db: Database) -> list[str]:
        problems = []
        for scope_name, (scope, visible) in SCOPES.items():
            try:
                got = await observe(db, scope, build())
            except MissingScope:
                if name in MAY_REFUSE and not scope.unrestricted:
                    continue
                raise
            want = expect(visible)
            if got != want:
                problems.append(
                    f"{scope_name}: got {sorted(got, key=str)}, want {sorted(want, key=str)}"
                )
        return problems

    problems = run(with_db(url, work))
    assert not problems, f"{name} crosses the tenant boundary:\n  " + "\n  ".join(problems)


def test_core_table_queries_are_filtered_or_refused(url: str) -> None:
    """A query on the Table object (not the mapped class) bypasses ORM loader criteria; in a
    restricted scope it must not silently return other tenants' rows."""

    async def work(db: Database) -> list[str]:
        problems = []
        table = Conversation.__table__
        for scope_name, (scope, visible) in SCOPES.items():
            try:
                got = await observe(db, scope, select(table.c.id))
            except MissingScope:
                continue
            if got != set(visible.conversations):
                problems.append(f"{scope_name}: got {sorted(got)}")
        return problems

    problems = run(with_db(url, work))
    assert not problems, "Core-table query crosses the tenant boundary:\n  " + "\n  ".join(problems)


def test_session_get_respects_the_scope(url: str) -> None:
    async def work(db: Database) -> list[str]:
        problems = []
        for scope_name, (scope, visible) in SCOPES.items():
            async with db.session(scope) as s:
                for site in SITES:
                    for cls, key in (
                        (Conversation, f"c_{site}"),
                        (Site, site),
                        (Visitor, f"v_{site}"),
                    ):
                        found = await s.get(cls, key) is not None
                        if found != (site in visible.sites):
                            problems.append(
                                f"{scope_name}: get({cls.__name__}, {key}) found={found}"
                            )
                    org = SITES[site]
                    if (await s.get(Organisation, org) is not None) != (org in visible.orgs):
                        problems.append(f"{scope_name}: get(Organisation, {org})")
        return problems

    problems = run(with_db(url, work))
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------------------------
# Writes in a scope
# --------------------------------------------------------------------------------------------


async def _state(db: Database) -> dict[str, int]:
    async with db.session(Scope.system()) as s:
        rows = await s.execute(select(Conversation.site_id, Conversation.agent_seen_seq))
        return {str(row[0]): int(row[1]) for row in rows.all()}


@pytest.mark.parametrize("scope_name", ["org_a", "org_b", "sites_a1", "sites_a1_b1", "org_unknown"])
def test_scoped_update_touches_only_the_scopes_rows(url: str, scope_name: str) -> None:
    scope, visible = SCOPES[scope_name]

    async def work(db: Database) -> tuple[int, dict[str, int]]:
        try:
            async with db.session(scope) as s:
                result = await s.execute(
                    update(Conversation)
                    .values(agent_seen_seq=1)
                    .execution_options(synchronize_session=False)
                )
            return result.rowcount, await _state(db)  # type: ignore[attr-defined]
        finally:
            async with db.session(Scope.system()) as s:
                await s.execute(update(Conversation).values(agent_seen_seq=0))

    rowcount, after = run(with_db(url, work))
    assert rowcount == len(visible.sites)
    assert {site for site, seen in after.items() if seen == 1} == set(visible.sites)


@pytest.mark.parametrize("scope_name", ["org_a", "sites_a1", "org_unknown"])
def test_scoped_delete_touches_only_the_scopes_rows(url: str, scope_name: str) -> None:
    scope, visible = SCOPES[scope_name]

    async def work(db: Database) -> tuple[int, set[str]]:
        async with db.session(Scope.system()) as s:
            for site, org in SITES.items():
                s.add(
                    Message(
                        organisation_id=org,
                        site_id=site,
                        conversation_id=f"c_{site}",
                        seq=99,
                        client_id=f"doomed-{site}",
                        author_role="system",
                        author_id=None,
                        text=db.vault.seal(f"v_{site}", org, "to delete"),
                        created_at=NOW,
                    )
                )
        try:
            async with db.session(scope) as s:
                result = await s.execute(
                    delete(Message)
                    .where(Message.seq == 99)
                    .execution_options(synchronize_session=False)
                )
            async with db.session(Scope.system()) as s:
                left = set(
                    (await s.scalars(select(Message.site_id).where(Message.seq == 99))).all()
                )
            return result.rowcount, left  # type: ignore[attr-defined]
        finally:
            async with db.session(Scope.system()) as s:
                await s.execute(delete(Message).where(Message.seq == 99))

    deleted, left = run(with_db(url, work))
    assert deleted == len(visible.sites)
    assert left == set(SITES) - visible.sites


# --------------------------------------------------------------------------------------------
# No scope: refused
# --------------------------------------------------------------------------------------------

UNSCOPED: list[tuple[str, Callable[[], Executable]]] = [
    ("select-entity", lambda: select(Conversation)),
    ("select-column", lambda: select(Message.text)),
    ("organisation", lambda: select(Organisation.name)),
    ("site", lambda: select(Site.key)),
    ("join", lambda: select(Site.id).join(Organisation, Organisation.id == Site.organisation_id)),
    (
        "join-from-non-tenant",
        lambda: (
            select(User.id)
            .join(SiteAssignment, SiteAssignment.user_id == User.id)
            .join(Site, Site.id == SiteAssignment.site_id)
        ),
    ),
    ("aliased", lambda: select(aliased(Visitor).label)),
    (
        "tenant-subquery-under-non-tenant-select",
        lambda: select(User.id).where(User.organisation_id.in_(select(Site.organisation_id))),
    ),
    ("count-column", lambda: select(func.count(Message.id))),
    ("count-select-from", lambda: select(func.count()).select_from(Message)),
    ("select-from-subquery", _from_subquery),
    ("cte", _cte),
    ("union", _union),
    ("exists", _exists_foreign("sB1")),
    ("core-table", lambda: select(Conversation.__table__.c.id)),
    ("update", lambda: update(Conversation).values(agent_seen_seq=5)),
    ("delete", lambda: delete(Message).where(Message.seq == 1)),
]


async def _unscoped(db: Database, stmt: Executable, how: str) -> Any:
    if how == "raw-session":  # a session made without Database.session (the scope is forgotten)
        async with AsyncSession(db.engine) as s:
            return await s.execute(stmt)
    async with db.session(None) as s:  # type: ignore[arg-type]
        return await s.execute(stmt)


@pytest.mark.parametrize("how", ["raw-session", "scope-none"])
@pytest.mark.parametrize(("name", "build"), UNSCOPED, ids=[c[0] for c in UNSCOPED])
def test_unscoped_query_on_a_tenant_table_is_refused(
    url: str, name: str, build: Callable[[], Executable], how: str
) -> None:
    async def work(db: Database) -> dict[str, int]:
        try:
            with pytest.raises(MissingScope):
                await _unscoped(db, build(), how)
            return await _state(db)
        finally:  # should the guard fail, leave the seed as it was for the other tests
            async with db.session(Scope.system()) as s:
                await s.execute(update(Conversation).values(agent_seen_seq=0))

    after = run(with_db(url, work))
    assert set(after.values()) == {0}, "a refused update changed rows"


def test_unscoped_session_get_is_refused(url: str) -> None:
    async def work(db: Database) -> None:
        async with AsyncSession(db.engine) as s:
            with pytest.raises(MissingScope):
                await s.get(Conversation, "c_sA1")

    run(with_db(url, work))


@pytest.mark.parametrize(
    ("name", "build"),
    [
        ("console-sessions", lambda: select(ConsoleSession.token_hash)),
        ("assignments", lambda: select(SiteAssignment.site_id)),
        ("literal", lambda: select(literal(1))),
    ],
)
def test_unscoped_queries_on_non_tenant_tables_are_allowed(
    url: str, name: str, build: Callable[[], Executable]
) -> None:
    """Sign-in and sessions run before anyone has a scope: the guard must not be over-broad."""

    async def work(db: Database) -> None:
        async with AsyncSession(db.engine) as s:
            await s.execute(build())

    run(with_db(url, work))


def test_users_are_scoped_but_staff_names_stay_visible(url: str) -> None:
    """A client sees its own organisation's users and our staff (who answer its chats), never
    another client's users."""

    async def work(db: Database) -> None:
        async with db.session(Scope.system()) as s:
            s.add(
                User(
                    id="u_staff",
                    organisation_id=None,
                    email="staff@processor.example",
                    name="Staff Member",
                    role="operator",
                    password_hash="x",
                    failed_logins=0,
                    created_at=NOW,
                )
            )
        async with db.session(Scope.organisation("orgA")) as s:
            ids = set((await s.scalars(select(User.id))).all())
        assert "u_staff" in ids
        assert {i for i in ids if i != "u_staff"} == {
            f"u_{site}" for site, org in SITES.items() if org == "orgA"
        }

    run(with_db(url, work))
