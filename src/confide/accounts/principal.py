"""Who is acting: the signed-in user with the scope their role grants."""

from __future__ import annotations

from dataclasses import dataclass

from confide.accounts.models import Role
from confide.storage.scope import Scope


@dataclass(frozen=True)
class Principal:
    user_id: str
    name: str
    email: str
    role: Role
    organisation_id: str | None
    scope: Scope
    #: Sites whose chats this user answers (their queue); all sites in scope for admin and client.
    site_ids: frozenset[str]
