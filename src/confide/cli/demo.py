"""Seed the demo: "Demo Motors", a site embedded at /demo/, and an operator who answers it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from confide.accounts.models import Organisation, Role, User
from confide.sites.models import Site
from confide.storage.scope import Scope
from confide.web.context import AppContext

DEMO_ORG = "Demo Motors"
DEMO_SITE = "Demo Motors - Main Street"
OPERATOR_EMAIL = "operator@demo.confide.dev"
OPERATOR_PASSWORD = "demo-operator-pass"  # noqa: S105 (a demo login, printed on start)
#: A member of the dealership's own staff: sees Demo Motors' leads and reports in the portal.
CLIENT_EMAIL = "manager@demo.confide.dev"
CLIENT_PASSWORD = "demo-manager-pass"  # noqa: S105 (a demo login, printed on start)
#: Where Demo Motors' leads go (an email destination): written to the demo's mail folder.
LEADS_EMAIL = "sales@demo-motors.example"
GREETING = "Hi! Looking for your next car? Ask us anything — a real person will answer."


DEMO_EAST_SITE = "Demo Motors - Eastside"
EAST_GREETING = "Welcome to Eastside! Ask about part-exchange, finance or a test drive."


@dataclass(frozen=True)
class Seeded:
    site_key: str
    east_site_key: str
    email: str
    password: str
    client_email: str = CLIENT_EMAIL
    client_password: str = CLIENT_PASSWORD


async def seed_demo(ctx: AppContext, base_url: str, port: int) -> Seeded:
    """Idempotent: a second run reuses what the first created (and adds this port's origins)."""
    origins = {base_url, f"http://localhost:{port}", f"http://127.0.0.1:{port}"}
    async with ctx.db.session(Scope.system()) as s:
        org = await s.scalar(select(Organisation).where(Organisation.name == DEMO_ORG))
        site = None
        if org is not None:
            site = await s.scalar(
                select(Site).where(Site.organisation_id == org.id, Site.name == DEMO_SITE)
            )
            if site is not None:
                site.allowed_origins = sorted(set(site.allowed_origins) | origins)
        east = None
        if org is not None:
            east = await s.scalar(
                select(Site).where(Site.organisation_id == org.id, Site.name == DEMO_EAST_SITE)
            )
            if east is not None:
                east.allowed_origins = sorted(set(east.allowed_origins) | origins)
        user = await s.scalar(select(User).where(User.email == OPERATOR_EMAIL))
        manager = await s.scalar(select(User).where(User.email == CLIENT_EMAIL))
    if org is None:
        org = await ctx.accounts.create_organisation(DEMO_ORG)
        # Where the demo's leads go: an email with the ADF attachment, in the demo's mail folder.
        await ctx.delivery_admin.add_destination(
            Scope.system(),
            organisation_id=org.id,
            kind="email",
            target=LEADS_EMAIL,
            name="Sales inbox",
            region="UK",
        )
    if site is None:
        site = await ctx.sites.create_site(
            organisation_id=org.id, name=DEMO_SITE, origins=sorted(origins), greeting=GREETING
        )
    if east is None:
        east = await ctx.sites.create_site(
            organisation_id=org.id,
            name=DEMO_EAST_SITE,
            origins=sorted(origins),
            greeting=EAST_GREETING,
            consent_mode="notice",
        )
        await ctx.sites.configure(
            east.id,
            invite_rules=[
                {
                    "path": "/demo/east*",
                    "seconds": 20,
                    "text": "Looking at part-exchange? We can value your car in minutes.",
                }
            ],
        )
    if user is None:
        await ctx.accounts.create_user(
            email=OPERATOR_EMAIL,
            name="Olivia (Operator)",
            role=Role.OPERATOR,
            password=OPERATOR_PASSWORD,
            site_ids=[site.id, east.id],
        )
    else:
        await ctx.accounts.assign_site(user.id, east.id)
    if manager is None:
        await ctx.accounts.create_user(
            email=CLIENT_EMAIL,
            name="Morgan (Sales manager)",
            role=Role.CLIENT,
            password=CLIENT_PASSWORD,
            organisation_id=org.id,
            site_ids=[site.id, east.id],
        )
    await _publish_policy(ctx, base_url)
    return Seeded(site.key, east.key, OPERATOR_EMAIL, OPERATOR_PASSWORD)


async def _publish_policy(ctx: AppContext, base_url: str) -> None:
    """Once: the public pages link to the current policy, which must exist."""
    from confide.accountability.service import Accountability
    from confide.cli import demo_policy

    policies = Accountability(ctx.db, ctx.settings).policies
    if await policies.versions():
        return
    await policies.publish(
        None,
        version=demo_policy.VERSION,
        text=demo_policy.TEXT,
        title=demo_policy.TITLE,
        base_url=base_url,
    )
