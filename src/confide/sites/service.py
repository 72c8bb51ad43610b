"""Sites: creation, look-up by public key, and who may embed them."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from confide.accounts.models import Organisation
from confide.audit import log as audit
from confide.clock import utcnow
from confide.errors import InvalidInput, NotFound
from confide.ids import new_id, new_site_key
from confide.sites import identity, processing, uk_stats
from confide.sites.models import Site
from confide.sites.origins import normalise_origin
from confide.storage.engine import Database
from confide.storage.scope import Scope

DEFAULT_GREETING = "Hi! How can we help you today?"
#: opt-in: nothing is tracked before consent (UK/EU default); notice: tracking with an opt-out.
CONSENT_MODES = ("opt-in", "notice")
MAX_RULES = 20
CACHE_SECONDS = 5.0


class SiteService:
    def __init__(self, db: Database) -> None:
        self.db = db
        #: Site keys are looked up on every widget connection and beacon; sites change rarely.
        #: Entries live CACHE_SECONDS, so a change made elsewhere (the CLI, another node) takes
        #: effect everywhere within that time.
        self._by_key: dict[str, tuple[float, Site, date | None, bool]] = {}

    async def create_site(
        self,
        *,
        organisation_id: str,
        name: str,
        origins: list[str],
        greeting: str | None = None,
        consent_mode: str = "opt-in",
    ) -> Site:
        name = name.strip()
        if not 1 <= len(name) <= 200:
            raise InvalidInput("Site name must be 1 to 200 characters.")
        if not origins:
            raise InvalidInput(
                "A site needs at least one allowed origin (e.g. https://example.com)."
            )
        allowed = sorted({normalise_origin(o) for o in origins})
        if consent_mode not in CONSENT_MODES:
            raise InvalidInput("consent mode must be 'opt-in' or 'notice'.")
        greeting = (greeting or DEFAULT_GREETING).strip()
        if len(greeting) > 500:
            raise InvalidInput("The greeting is limited to 500 characters.")
        async with self.db.session(Scope.system()) as s:
            if await s.get(Organisation, organisation_id) is None:
                raise NotFound("No such organisation.")
            site = Site(
                id=new_id(),
                organisation_id=organisation_id,
                key=new_site_key(),
                name=name,
                greeting=greeting,
                allowed_origins=allowed,
                consent_mode=consent_mode,
                invite_rules=[],
                created_at=utcnow(),
            )
            s.add(site)
        return site

    async def configure(
        self,
        site_id: str,
        *,
        consent_mode: str | None = None,
        invite_rules: list[dict[str, object]] | None = None,
        disable: Iterable[str] = (),
        enable: Iterable[str] = (),
        tracking_identity: str | None = None,
        salt_rotation: str | None = None,
        uk_stats_exception: bool | None = None,
        country: str | None = None,
        actor: audit.Actor = audit.SYSTEM,
    ) -> Site:
        """Change a site's consent mode, automatic invitation rules, the usage-data
        categories switched off for it (audited: R03) or how it recognises returning
        browsers (cookie or cookieless, and the salt's rotation: audited, R21). Every value is
        checked before anything changes: the UK statistics exception (R12) is refused for a
        site outside the UK, and a site cannot leave the UK while it is on (audited)."""
        off, on = processing.checked(disable), processing.checked(enable)
        if tracking_identity is not None:
            identity.checked_identity(tracking_identity)
        if salt_rotation is not None:
            identity.checked_rotation(salt_rotation)
        if country is not None:
            country = uk_stats.checked_country(country)
        if consent_mode is not None and consent_mode not in CONSENT_MODES:
            raise InvalidInput("consent mode must be 'opt-in' or 'notice'.")
        rules = [validate_rule(r) for r in invite_rules] if invite_rules is not None else None
        if rules is not None and len(rules) > MAX_RULES:
            raise InvalidInput(f"At most {MAX_RULES} invitation rules per site.")
        async with self.db.session(Scope.system()) as s:
            site = await s.get(Site, site_id)
            if site is None:
                raise NotFound("No such site.")
            uk_stats.check(
                site.uk_stats_exception if uk_stats_exception is None else uk_stats_exception,
                site.country if country is None else country,
            )
            if consent_mode is not None:
                site.consent_mode = consent_mode
            if rules is not None:
                site.invite_rules = rules
            await _switch_categories(s, site, off, on, actor)
            identity_change = {
                "tracking_identity": tracking_identity,
                "salt_rotation": salt_rotation,
            }
            await _apply_audited(s, site, "config.site.identity", identity_change, actor)
            uk_change = {"country": country, "uk_stats_exception": uk_stats_exception}
            await _apply_audited(s, site, "config.site.uk_stats", uk_change, actor)
        self._by_key.pop(site.key, None)
        return site

    async def by_key(self, key: str, *, serving: bool = True) -> Site:
        """The site for a public key (cached), or :class:`NotFound`. ``serving`` (chat, beacons,
        enquiries): also once its client's contract has ended, so nothing new is collected for a
        client whose data is being returned or erased (Art. 28(3)(g); the purge would never reach
        it, retention/purge.py). The privacy request page and the CLI still find it: people keep
        their rights while their data is held."""
        cached = self._by_key.get(key)
        now = time.monotonic()
        if cached is None or cached[0] <= now:
            async with self.db.session(Scope.system(), read_only=True) as s:
                row = (
                    await s.execute(
                        select(Site, Organisation.contract_end, Organisation.purged_at)
                        .join(Organisation, Organisation.id == Site.organisation_id)
                        .where(Site.key == key)
                    )
                ).first()
            if row is None:
                raise NotFound("Unknown site key.")
            cached = (now + CACHE_SECONDS, row[0], row[1], row[2] is not None)
            self._by_key[key] = cached
        _expires, site, end, ended = cached
        if serving and (ended or (end is not None and utcnow().date() >= end)):
            raise NotFound("This site's chat is no longer available.")
        return site

    async def get(self, scope: Scope, site_id: str) -> Site:
        async with self.db.session(scope) as s:
            site = await s.scalar(select(Site).where(Site.id == site_id))
        if site is None:
            raise NotFound("No such site.")
        return site

    async def list_sites(self, scope: Scope) -> list[tuple[Site, str]]:
        """Sites in scope with their organisation's name."""
        async with self.db.session(scope, read_only=True) as s:
            rows = await s.execute(
                select(Site, Organisation.name)
                .join(Organisation, Organisation.id == Site.organisation_id)
                .order_by(Organisation.name, Site.name)
            )
            return [(r[0], r[1]) for r in rows.all()]

    @staticmethod
    def origin_allowed(site: Site, origin: str | None) -> bool:
        if not origin:
            return False
        try:
            return normalise_origin(origin) in site.allowed_origins
        except InvalidInput:
            return False


async def _switch_categories(
    s: AsyncSession, site: Site, off: list[str], on: list[str], actor: audit.Actor
) -> None:
    """Switch usage-data categories off and on (R03), with one audit entry when the set changes."""
    before = list(site.disabled_categories or [])
    after = sorted((set(before) | set(off)) - set(on))
    if after == before:
        return
    site.disabled_categories = after
    await audit.append(
        s,
        actor,
        "config.site.processing",
        organisation_id=site.organisation_id,
        subject_kind="site",
        subject_ref=site.id,
        fields=sorted(set(before) ^ set(after)),
        purpose=f"categories switched off: {before or 'none'} -> {after or 'none'}",
    )


async def _apply_audited(
    s: AsyncSession,
    site: Site,
    action: str,
    values: Mapping[str, object],
    actor: audit.Actor,
) -> None:
    """Set the given (not None) values that differ, with one audit entry naming each change
    (old -> new); nothing, not even an entry, when nothing differs."""
    changes = {
        name: (getattr(site, name), value)
        for name, value in values.items()
        if value is not None and value != getattr(site, name)
    }
    if not changes:
        return
    for name, (_old, new) in changes.items():
        setattr(site, name, new)
    await audit.append(
        s,
        actor,
        action,
        organisation_id=site.organisation_id,
        subject_kind="site",
        subject_ref=site.id,
        fields=sorted(changes),
        purpose="; ".join(f"{n}: {old} -> {new}" for n, (old, new) in sorted(changes.items())),
    )


def validate_rule(rule: dict[str, object]) -> dict[str, object]:
    """``{"path": "/used-cars/*", "seconds": 30, "text": "…"}``: a path glob, a dwell time."""
    path, seconds, text = rule.get("path"), rule.get("seconds"), rule.get("text")
    if not isinstance(path, str) or not path.startswith("/") or len(path) > 200:
        raise InvalidInput("An invitation rule needs a path starting with / (e.g. /used-cars/*).")
    if not isinstance(seconds, int) or isinstance(seconds, bool) or not 0 <= seconds <= 3600:
        raise InvalidInput("An invitation rule needs seconds between 0 and 3600.")
    if not isinstance(text, str) or not 1 <= len(text.strip()) <= 300:
        raise InvalidInput("An invitation rule needs a text of 1 to 300 characters.")
    return {"path": path, "seconds": seconds, "text": text.strip()}


def embed_snippet(base_url: str, site: Site) -> str:
    return f'<script async src="{base_url}/widget.js" data-site="{site.key}"></script>'
