"""A small world for the accountability tests: organisations, client admins, our staff, an SMTP
sink and the clock, all in process (the services, no HTTP)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage

from sqlalchemy import select

from confide.accountability.service import Accountability
from confide.accounts.models import Role, User
from confide.accounts.principal import Principal
from confide.clock import FrozenClock
from confide.settings import Settings
from confide.storage.scope import Scope
from confide.web.context import AppContext
from tests.leads.helpers import SmtpSink

#: A fixed "now" for the frozen clock (seconds only: both databases keep microseconds, but a
#: round value reads better in a failure message).
T0 = datetime.now(UTC).replace(microsecond=0)
BASE = "https://chat.example.test"


@dataclass
class World:
    ctx: AppContext
    acct: Accountability
    sink: SmtpSink
    clock: FrozenClock
    org_a: str
    org_b: str
    admin: Principal
    operator: Principal
    client_a: Principal  # two client admins in A, one in B
    client_a2: Principal
    client_b: Principal

    def mail_to(self, email: str, since: int = 0) -> list[EmailMessage]:
        return [m for m in self.sink.messages[since:] if m["To"] == email]


async def principal(
    ctx: AppContext, role: Role, org: str | None, name: str = "Person"
) -> Principal:
    user = await ctx.accounts.create_user(
        email=f"{role.value}-{secrets.token_hex(5)}@example.com",
        name=name,
        role=role,
        password="correct horse battery",
        organisation_id=org,
    )
    async with ctx.db.session(Scope.system()) as s:
        loaded = await s.get(User, user.id)
        assert loaded is not None
        return await ctx.accounts.principal_for(loaded)


async def client_emails(ctx: AppContext) -> set[str]:
    """Every client admin in the database (earlier tests of the module made some too)."""
    async with ctx.db.session(Scope.system(), read_only=True) as s:
        return set(await s.scalars(select(User.email).where(User.role == Role.CLIENT.value)))


def run(database_url: str, clock: FrozenClock, body: Callable[[World], Awaitable[None]]) -> None:
    async def go(sink: SmtpSink) -> None:
        settings = Settings(
            database_url=database_url,
            worker=False,
            rollup_interval_s=0,
            retention_interval_s=0,
            smtp_host="127.0.0.1",
            smtp_port=sink.port,
            mail_from="Confide <notices@confide.test>",
        )
        ctx = AppContext.build(settings)
        await ctx.start()
        try:
            tag = secrets.token_hex(3)
            org_a = (await ctx.accounts.create_organisation(f"Alpha Cars {tag}")).id
            org_b = (await ctx.accounts.create_organisation(f"Beta Motors {tag}")).id
            world = World(
                ctx,
                Accountability(ctx.db, ctx.settings),
                sink,
                clock,
                org_a,
                org_b,
                await principal(ctx, Role.ADMIN, None, "Ada Admin"),
                await principal(ctx, Role.OPERATOR, None, "Otto Operator"),
                await principal(ctx, Role.CLIENT, org_a, "Cara Alpha"),
                await principal(ctx, Role.CLIENT, org_a, "Carl Alpha"),
                await principal(ctx, Role.CLIENT, org_b, "Bob Beta"),
            )
            await body(world)
        finally:
            await ctx.stop()

    with SmtpSink() as sink:
        asyncio.run(go(sink))
