"""The ``confide`` command line: thin over the services, with clear errors and exit codes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from confide.cli.accountability import register as register_accountability
from confide.cli.audit import audit_app
from confide.cli.delivery import destination_app, worker
from confide.cli.keys import keys_app
from confide.cli.retention import hold_app, retention_app
from confide.cli.runtime import fail, run_service
from confide.settings import DEFAULT_DATABASE_URL, Settings

app = typer.Typer(
    help="Confide: privacy-first live chat and lead capture.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
org_app = typer.Typer(help="Client organisations.", no_args_is_help=True)
site_app = typer.Typer(help="Sites (websites with the widget).", no_args_is_help=True)
user_app = typer.Typer(help="Users: admins, operators and client staff.", no_args_is_help=True)
stats_app = typer.Typer(help="Analytics roll-ups.", no_args_is_help=True)
app.add_typer(org_app, name="org")
app.add_typer(site_app, name="site")
app.add_typer(user_app, name="user")
app.add_typer(stats_app, name="stats")
app.add_typer(destination_app, name="destination")
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")
app.add_typer(retention_app, name="retention")
app.add_typer(hold_app, name="hold")
register_accountability(app)
app.command("worker")(worker)

DbOpt = Annotated[
    str,
    typer.Option(
        "--database-url", envvar="CONFIDE_DATABASE_URL", help="sqlite:///file.db or postgresql://…"
    ),
]
PasswordOpt = Annotated[
    str | None,
    typer.Option(
        "--password",
        envvar="CONFIDE_PASSWORD",
        help="At least 10 characters; prompted when omitted.",
    ),
]
HostOpt = Annotated[str, typer.Option("--host", help="Interface to listen on.")]
PortOpt = Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")]


def _settings(database_url: str, **extra: Any) -> Settings:
    try:
        return Settings(database_url=database_url, **extra)
    except Exception as exc:  # pydantic validation of env/options
        fail(f"Invalid settings: {exc}")
        raise


@app.command()
def migrate(database_url: DbOpt = DEFAULT_DATABASE_URL) -> None:
    """Create or upgrade the database schema."""
    from confide.cli.runtime import migrate_db

    migrate_db(database_url)
    typer.echo("Database is up to date.")


@app.command()
def serve(
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    database_url: DbOpt = DEFAULT_DATABASE_URL,
    migrate_first: Annotated[
        bool, typer.Option("--migrate/--no-migrate", help="Migrate on start.")
    ] = True,
    broker_url: Annotated[
        str | None,
        typer.Option(
            "--broker-url", envvar="CONFIDE_BROKER_URL", help="redis://… to fan out across nodes."
        ),
    ] = None,
    worker: Annotated[
        bool,
        typer.Option(
            "--worker/--no-worker",
            envvar="CONFIDE_WORKER",
            help="Deliver leads in this process (off when `confide worker` processes run).",
        ),
    ] = True,
) -> None:
    """Run the server (HTTP + WebSocket)."""
    from confide.cli.runtime import check_database_url, ensure_port_free, migrate_db, run_server

    check_database_url(database_url)
    ensure_port_free(host, port)
    if migrate_first:
        migrate_db(database_url)
    run_server(_settings(database_url, broker_url=broker_url or None, worker=worker), host, port)


@app.command()
def demo(
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    database_url: DbOpt = "sqlite:///confide-demo.db",
) -> None:
    """Run the server with a demo organisation, site, operator and dealership page at /demo/.

    Emails (verification codes, leads, transcripts) are written to ./demo-mail/ as .eml files
    unless CONFIDE_MAIL_DIR or an SMTP relay (CONFIDE_SMTP_HOST) is configured."""
    import os

    from confide.cli.demo import LEADS_EMAIL, seed_demo
    from confide.cli.runtime import check_database_url, ensure_port_free, migrate_db, run_server

    check_database_url(database_url)
    ensure_port_free(host, port)
    if "CONFIDE_SMTP_HOST" not in os.environ:
        os.environ.setdefault("CONFIDE_MAIL_DIR", "demo-mail")
    mail_dir = os.environ.get("CONFIDE_MAIL_DIR", "")
    migrate_db(database_url)
    base = f"http://{'localhost' if host in ('127.0.0.1', '0.0.0.0', '::') else host}:{port}"
    # Links in emails (an access export, a request page) need the server's address; pages
    # keep taking it from each request (the demo answers on localhost and 127.0.0.1 alike).
    os.environ.setdefault("CONFIDE_EMAIL_LINK_BASE", base)
    seeded = run_service(database_url, lambda ctx: seed_demo(ctx, base, port))
    typer.echo(
        "\nConfide demo is running.\n"
        f"  Demo dealership page : {base}/demo/\n"
        f"  Second dealership    : {base}/demo/east\n"
        f"  Operator console     : {base}/console\n"
        f"  Operator sign-in     : {seeded.email}  /  {seeded.password}\n"
        f"  Client portal        : {base}/portal  (leads, reports, privacy requests)\n"
        f"  Client sign-in       : {seeded.client_email}  /  {seeded.client_password}\n"
        f"  Site key             : {seeded.site_key}\n"
        f"  Database             : {database_url}\n"
        + (
            f"  Emails               : written to {mail_dir}/ (no mail server needed)\n"
            f"  Leads emailed to     : {LEADS_EMAIL} (with the ADF file for dealer CRMs)\n"
            if mail_dir
            else ""
        )
        + '\nSign in to the console first: the widget says "away" until an operator is online.\n'
        "/demo/ asks before counting visits (opt-in); /demo/east counts them, with an opt-out.\n"
    )
    run_server(
        _settings(
            database_url, demo_site_key=seeded.site_key, demo_east_site_key=seeded.east_site_key
        ),
        host,
        port,
    )


@org_app.command("create")
def org_create(
    name: Annotated[str, typer.Argument(help="The organisation's name.")],
    database_url: DbOpt = DEFAULT_DATABASE_URL,
) -> None:
    """Create a client organisation; prints its id."""
    org = run_service(database_url, lambda ctx: ctx.accounts.create_organisation(name))
    typer.echo(org.id)


@org_app.command("list")
def org_list(database_url: DbOpt = DEFAULT_DATABASE_URL) -> None:
    """List organisations."""
    from confide.storage.scope import Scope

    for org in run_service(
        database_url, lambda ctx: ctx.accounts.list_organisations(Scope.admin())
    ):
        typer.echo(f"{org.id}\t{org.name}")


def _optional(value: str | None, parse: Callable[[str], Any], what: str) -> Any:
    """None: unchanged; "none": cleared; otherwise parsed, or a clear error."""
    from confide.accounts.contract import UNSET

    if value is None:
        return None
    if value.strip().lower() == "none":
        return UNSET
    try:
        return parse(value)
    except ValueError:
        fail(f"Invalid {what}: {value!r}.")


@org_app.command("configure")
def org_configure(
    org: Annotated[str, typer.Option("--org", help="Organisation id.")],
    contract_start: Annotated[
        str | None, typer.Option("--contract-start", help="YYYY-MM-DD, or none.")
    ] = None,
    contract_end: Annotated[
        str | None,
        typer.Option(
            "--contract-end",
            help="YYYY-MM-DD, or none. Personal data goes 3 months after this day at the latest.",
        ),
    ] = None,
    retention_months: Annotated[
        str | None,
        typer.Option(
            "--retention-months",
            help="A shorter retention for personal data (3-120 months), or none for the maximum.",
        ),
    ] = None,
    behaviour_days: Annotated[
        int | None,
        typer.Option("--behaviour-days", help="Raw visits and page views kept (days, 1-1100)."),
    ] = None,
    end_of_contract: Annotated[
        str | None,
        typer.Option("--end-of-contract", help="delete, or return_then_delete (export first)."),
    ] = None,
    auto_approve: Annotated[
        bool | None,
        typer.Option(
            "--auto-approve/--manual-approve",
            help="Approve verified privacy requests without a review by the client.",
        ),
    ] = None,
    database_url: DbOpt = DEFAULT_DATABASE_URL,
) -> None:
    """Set an organisation's contract dates and retention; prints the result. Audited."""
    import json
    from datetime import date

    from confide.accounts.contract import ContractChange, configure

    change = ContractChange(
        contract_start=_optional(contract_start, date.fromisoformat, "--contract-start"),
        contract_end=_optional(contract_end, date.fromisoformat, "--contract-end"),
        retention_months=_optional(retention_months, int, "--retention-months"),
        behaviour_retention_days=behaviour_days,
        end_of_contract=end_of_contract,
        privacy_auto_approve=auto_approve,
    )
    result = run_service(database_url, lambda ctx: configure(ctx.db, org, change))
    typer.echo(json.dumps(result, indent=2))


