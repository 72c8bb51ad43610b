"""Every table holding a data subject's personal data has a store in the privacy registry (R50,
R51): a new table tagged ``user.*`` without an exporter and an eraser fails here, so it cannot
be forgotten by access and deletion requests."""

from __future__ import annotations

from sqlalchemy import Column, MetaData, String, Table

import confide.storage.models  # noqa: F401  (every model, so the metadata is complete)
from confide.privacy.registry import Store, stores
from confide.storage.base import Base

#: Tables with ``user.*`` columns that are deliberately in no store, and why.
EXEMPT = {
    "privacy_requests": (
        "the request record itself (R54): kept 24 months after the subject is erased, with the "
        "email and phone only as keyed blind indexes; its sealed contact, details and agent "
        "designation are cleared when the request ends"
    ),
}


def personal_tables(metadata: MetaData) -> dict[str, list[str]]:
    """{table: [its columns whose data category is ``user.*``]}."""
    out: dict[str, list[str]] = {}
    for table in metadata.tables.values():
        columns = [
            c.name
            for c in table.columns
            if str(c.info.get("data_category", "")).startswith("user.")
        ]
        if columns:
            out[table.name] = columns
    return out


def uncovered(metadata: MetaData, registered: list[Store]) -> dict[str, list[str]]:
    covered = {t for store in registered for t in store.tables}
    return {
        name: columns
        for name, columns in personal_tables(metadata).items()
        if name not in covered and name not in EXEMPT
    }


def test_every_personal_data_table_has_a_store() -> None:
    missing = uncovered(Base.metadata, stores())
    assert not missing, (
        "tables with user.* columns but no privacy store (register one in the domain's "
        f"privacy_store.py, or add a reasoned exemption): {missing}"
    )


def test_the_check_fails_for_a_new_table_without_a_store() -> None:
    metadata = MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(metadata)
    Table(
        "test_drive_bookings",
        metadata,
        Column("id", String(32), primary_key=True, info={"data_category": "system.id"}),
        Column("driving_licence", String(32), info={"data_category": "user.government_id"}),
    )
    assert uncovered(metadata, stores()) == {"test_drive_bookings": ["driving_licence"]}


def test_stores_and_exemptions_name_real_tables() -> None:
    tables = set(Base.metadata.tables)
    registered = stores()
    names = [s.name for s in registered]
    assert len(names) == len(set(names))
    for store in registered:
        assert set(store.tables) <= tables, (store.name, set(store.tables) - tables)
        assert store.method in ("delete", "crypto-shred"), store.name
        assert store.held_by <= {"person", "lead", "organisation"}, store.name
    personal = personal_tables(Base.metadata)
    for name in EXEMPT:
        assert name in personal, f"{name} is exempt but holds no user.* column any more"
        assert not any(name in s.tables for s in registered), f"{name} is exempt and in a store"
