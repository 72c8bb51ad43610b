"""Reading the data map for people: categories, purposes and retention classes, labelled.

The record of processing is generated from ``Column.info`` (``storage/base.py: field()``), so a
new column shows up in it without anyone editing a document. What the map cannot say by itself
is *why* a table exists: :data:`TABLE_PURPOSES` says it, and
``tests/accountability/test_ropa.py`` fails when a table holding a visitor's data has no purpose.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

from confide.errors import InvalidInput
from confide.storage.base import CATEGORY_PREFIXES
from confide.storage.models import Base

#: Purposes of processing carried out for a client (art. 30(2)(b)): key → (label, description).
PURPOSES: dict[str, tuple[str, str]] = {
    "chat_support": (
        "Live chat support",
        "Answering visitors' questions in the chat on the client's websites and keeping the "
        "transcript for the client.",
    ),
    "lead_handoff": (
        "Lead hand-off",
        "Passing a visitor's details and enquiry to the client, only with the visitor's consent "
        "recorded in the chat (policy 3.1), and recording onward transfers they ask for (3.3).",
    ),
    "analytics": (
        "Website analytics",
        "Usage and behavioural data about visits to the client's websites, reported to the "
        "client in aggregate (policy 2.2).",
    ),
    "privacy_requests": (
        "Data-subject requests",
        "Verifying and answering people's requests to access, correct or delete their data "
        "on the client's behalf (policy 7).",
    ),
}

#: Every table holding a visitor's (``user.*``) data, and the purpose it serves.
TABLE_PURPOSES: dict[str, str] = {
    "visitors": "chat_support",
    "conversations": "chat_support",
    "messages": "chat_support",
    "chat_identifiers": "privacy_requests",
    "persons": "lead_handoff",
    "person_changes": "lead_handoff",
    "leads": "lead_handoff",
    "consent_records": "lead_handoff",
    "onward_transfers": "lead_handoff",
    "site_visitors": "analytics",
    "visits": "analytics",
    "page_views": "analytics",
    "privacy_requests": "privacy_requests",
}

#: Labels for category groups (the first two segments of a ``user.*`` category).
GROUP_LABELS: dict[str, str] = {
    "user.name": "Names",
    "user.contact": "Contact details (email, phone number, postal address)",
    "user.content": "What people write (chat messages, enquiries, reviews, requests)",
    "user.device": "Device and browser identifiers (random ids, browser family, truncated IP)",
    "user.location": "Approximate location (country, region, city)",
    "user.pseudonym": "Pseudonymous labels (\u201cVisitor 4F2A\u201d)",
    "user.preference": "Preferences (vehicles of interest)",
}

#: What each retention class means, in the words of the policy (section 5).
RETENTION_TEXT: dict[str, str] = {
    "contract": (
        "Kept at least 3 months after collection and at most until the end of the client's "
        "contract plus 3 months (policy 5.3), or the shorter period the client chose."
    ),
    "behaviour": (
        "Raw usage and behavioural events: kept for the client's behavioural retention period, "
        "then only daily aggregates remain."
    ),
    "session": "Only while a request is being handled; cleared when it ends.",
    "account": "As long as the client's account or our record of it.",
    "operational": "System metadata, kept with the row it describes.",
}

_CATEGORY = re.compile(r"^(user|account|system)(\.[a-z][a-z0-9_]*)+$")


def group_of(category: str) -> str:
    return ".".join(category.split(".")[:2])


def label(category: str) -> str:
    return GROUP_LABELS.get(group_of(category), category)


def clean_categories(raw: list[str], *, at_least_one: bool = True) -> list[str]:
    """Data-map categories as typed by our staff (``user.contact``), checked and de-duplicated."""
    out: list[str] = []
    for item in raw:
        category = item.strip().lower()
        if not category:
            continue
        if not category.startswith(CATEGORY_PREFIXES) or not _CATEGORY.match(category):
            raise InvalidInput(
                f"{item!r} is not a data category: use the data map's names, such as "
                "user.contact, user.content.message or system.operations."
            )
        if category not in out:
            out.append(category)
    if at_least_one and not out:
        raise InvalidInput("Name at least one data category (for example user.contact).")
    return out


@dataclass
class CategoryGroup:
    group: str
    label: str
    categories: set[str] = field(default_factory=set)
    fields: list[str] = field(default_factory=list)
    retention_classes: set[str] = field(default_factory=set)
    purposes: set[str] = field(default_factory=set)


def personal_data_map() -> list[CategoryGroup]:
    """The ``user.*`` columns of every model, grouped by category (the RoPA's categories)."""
    groups: dict[str, CategoryGroup] = {}
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            category = str(column.info.get("data_category", ""))
            if not category.startswith("user."):
                continue
            key = group_of(category)
            g = groups.setdefault(key, CategoryGroup(key, label(category)))
            g.categories.add(category)
            g.fields.append(f"{table.name}.{column.name}")
            g.retention_classes.add(str(column.info["retention_class"]))
            if table.name in TABLE_PURPOSES:
                g.purposes.add(TABLE_PURPOSES[table.name])
    return [groups[k] for k in sorted(groups)]


def tables_by_purpose() -> dict[str, list[str]]:
    """Purpose → tables holding a visitor's data for it (tables without one are not listed)."""
    personal_tables = {
        table.name
        for table in Base.metadata.sorted_tables
        if any(str(c.info.get("data_category", "")).startswith("user.") for c in table.columns)
    }
    out: dict[str, list[str]] = defaultdict(list)
    for name in sorted(personal_tables | set(TABLE_PURPOSES) & set(Base.metadata.tables)):
        if name in TABLE_PURPOSES:
            out[TABLE_PURPOSES[name]].append(name)
    return dict(out)


def unmapped_personal_tables() -> list[str]:
    """Tables with a visitor's data that no purpose names (the contract test wants none)."""
    return sorted(
        table.name
        for table in Base.metadata.sorted_tables
        if table.name not in TABLE_PURPOSES
        and any(str(c.info.get("data_category", "")).startswith("user.") for c in table.columns)
    )
