"""The registry of stores that hold personal data, driving export and erasure (R50, R51).

Each domain that stores personal data registers a :class:`Store`: the tables it covers, how to
export a subject's rows and how to erase them. ``tests/privacy/test_registry.py`` fails when a
table with a ``user.*`` column is covered by no store, so a new table cannot be forgotten.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from confide.storage.base import Base


@dataclass
class Subject:
    """Everything that identifies one data subject within one organisation."""

    organisation_id: str
    person_ids: list[str] = field(default_factory=list)
    visitor_ids: list[str] = field(default_factory=list)
    conversation_ids: list[str] = field(default_factory=list)
    lead_ids: list[str] = field(default_factory=list)
    visit_ids: list[str] = field(default_factory=list)
    site_visitor_ids: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.person_ids or self.visitor_ids)


Exporter = Callable[[AsyncSession, Subject], Awaitable[list[dict[str, Any]]]]
Eraser = Callable[[AsyncSession, Subject], Awaitable[int]]


@dataclass(frozen=True)
class Store:
    name: str
    tables: tuple[str, ...]
    export: Exporter
    erase: Eraser
    #: What an erasure does here: "delete" rows, or "crypto-shred" keys.
    method: str = "delete"
    #: Kinds of legal hold that stop this store's erasure (person, lead, organisation).
    held_by: frozenset[str] = frozenset({"person", "organisation"})
    #: Erasure order: lower first (children before parents).
    order: int = 50


_STORES: dict[str, Store] = {}
#: Domain modules that register stores; imported on first use (no import cycles).
_PROVIDERS = (
    "confide.chat.privacy_store",
    "confide.leads.privacy_store",
    "confide.tracking.privacy_store",
    "confide.delivery.privacy_store",
)


def register(store: Store) -> Store:
    _STORES[store.name] = store
    return store


def stores() -> list[Store]:
    for module in _PROVIDERS:
        importlib.import_module(module)
    return sorted(_STORES.values(), key=lambda s: (s.order, s.name))


def as_dict(row: Base) -> dict[str, Any]:
    """Every column of a row, JSON-ready (datetimes as ISO 8601)."""
    out: dict[str, Any] = {}
    for column in row.__table__.columns:
        value = getattr(row, column.key)
        if isinstance(value, datetime | date):
            value = value.isoformat()
        out[column.key] = value
    return out


async def rows_of(
    s: AsyncSession, model: type[Base], condition: ColumnElement[bool]
) -> list[dict[str, Any]]:
    return [as_dict(r) for r in await s.scalars(select(model).where(condition))]
