"""The data map: every column says what it holds and how long it may be kept.

Export, erasure and retention are driven by ``Column.info`` (see ``confide.storage.base``), so an
untagged column is a column those features silently miss. Personal data (anything about a data
subject, and every name, contact detail or piece of content) must use :class:`PersonalText`, so that
per-person encryption at rest is one change in that type; conversely ``PersonalText`` only holds
personal data. A justified plain column (say, a lookup key that must stay comparable) declares
``info={"plaintext_reason": "..."}`` on its ``field()``: visible in review, and honoured here.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Column, String

from confide.storage.base import CATEGORY_PREFIXES, RETENTION_CLASSES, PersonalText, field
from confide.storage.models import Base

#: A category segment that marks personal data wherever it appears (``user.name``,
#: ``account.contact.email``, ``user.content.message`` …).
PERSONAL_SEGMENTS = frozenset({"name", "contact", "content"})


def columns() -> Iterator[tuple[str, Column[object]]]:
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            yield f"{table.name}.{column.name}", column


def is_personal(category: str) -> bool:
    return category.startswith("user.") or bool(PERSONAL_SEGMENTS & set(category.split(".")))


def uses_personal_text(column: Column[object]) -> bool:
    return isinstance(column.type, PersonalText)


def report(title: str, rows: list[str]) -> str:
    return f"{title}:\n  " + "\n  ".join(rows)


def test_the_model_has_tables() -> None:
    names = set(Base.metadata.tables)
    assert {"organisations", "sites", "users", "visitors", "conversations", "messages"} <= names


def test_every_column_is_tagged_with_a_valid_category_and_retention_class() -> None:
    problems = []
    for name, column in columns():
        category = column.info.get("data_category")
        retention = column.info.get("retention_class")
        if category is None or retention is None:
            problems.append(
                f"{name}: untagged (declare it with field(category=..., retention=...))"
            )
            continue
        if not (isinstance(category, str) and category.startswith(CATEGORY_PREFIXES)):
            problems.append(f"{name}: unknown data category {category!r}")
        elif category.endswith(".") or "" in category.split("."):
            problems.append(f"{name}: malformed data category {category!r}")
        if retention not in RETENTION_CLASSES:
            problems.append(f"{name}: unknown retention class {retention!r}")
    assert not problems, report("columns with a missing or invalid data map entry", problems)


def test_personal_data_uses_personal_text() -> None:
    problems = [
        f"{name}: category {column.info['data_category']!r} but type {column.type!r}"
        for name, column in columns()
        if is_personal(column.info.get("data_category", ""))
        and not uses_personal_text(column)
        and not column.info.get("plaintext_reason")
    ]
    assert not problems, report(
        "personal data stored without PersonalText (use PersonalText, re-categorise, or give a"
        " plaintext_reason)",
        problems,
    )


def test_personal_text_holds_only_personal_data() -> None:
    problems = [
        f"{name}: PersonalText but category {column.info.get('data_category')!r}"
        for name, column in columns()
        if uses_personal_text(column) and not is_personal(column.info.get("data_category", ""))
    ]
    assert not problems, report("PersonalText columns not categorised as personal data", problems)


# --- field() itself ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "category",
    ["", "user", "personal.name", "User.name", "accounts.name", "systems.id", " user.name", "name"],
)
def test_field_rejects_unknown_categories(category: str) -> None:
    with pytest.raises(ValueError, match="data category"):
        field(String(10), category=category, retention="account")


@pytest.mark.parametrize("retention", ["", "forever", "Account", "contract ", "session-ish"])
def test_field_rejects_unknown_retention_classes(retention: str) -> None:
    with pytest.raises(ValueError, match="retention class"):
        field(String(10), category="system.id", retention=retention)


@pytest.mark.parametrize("retention", sorted(RETENTION_CLASSES))
@pytest.mark.parametrize("prefix", CATEGORY_PREFIXES)
def test_field_accepts_every_valid_combination(prefix: str, retention: str) -> None:
    column = field(String(10), category=prefix + "example", retention=retention)
    assert column.column.info == {"data_category": prefix + "example", "retention_class": retention}


def test_field_keeps_other_info_and_lets_the_tags_win() -> None:
    column = field(
        PersonalText,
        category="user.name",
        retention="contract",
        info={"plaintext_reason": "x", "data_category": "system.id"},
    )
    assert column.column.info == {
        "plaintext_reason": "x",
        "data_category": "user.name",
        "retention_class": "contract",
    }


def test_field_requires_both_tags() -> None:
    with pytest.raises(TypeError):
        field(String(10), category="system.id")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        field(String(10), retention="account")  # type: ignore[call-arg]
