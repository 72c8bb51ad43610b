"""Sites: creation, look-up by public key, and who may embed them."""

from __future__ import annotations

from sqlalchemy import select

from confide.accounts.models import Organisation
from confide.clock import utcnow
from confide.errors import InvalidInput, NotFound
from confide.ids import new_id, new_site_key
from confide.sites.models import Site
from confide.sites.origins import normalise_origin
from confide.storage.engine import Database
from confide.storage.scope import Scope

DEFAULT_GREETING = "Hi! How can we help you today?"


class SiteService:
    def __init__(self, db: Database) -> None:
        self.db = db
        #: Site keys are looked up on every widget connection; sites change rarely.
        self._by_key: dict[str, Site] = {}

    async def create_site(
        self, *, organisation_id: str, name: str, origins: list[str], greeting: str | None = None
    ) -> Site:
        name = name.strip()
        if not 1 <= len(name) <= 200:
            raise InvalidInput("Site name must be 1 to 200 characters.")
        if not origins:
            raise InvalidInput(
                "A site needs at least one allowed origin (e.g. https://example.com)."
            )
        allowed = sorted({normalise_origin(o) for o in origins})
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
                created_at=utcnow(),
            )
            s.add(site)
        return site

    async def by_key(self, key: str) -> Site:
        """The site for a public key (cached), or :class:`NotFound`."""
        site = self._by_key.get(key)
        if site is None:
            async with self.db.session(Scope.system()) as s:
                site = await s.scalar(select(Site).where(Site.key == key))
            if site is None:
                raise NotFound("Unknown site key.")
            self._by_key[key] = site
        return site

    async def get(self, scope: Scope, site_id: str) -> Site:
        async with self.db.session(scope) as s:
            site = await s.scalar(select(Site).where(Site.id == site_id))
        if site is None:
            raise NotFound("No such site.")
        return site

    async def list_sites(self, scope: Scope) -> list[tuple[Site, str]]:
        """Sites in scope with their organisation's name."""
        async with self.db.session(scope) as s:
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


def embed_snippet(base_url: str, site: Site) -> str:
    return f'<script async src="{base_url}/widget.js" data-site="{site.key}"></script>'
