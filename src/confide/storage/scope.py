"""Tenant scope, enforced in the data layer.

Every ORM query on a tenant-owned table runs inside a session that carries the caller's
:class:`Scope`; the ``do_orm_execute`` hook below adds the scope's criteria to every such query
(including joined and aliased entities) and **refuses** the query when the session has no scope.
A service cannot forget the ``WHERE organisation_id = …``: it is not the service that writes it.

Scopes:

- ``system`` — the server itself (the message writer, migrations, CLI administration). No filter.
- ``admin`` — the processor's staff. No filter.
- ``organisation`` — a client organisation's staff: rows of that organisation only.
- ``sites`` — an operator: rows of the assigned sites (and of the organisations owning them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Table, event, or_
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria
from sqlalchemy.sql import visitors

ScopeKind = Literal["system", "admin", "organisation", "sites"]


class MissingScope(RuntimeError):
    """A tenant-owned table was queried by a session without a scope."""


@dataclass(frozen=True)
class Scope:
    kind: ScopeKind
    organisation_ids: frozenset[str] = field(default_factory=frozenset)
    site_ids: frozenset[str] = field(default_factory=frozenset)

    @property
    def unrestricted(self) -> bool:
        return self.kind in ("system", "admin")

    @classmethod
    def system(cls) -> Scope:
        return cls("system")

    @classmethod
    def admin(cls) -> Scope:
        return cls("admin")

    @classmethod
    def organisation(cls, organisation_id: str) -> Scope:
        return cls("organisation", frozenset({organisation_id}))

    @classmethod
    def sites(cls, site_ids: frozenset[str], organisation_ids: frozenset[str]) -> Scope:
        return cls("sites", organisation_ids, site_ids)

    def allows(self, organisation_id: str, site_id: str | None = None) -> bool:
        """The same rule as the query criteria, for objects already in memory."""
        if self.unrestricted:
            return True
        if organisation_id not in self.organisation_ids:
            return False
        return self.kind != "sites" or site_id is None or site_id in self.site_ids


class OrgScoped:
    """Mixin marker: the table has ``organisation_id`` and belongs to one client organisation."""

    organisation_id: Any


class SiteScoped(OrgScoped):
    """Mixin marker: the table also has ``site_id``; operators see only their sites' rows."""

    site_id: Any


def _tenant_classes() -> list[type[Any]]:
    """Every mapped subclass of :class:`OrgScoped` (the tables that belong to one tenant)."""
    found: list[type[Any]] = []
    seen: set[type[Any]] = set()
    stack: list[type[Any]] = [OrgScoped]
    while stack:
        for sub in stack.pop().__subclasses__():
            if sub not in seen:
                seen.add(sub)
                stack.append(sub)
                if "__table__" in sub.__dict__:
                    found.append(sub)
    return found


def _tenant_tables_in(statement: Any) -> bool:
    """Whether a tenant table appears anywhere in the statement: joins, subqueries, CTEs,
    unions, EXISTS, or plain Core ``Table`` objects that no ORM mapper would report."""
    tenant = {cls.__table__ for cls in _tenant_classes()}
    for element in visitors.iterate(statement):
        if isinstance(element, Table) and element._deannotate() in tenant:
            return True
    return False


def _touches_tenant_tables(state: ORMExecuteState) -> bool:
    return any(issubclass(m.class_, OrgScoped) for m in state.all_mappers) or _tenant_tables_in(
        state.statement
    )


@event.listens_for(Session, "do_orm_execute")
def _enforce_scope(state: ORMExecuteState) -> None:
    if state.is_column_load or state.is_relationship_load:
        return  # the parent row was already scoped
    if not (state.is_select or state.is_update or state.is_delete):
        return
    scope: Scope | None = state.session.info.get("scope")
    if scope is None:
        if _touches_tenant_tables(state):
            raise MissingScope("query on a tenant table without a scope")
        return
    if scope.unrestricted:
        return
    if not state.is_orm_statement and _tenant_tables_in(state.statement):
        # Loader criteria only reach ORM entities: a Core query could read every tenant.
        raise MissingScope("Core query on a tenant table in a restricted scope")
    orgs = tuple(scope.organisation_ids)
    sites = tuple(scope.site_ids)
    options = []
    # Criteria per concrete class (not the mixin): the lambda is evaluated against the class.
    # Every tenant class, not only the selected ones, so subqueries and joins are covered.
    for cls in _tenant_classes():
        if getattr(cls, "__shared_when_no_organisation__", False):
            criterion = lambda c: or_(c.organisation_id.in_(orgs), c.organisation_id.is_(None))  # noqa: E731
        else:
            criterion = lambda c: c.organisation_id.in_(orgs)  # noqa: E731
        options.append(with_loader_criteria(cls, criterion, include_aliases=True))
        if scope.kind == "sites" and issubclass(cls, SiteScoped):
            options.append(
                with_loader_criteria(cls, lambda c: c.site_id.in_(sites), include_aliases=True)
            )
    state.statement = state.statement.options(*options)
