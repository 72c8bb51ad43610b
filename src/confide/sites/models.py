"""Sites: a client's website with the widget installed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, false
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
    #: Usage-data categories the client switched off (R03): never stored for this site's
    #: visits (``tracking.service.CATEGORY_SWITCHES``). Changes are audited.
    disabled_categories: Mapped[list[str]] = field(
        JSON,
        default=list,
        server_default="[]",
        category="system.configuration",
        retention="account",
    )
    #: "cookie" (a random first-party cookie) or "cookieless" (a server-side key from a rotating
    #: salt: R21, ``sites/identity.py``). Changes are audited.
    tracking_identity: Mapped[str] = field(
        String(10),
        default="cookie",
        server_default="cookie",
        category="system.configuration",
        retention="account",
    )
    #: How often the cookieless salt changes: "daily" (default), "weekly" or "monthly".
    salt_rotation: Mapped[str] = field(
        String(8),
        default="daily",
        server_default="daily",
        category="system.configuration",
        retention="account",
    )
    #: UK statistics exception (PECR Sch. A1, R12), opted into by the client: before consent, an
    #: opt-in site counts page views anonymously (``sites/uk_stats.py``). Only for country GB.
    uk_stats_exception: Mapped[bool] = field(
        Boolean,
        default=False,
        server_default=false(),
        category="system.configuration",
        retention="account",
    )
    #: Automatic chat invitations: [{"path": "/used-cars/*", "seconds": 30, "text": "…"}].
    invite_rules: Mapped[list[dict[str, object]]] = field(
        JSON, default=list, category="system.configuration", retention="account"
    )
    #: ISO country code: the default region for phone numbers typed without a country code.
    country: Mapped[str] = field(
        String(2), default="GB", category="system.configuration", retention="account"
    )
    #: The client's privacy policy (linked from the consent question) and its version.
    privacy_policy_url: Mapped[str | None] = field(
        Text, nullable=True, category="system.configuration", retention="account"
    )
    policy_version: Mapped[str] = field(
        String(40), default="1", category="system.configuration", retention="account"
    )
    #: The consent question shown in the chat before details go to the client (None: default).
    consent_text: Mapped[str | None] = field(
        Text, nullable=True, category="system.configuration", retention="account"
    )
    #: Visitors who state an age under this are not leads (policy 7.3).
    min_age: Mapped[int] = field(
        Integer, default=16, category="system.configuration", retention="account"
    )
    created_at: Mapped[datetime] = field(
        UTCDateTime, category="system.operations", retention="account"
    )

    #: A site is its own site: scoping by site filters on its id.
    site_id = synonym("id")
