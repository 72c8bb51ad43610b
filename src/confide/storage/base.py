"""Declarative base, the data map, and the column types every model uses.

The data map: every column declares a **data category** (fideslang style: ``user.contact.email``,
``user.content.message``, ``system.operations``) and a **retention class** in ``Column.info``.
``field()`` is the only way models declare columns, and ``tests/storage/test_data_map.py`` fails on
an untagged one. Export, erasure and retention (later issues) are driven by this map.

Personal data (message text, names, contact details) uses :class:`PersonalText`, so that per-person
encryption at rest is one change in that type rather than a hunt through the models.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from sqlalchemy import DateTime, MetaData, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, mapped_column
from sqlalchemy.types import TypeDecorator

from confide.crypto.vault import ERASED, PREFIX, KeyDestroyed, open_any

#: Retention classes (what decides when a row may or must go).
RETENTION_CLASSES = frozenset(
    {
        "account",  # lives as long as the account or organisation
        "contract",  # client personal data: >= 3 months, <= contract end + 3 months (policy 5.3)
        "session",  # short-lived credentials and sessions
        "operational",  # system metadata kept with its parent row
        "behaviour",  # raw usage/behavioural events: shorter, own retention (default 13 months)
    }
)

#: Category prefixes. ``user.*`` is personal data of a data subject (a visitor);
#: ``account.*`` is client-account data (policy 2.5); ``system.*`` holds no personal data.
CATEGORY_PREFIXES = ("user.", "account.", "system.")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def field(*args: Any, category: str, retention: str, **kwargs: Any) -> Any:
    """A ``mapped_column`` that carries its data category and retention class."""
    if not category.startswith(CATEGORY_PREFIXES):
        raise ValueError(f"unknown data category {category!r}")
    if retention not in RETENTION_CLASSES:
        raise ValueError(f"unknown retention class {retention!r}")
    info = dict(kwargs.pop("info", {}))
    info.update(data_category=category, retention_class=retention)
    return mapped_column(*args, info=info, **kwargs)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class PersonalText(TypeDecorator[str]):
    """Text that is personal data about a data subject: stored only encrypted.

    Binding refuses plaintext (fail closed): services seal values with the subject's key
    (``Database.vault.seal``) before they are stored, so a forgotten call site is an error in the
    tests, never a clear-text email in the database file. Reading decrypts transparently with the
    process's key stores; a value whose key was destroyed (erased subject, restored backup) reads
    as ``[erased]``.
    """

    impl = Text
    cache_ok = True
    personal = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None or value.startswith(PREFIX):
            return value
        raise ValueError("personal data must be sealed (Database.vault.seal) before it is stored")

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None or not value.startswith(PREFIX):
            return value
        try:
            return open_any(value)
        except (KeyDestroyed, InvalidTag, ValueError):
            return ERASED