@site_app.command("create")
def site_create(
    org: Annotated[str, typer.Option("--org", help="Organisation id.")],
    name: Annotated[str, typer.Option("--name", help="The site's name, shown in the widget.")],
    origin: Annotated[
        list[str],
        typer.Option("--origin", help="Allowed origin (repeatable), e.g. https://example.com."),
    ],
    greeting: Annotated[
        str | None, typer.Option("--greeting", help="First line visitors see.")
    ] = None,
    consent_mode: Annotated[
        str,
        typer.Option(
            "--consent-mode", help="opt-in (UK/EU: nothing tracked before consent) or notice."
        ),
    ] = "opt-in",
    public_url: Annotated[
        str,
        typer.Option(
            "--public-url", envvar="CONFIDE_PUBLIC_URL", help="Where this server is reached."
        ),
    ] = "https://chat.example.com",
    database_url: DbOpt = DEFAULT_DATABASE_URL,
) -> None:
    """Create a site; prints its key and the embed snippet."""
    from confide.errors import InvalidInput
    from confide.sites.origins import normalise_origin
    from confide.sites.service import embed_snippet

    try:  # the snippet's script address: an http(s) URL, perhaps with a path
        normalise_origin(public_url)
    except InvalidInput:
        fail(
            "--public-url must be an http(s) address, e.g. https://chat.example.com: "
            f"{public_url!r}"
        )

    site = run_service(
        database_url,
        lambda ctx: ctx.sites.create_site(
            organisation_id=org,
            name=name,
            origins=origin,
            greeting=greeting,
            consent_mode=consent_mode,
        ),
    )
    typer.echo(site.key)
    typer.echo(f"Site id: {site.id}", err=True)
    typer.echo("Embed snippet:", err=True)
    typer.echo("  " + embed_snippet(public_url.rstrip("/"), site), err=True)


