"""`confide worker` and `confide destination …`: lead delivery from the command line."""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import typer

from confide.cli.runtime import fail, run_service
from confide.settings import DEFAULT_DATABASE_URL, Settings

destination_app = typer.Typer(
    help="Where leads are delivered (email, webhook).", no_args_is_help=True
)

DbOpt = Annotated[
    str,
    typer.Option(
        "--database-url", envvar="CONFIDE_DATABASE_URL", help="sqlite:///file.db or postgresql://…"
    ),
]


def worker(
    database_url: DbOpt = DEFAULT_DATABASE_URL,
    once: Annotated[
        bool, typer.Option("--once", help="Deliver what is due now, then exit.")
    ] = False,
) -> None:
    """Deliver leads from the outbox (run one or more beside `serve --no-worker` nodes)."""
    from confide.delivery.worker import DeliveryWorker
    from confide.privacy.service import PrivacyService
    from confide.storage.engine import Database

    async def go() -> int:
        settings = Settings(database_url=database_url)
        db = Database(
            settings.database_url,
            keystore_url=settings.keystore_url or None,
            master_keys=settings.master_keys or None,
        )
        worker = DeliveryWorker(db, settings)
        # A privacy request waiting for its erasure notices completes (or fails) as they do.
        worker.on_notice_settled = PrivacyService(db, settings).notice_settled
        broker = None
        if settings.broker_url:
            # Consoles on the server nodes learn of each delivery through the shared broker.
            from confide.chat import recipients
            from confide.leads.models import Lead
            from confide.realtime.broker import Event, make_broker
            from confide.storage.scope import Scope

            broker = make_broker(settings.broker_url)

            def ignore(_event: Event) -> None:
                return None

            await broker.start(ignore)

            async def announce(lead_id: str) -> None:
                assert broker is not None
                async with db.session(Scope.system(), read_only=True) as s:
                    lead = await s.get(Lead, lead_id)
                if lead is not None and lead.conversation_id:
                    frame = {"type": "lead_changed", "conversation": lead.conversation_id}
                    channels = (recipients.conversation_agents(lead.conversation_id),)
                    await broker.publish(Event(channels, frame))

            worker.on_lead_changed = announce
        try:
            if once:
                return await worker.drain()
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            typer.echo("Delivery worker running; Ctrl-C to stop.")
            worker.start()
            await stop.wait()
            return 0
        finally:
            await worker.stop()
            if broker is not None:
                await broker.stop()
            await db.dispose()

    try:
        ran = asyncio.run(go())
    except ValueError as exc:
        fail(str(exc))
    if once:
        typer.echo(f"Ran {ran} delivery job(s).")


@destination_app.command("add")
def add(
    organisation: Annotated[str, typer.Option("--org", help="Organisation id.")],
    kind: Annotated[str, typer.Option("--kind", help="email or webhook.")],
    target: Annotated[str, typer.Option("--target", help="Email address or https URL.")],
    region: Annotated[str, typer.Option("--region", help="UK, EU, EEA, US, …")],
    site: Annotated[str | None, typer.Option("--site", help="Only this site's leads.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="A label.")] = None,
    database_url: DbOpt = DEFAULT_DATABASE_URL,
) -> None:
    """Add a destination; prints a webhook's signing secret once."""
    from confide.storage.scope import Scope

    created = run_service(
        database_url,
        lambda ctx: ctx.delivery_admin.add_destination(
            Scope.system(),
            organisation_id=organisation,
            kind=kind,
            target=target,
            region=region,
            name=name,
            site_id=site,
        ),
    )
    d = created.destination
    typer.echo(f"Destination {d['id']}: {d['kind']} → {d['target']} ({d['region']})")
    if created.secret:
        typer.echo(f"Signing secret (shown once): {created.secret}")
    if d["note"]:
        typer.secho(f"Note: {d['note']}", fg=typer.colors.YELLOW)


@destination_app.command("list")
def list_(database_url: DbOpt = DEFAULT_DATABASE_URL) -> None:
    """List destinations."""
    from confide.storage.scope import Scope

    rows = run_service(
        database_url, lambda ctx: ctx.delivery_admin.list_destinations(Scope.system())
    )
    if not rows:
        typer.echo("No destinations: leads appear in the client portal only.")
    for d in rows:
        state = "" if d["enabled"] else " (disabled)"
        extra = "" if d["personal_data"] else " [no personal data: outside EU/UK]"
        typer.echo(f"{d['id']}  {d['kind']:7}  {d['region']:5}  {d['target']}{state}{extra}")
