"""Sites: a client's website with the widget installed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, synonym

from confide.storage.base import Base, UTCDateTime, field
from confide.storage.scope import SiteScoped


class Site(SiteScoped, Base):
    __tablename__ = "sites"

    id: Mapped[str] = field(String(32), primary_key=True, category="system.id", retention="account")
    organisation_id: Mapped[str] = field(
        ForeignKey("organisations.id", ondelete="CASCADE"),
        index=True,
        category="system.id",
        retention="account",
    )
    #: The public key in the embed snippet.
    key: Mapped[str] = field(String(40), unique=True, category="system.id", retention="account")
    name: Mapped[str] = field(String(200), category="system.configuration", retention="account")
    greeting: Mapped[str] = field(Text, category="system.configuration", retention="account")
    #: Origins (scheme://host[:port]) allowed to embed the widget and open widget sockets.
    allowed_origins: Mapped[list[str]] = field(
        JSON, category="system.configuration", retention="account"
    )
    #: "opt-in" (UK/EU default: nothing tracked before consent) or "notice" (tracking with opt-out).
    consent_mode: Mapped[str] = field(
        String(10), default="opt-in", category="system.configuration", retention="account"
    )
    #: Automatic chat invitations: [{"path": "/used-cars/*", "seconds": 30, "text": "…"}].
    invite_rules: Mapped[list[dict[str, object]]] = field(
        JSON, default=list, category="system.configuration", retention="account"
    )
    created_at: Mapped[datetime] = field(
        UTCDateTime, category="system.operations", retention="account"
    )

    #: A site is its own site: scoping by site filters on its id.
    site_id = synonym("id")