@site_app.command("configure")
def site_configure(
    site: Annotated[str, typer.Option("--site", help="Site key or id.")],
    consent_mode: Annotated[
        str | None, typer.Option("--consent-mode", help="opt-in or notice.")
    ] = None,
    invite_rule: Annotated[
        list[str] | None,
        typer.Option(
            "--invite-rule",
            help='PATH:SECONDS:TEXT, e.g. "/used-cars/*:30:Need a hand?" (repeatable).',
        ),
    ] = None,
    clear_rules: Annotated[
        bool, typer.Option("--clear-rules", help="Remove every invitation rule.")
    ] = False,
    disable: Annotated[
        list[str] | None,
        typer.Option(
            "--disable",
            help="Never store this usage-data category: user.location or system.device "
            "(repeatable; audited).",
        ),
    ] = None,
    enable: Annotated[
        list[str] | None,
        typer.Option("--enable", help="Store a category switched off before (repeatable)."),
    ] = None,
    tracking_identity: Annotated[
        str | None,
        typer.Option(
            "--tracking-identity",
            help="cookie (a first-party cookie) or cookieless (nothing stored on the device; "
            "a server-side key from a rotating salt). Audited.",
        ),
    ] = None,
    salt_rotation: Annotated[
        str | None,
        typer.Option(
            "--salt-rotation", help="Cookieless salt lifetime: daily, weekly or monthly. Audited."
        ),
    ] = None,
    uk_stats_exception: Annotated[
        bool | None,
        typer.Option(
            "--uk-stats-exception/--no-uk-stats-exception",
            help="UK sites only (PECR Sch. A1): count page views anonymously before consent, "
            "with a way to object. Audited.",
        ),
    ] = None,
    country: Annotated[
        str | None,
        typer.Option("--country", help="The site's country, a two-letter ISO code (e.g. GB)."),
    ] = None,
    database_url: DbOpt = DEFAULT_DATABASE_URL,
) -> None:
    """Change a site's consent mode, its automatic chat invitations, the usage data it
    records, how it recognises returning visitors or its UK statistics exception."""
    rules: list[dict[str, object]] | None = [] if clear_rules else None
    for raw in invite_rule or []:
        path, _, rest = raw.partition(":")
        seconds, _, text = rest.partition(":")
        if not seconds.isdigit():
            fail(f"Invalid --invite-rule {raw!r}: use PATH:SECONDS:TEXT.")
        rules = [*(rules or []), {"path": path, "seconds": int(seconds), "text": text}]

    async def configure(ctx: Any) -> Any:
        site_id = await _site_id(ctx, site)
        return await ctx.sites.configure(
            site_id,
            consent_mode=consent_mode,
            invite_rules=rules,
            disable=disable or (),
            enable=enable or (),
            tracking_identity=tracking_identity,
            salt_rotation=salt_rotation,
            uk_stats_exception=uk_stats_exception,
            country=country,
        )

    updated = run_service(database_url, configure)
    off = ", ".join(updated.disabled_categories or []) or "none"
    typer.echo(
        f"{updated.key}: consent mode {updated.consent_mode}, "
        f"{len(updated.invite_rules)} invitation rule(s), not recorded: {off}, "
        f"identity {updated.tracking_identity} (salt {updated.salt_rotation}), "
        f"country {updated.country}, UK statistics exception "
        f"{'on' if updated.uk_stats_exception else 'off'}"
    )


