"""`confide subprocessor|breach|policy|newsletter …`: the accountability records, for our staff.

Thin over :class:`~confide.accountability.service.Accountability`, as the API is. The command line
runs on the server as our staff: it acts as the system in the audit log.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Annotated, Any

import typer

from confide.cli.runtime import fail, run_service
from confide.settings import DEFAULT_DATABASE_URL

subprocessor_app = typer.Typer(
    help="Sub-processors (art. 28(2)): announce, list.", no_args_is_help=True
)
breach_app = typer.Typer(
    help="The breach register (art. 33): record, notify.", no_args_is_help=True
)
policy_app = typer.Typer(help="Privacy policy versions: publish, list.", no_args_is_help=True)
newsletter_app = typer.Typer(help="The newsletter to confirmed subscribers.", no_args_is_help=True)

DbOpt = Annotated[
    str,
    typer.Option(
        "--database-url", envvar="CONFIDE_DATABASE_URL", help="sqlite:///file.db or postgresql://…"
    ),
]
PublicUrlOpt = Annotated[
    str,
    typer.Option(
        "--public-url",
        envvar="CONFIDE_PUBLIC_URL",
        help="Where this server is reached (emails link back to it), e.g. https://chat.example.com.",
    ),
]


def register(app: typer.Typer) -> None:
    app.add_typer(subprocessor_app, name="subprocessor")
    app.add_typer(breach_app, name="breach")
    app.add_typer(policy_app, name="policy")
    app.add_typer(newsletter_app, name="newsletter")


def _acct(ctx: Any) -> Any:
    from confide.accountability.service import Accountability

    return Accountability(ctx.db, ctx.settings)


def _when(raw: str, what: str) -> datetime:
    """ISO 8601; a date means midnight UTC, a time without a zone means UTC."""
    try:
        if len(raw.strip()) == 10:
            return datetime.combine(date.fromisoformat(raw.strip()), time(0), tzinfo=UTC)
        value = datetime.fromisoformat(raw.strip())
    except ValueError:
        fail(f"{what} must be a date or time like 2026-03-31 or 2026-03-31T14:05.")
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _public_url(raw: str) -> str:
    if not raw.startswith(("https://", "http://")):
        fail("Set --public-url (or CONFIDE_PUBLIC_URL): the emails link back to this server.")
    return raw.rstrip("/")


# ---- sub-processors --------------------------------------------------------------------------


@subprocessor_app.command("add")
def subprocessor_add(
    name: Annotated[str, typer.Option("--name", help="The company, e.g. 'Postmark'.")],
    region: Annotated[str, typer.Option("--region", help="UK, EU, EEA, US, CA, AU or OTHER.")],
    purpose: Annotated[str, typer.Option("--purpose", help="What it does for us.")],
    category: Annotated[
        list[str],
        typer.Option("--category", help="Data category it handles (repeatable): user.contact, …"),
    ],
    effective: Annotated[
        str | None,
        typer.Option("--effective", help="In effect from (default: 30 days from now)."),
    ] = None,
    public_url: PublicUrlOpt = "",
    database_url: DbOpt = DEFAULT_DATABASE_URL,
) -> None:
    """Announce a sub-processor: every client's inbox and client admins are told before it
    takes effect. Refused outside the EU/UK when it would handle personal data."""
    when = _when(effective, "--effective") if effective else None
    portal = public_url.rstrip("/") + "/portal/inbox" if public_url else None
    done = run_service(
        database_url,
        lambda ctx: _acct(ctx).subprocessors.add(
            None,
            name=name,
            region=region,
            purpose=purpose,
            categories=category,
            effective_at=when,
            portal_url=portal,
        ),
    )
    sp = done.subprocessor
    typer.echo(sp["id"])
    typer.echo(
        f"{sp['name']} ({sp['region']}) announced to {done.organisations} organisation(s), in "
        f"effect from {sp['effective_at'][:10]}; {done.emails_sent} email(s) sent, "
        f"{done.emails_failed} failed.",
        err=True,
    )


@subprocessor_app.command("list")
def subprocessor_list(database_url: DbOpt = DEFAULT_DATABASE_URL) -> None:
    """Every sub-processor with its status, and the objections recorded."""
    for sp in run_service(database_url, lambda ctx: _acct(ctx).subprocessors.listing(None)):
        typer.echo(
            f"{sp['id']}\t{sp['name']}\t{sp['region']}\t{sp['status']}\t"
            f"{sp['effective_at'][:10]}\t{','.join(sp['categories'])}"
        )
        for o in sp["objections"]:
            typer.echo(
                f"  objection\t{o['organisation_name']}\t{o['user_email'] or '-'}\t"
                f"{o['created_at'][:16]}\t{o['reason']}"
            )


# ---- breaches --------------------------------------------------------------------------------


@breach_app.command("record")
def breach_record(
    nature: Annotated[str, typer.Option("--nature", help="What happened (art. 33(3)(a)).")],
    category: Annotated[list[str], typer.Option("--category", help="Data category (repeatable).")],
    subjects: Annotated[int, typer.Option("--subjects", min=0, help="Approx. data subjects.")],
    records: Annotated[int, typer.Option("--records", min=0, help="Approx. records.")],
    consequences: Annotated[str, typer.Option("--consequences", help="Likely consequences.")],
    measures: Annotated[str, typer.Option("--measures", help="Measures taken or proposed.")],
    contact_name: Annotated[str, typer.Option("--contact-name", help="Our contact point.")],
    contact_email: Annotated[str, typer.Option("--contact-email", help="Its email address.")],
    discovered: Annotated[str, typer.Option("--discovered", help="When (ISO 8601, UTC).")],
    org: Annotated[list[str], typer.Option("--org", help="Affected organisation (repeatable).")],
    notify: Annotated[
        bool, typer.Option("--notify/--no-notify", help="Notify the organisations now.")
    ] = False,
    public_url: PublicUrlOpt = "",
    database_url: DbOpt = DEFAULT_DATABASE_URL,
) -> None:
    """Record a personal data breach in the register (and notify at once with --notify)."""
    at = _when(discovered, "--discovered")

    async def go(ctx: Any) -> dict[str, Any]:
        acct = _acct(ctx)
        breach: dict[str, Any] = await acct.breaches.record(
            None,
            nature=nature,
            categories=category,
            subjects_approx=subjects,
            records_approx=records,
            consequences=consequences,
            measures=measures,
            contact_name=contact_name,
            contact_email=contact_email,
            discovered_at=at,
            organisation_ids=org,
        )
        if notify:
            portal = public_url.rstrip("/") + "/portal/inbox" if public_url else None
            breach = await acct.breaches.notify(None, breach["id"], portal_url=portal)
        return breach

    breach = run_service(database_url, go)
    typer.echo(breach["id"])
    _echo_times(breach)


@breach_app.command("notify")
def breach_notify(
    breach_id: Annotated[str, typer.Argument(help="The breach's id.")],
    public_url: PublicUrlOpt = "",
    database_url: DbOpt = DEFAULT_DATABASE_URL,
) -> None:
    """Notify every affected organisation not notified yet (email + portal inbox)."""
    portal = public_url.rstrip("/") + "/portal/inbox" if public_url else None
    breach = run_service(
        database_url, lambda ctx: _acct(ctx).breaches.notify(None, breach_id, portal_url=portal)
    )
    _echo_times(breach)


@breach_app.command("list")
def breach_list(database_url: DbOpt = DEFAULT_DATABASE_URL) -> None:
    """The register, newest discovery first, with the time to notify each organisation."""
    for breach in run_service(database_url, lambda ctx: _acct(ctx).breaches.listing(None)):
        typer.echo(f"{breach['id']}\tdiscovered {breach['discovered_at'][:16]}\t{breach['nature']}")
        _echo_times(breach)


def _echo_times(breach: dict[str, Any]) -> None:
    for o in breach["organisations"]:
        if o["notified_at"] is None:
            typer.echo(f"  {o['organisation_name']}: not notified yet", err=True)
        else:
            late = "" if o["within_target"] else f" (over the {breach['target_hours']} h target)"
            sent = (
                f"{o['emails_sent']} email(s)"
                if o["emails_sent"]
                else "NO email reached them (portal inbox only): check the mail relay"
            )
            typer.echo(
                f"  {o['organisation_name']}: notified {o['notified_at'][:16]}, "
                f"{o['time_to_notify']} after discovery{late}; {sent}",
                err=True,
            )


# ---- policy versions -------------------------------------------------------------------------


@policy_app.command("publish")
def policy_publish(
    version: Annotated[str, typer.Option("--version", help="e.g. v2 (never reused).")],
    file: Annotated[
        Path, typer.Option("--file", exists=True, dir_okay=False, help="The policy text.")
    ],
    title: Annotated[
        str | None, typer.Option("--title", help="Default: 'Privacy policy V'.")
    ] = None,
    summary: Annotated[
        str | None, typer.Option("--summary", help="What changed, in a sentence or two.")
    ] = None,
    public_url: PublicUrlOpt = "",
    database_url: DbOpt = DEFAULT_DATABASE_URL,
) -> None:
    """Publish an immutable policy version; client users and subscribers are told."""
    base = _public_url(public_url)
    text = file.read_text(encoding="utf-8")
    done = run_service(
        database_url,
        lambda ctx: _acct(ctx).policies.publish(
            None, version=version, text=text, title=title, summary=summary, base_url=base
        ),
    )
    typer.echo(
        f"Published {done.policy['version']} (sha256 {done.policy['text_sha256'][:16]}…) to "
        f"{done.organisations} organisation inbox(es); {done.emails_sent} email(s) sent "
        f"({done.subscribers} subscriber(s)), {done.emails_failed} failed."
    )


@policy_app.command("list")
def policy_list(database_url: DbOpt = DEFAULT_DATABASE_URL) -> None:
    """Published versions, newest first."""
    for v in run_service(database_url, lambda ctx: _acct(ctx).policies.versions()):
        typer.echo(
            f"{v['version']}\t{v['published_at'][:16]}\t{v['text_sha256'][:16]}\t{v['title']}"
        )


# ---- newsletter ------------------------------------------------------------------------------


@newsletter_app.command("send")
def newsletter_send(
    subject: Annotated[str, typer.Option("--subject")],
    file: Annotated[Path, typer.Option("--file", exists=True, dir_okay=False, help="Plain text.")],
    public_url: PublicUrlOpt = "",
    database_url: DbOpt = DEFAULT_DATABASE_URL,
) -> None:
    """Email every confirmed subscriber, each with a one-click unsubscribe link."""
    base = _public_url(public_url)
    body = file.read_text(encoding="utf-8")
    done = run_service(
        database_url,
        lambda ctx: _acct(ctx).newsletter.send(None, subject=subject, body=body, base_url=base),
    )
    typer.echo(
        f"Sent to {done['sent']} of {done['subscribers']} subscriber(s); {done['failed']} failed."
    )