@site_app.command("list")
def site_list(database_url: DbOpt = DEFAULT_DATABASE_URL) -> None:
    """List sites with their organisation."""
    from confide.storage.scope import Scope

    for site, org in run_service(database_url, lambda ctx: ctx.sites.list_sites(Scope.admin())):
        typer.echo(f"{site.key}\t{site.id}\t{org}\t{site.name}\t{' '.join(site.allowed_origins)}")


@user_app.command("create")
def user_create(
    email: Annotated[str, typer.Option("--email")],
    name: Annotated[str, typer.Option("--name")],
    role: Annotated[str, typer.Option("--role", help="admin | operator | client")],
    password: PasswordOpt = None,
    org: Annotated[
        str | None, typer.Option("--org", help="Organisation id (client users).")
    ] = None,
    site: Annotated[
        list[str] | None, typer.Option("--site", help="Site key or id to assign (repeatable).")
    ] = None,
    database_url: DbOpt = DEFAULT_DATABASE_URL,
) -> None:
    """Create a user; prints its id."""
    from confide.accounts.models import Role

    try:
        role_value = Role(role)
    except ValueError:
        fail(f"Unknown role {role!r}: use admin, operator or client.")
        raise
    from confide.accounts.service import normalise_email
    from confide.errors import InvalidInput

    try:  # a typo in the address is reported before the password is asked for
        normalise_email(email)
    except InvalidInput as exc:
        fail(exc.message)
    if password is None:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)

    async def create(ctx: Any) -> Any:
        site_ids = [await _site_id(ctx, s) for s in site or []]
        return await ctx.accounts.create_user(
            email=email,
            name=name,
            role=role_value,
            password=password,
            organisation_id=org,
            site_ids=site_ids,
        )

    user = run_service(database_url, create)
    typer.echo(user.id)


async def _site_id(ctx: Any, key_or_id: str) -> str:
    from confide.errors import NotFound
    from confide.storage.scope import Scope

    if key_or_id.startswith("site_"):
        return str((await ctx.sites.by_key(key_or_id, serving=False)).id)
    try:
        return str((await ctx.sites.get(Scope.admin(), key_or_id)).id)
    except NotFound:
        raise NotFound(f"No such site: {key_or_id}") from None


@user_app.command("assign")
def user_assign(
    email: Annotated[str, typer.Option("--email")],
    site: Annotated[str, typer.Option("--site", help="Site key or id.")],
    database_url: DbOpt = DEFAULT_DATABASE_URL,
) -> None:
    """Assign a site to a user (operators answer the chats of their assigned sites)."""

    async def assign(ctx: Any) -> None:
        user_id = await ctx.accounts.user_id_by_email(email)
        await ctx.accounts.assign_site(user_id, await _site_id(ctx, site))

    run_service(database_url, assign)
    typer.echo("Assigned.")


@user_app.command("list")
def user_list(database_url: DbOpt = DEFAULT_DATABASE_URL) -> None:
    """List accounts: email, role, organisation (client staff) and name."""
    from confide.accounts.user_admin import list_users

    for a in run_service(database_url, lambda ctx: list_users(ctx.db)):
        typer.echo(f"{a.email}\t{a.role}\t{a.organisation or '-'}\t{a.name}")


@user_app.command("set-password")
def user_set_password(
    email: Annotated[str, typer.Option("--email")],
    password: PasswordOpt = None,
    database_url: DbOpt = DEFAULT_DATABASE_URL,
) -> None:
    """Give an account a new password (a forgotten one); ends its sessions, lifts a lockout."""
    from confide.accounts.user_admin import set_password

    if password is None:
        password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    secret = password
    ended = run_service(database_url, lambda ctx: set_password(ctx.db, email, secret))
    typer.echo(f"Password changed; {ended} session(s) signed out.")


@stats_app.command("rollup")
def stats_rollup(
    days: Annotated[
        int, typer.Option("--days", min=1, max=3660, help="How many days back from today.")
    ] = 2,
    database_url: DbOpt = DEFAULT_DATABASE_URL,
) -> None:
    """Recompute the daily analytics roll-ups (safe to interrupt and rerun)."""
    from datetime import timedelta

    from confide.clock import utcnow

    today = utcnow().date()
    wanted = [today - timedelta(days=n) for n in range(days - 1, -1, -1)]

    async def rollup(ctx: Any) -> int:
        await ctx.tracking.salts.rotate()  # past cookieless salts go with the schedule (R21)
        total = 0
        with typer.progressbar(wanted, label="Rolling up", show_pos=True) as bar:
            for day in bar:
                total += await ctx.reports.rollup([day])
        return total

    rows = run_service(database_url, rollup)
    typer.echo(f"{rows} daily rows written for {days} day(s).")


def main() -> None:
    app()
