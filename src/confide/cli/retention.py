"""`confide retention run` and `confide hold …`: the purge and legal holds from the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from confide.cli.runtime import run_service
from confide.settings import DEFAULT_DATABASE_URL

retention_app = typer.Typer(help="Retention: the purge and its report.", no_args_is_help=True)
hold_app = typer.Typer(help="Legal holds that suspend purges and erasure.", no_args_is_help=True)

DbOpt = Annotated[
    str,
    typer.Option(
        "--database-url", envvar="CONFIDE_DATABASE_URL", help="sqlite:///file.db or postgresql://…"
    ),
]


@retention_app.command("run")
def run(
    database_url: DbOpt = DEFAULT_DATABASE_URL,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report only; remove nothing.")
    ] = False,
    report: Annotated[
        Path | None, typer.Option("--report", help="Also write the report as JSON here.")
    ] = None,
    exports: Annotated[
        Path | None,
        typer.Option(
            "--exports",
            help="Where contract-end return bundles are written (default: CONFIDE_EXPORTS_DIR, "
            "the same folder the server's own purge uses).",
        ),
    ] = None,
) -> None:
    """Apply the retention rules now, in batches (safe to interrupt and run again)."""
    from confide.retention.purge import Purger
    from confide.settings import Settings

    if report is not None and not report.parent.is_dir():
        # Checked before the run: a report that cannot be written must not follow a purge.
        raise typer.BadParameter(f"no folder {report.parent} for the report", param_hint="--report")
    exports = exports or Path(Settings().exports_dir)

    def progress(stage: str, n: int) -> None:
        typer.echo(f"  {stage}: {n:,}", err=True)

    result = run_service(
        database_url,
        lambda ctx: Purger(ctx.db, exports_dir=exports).run(dry_run=dry_run, progress=progress),
    )
    title = "Dry run: would remove" if dry_run else "Removed"
    typer.echo(f"{title} (run {result.id}, as of {result.as_of:%Y-%m-%d %H:%M} UTC):")
    if not result.report:
        typer.echo("  nothing is due.")
    for f in result.report:
        mark = "HELD " if f["held"] else ""
        typer.echo(
            f"  {mark}{f['organisation_id']}  {f['rule']:<12} {f['store']:<16} "
            f"{f['rows']:>8,}  {f['reason']}"
        )
    if report is not None:
        report.write_text(
            json.dumps({"run": result.id, "dry_run": dry_run, "findings": result.report}, indent=2)
        )


@hold_app.command("place")
def place(
    organisation: Annotated[str, typer.Option("--org", help="Organisation id.")],
    kind: Annotated[str, typer.Option("--kind", help="person, lead or organisation.")],
    owner: Annotated[str, typer.Option("--owner", help="Who is accountable for the hold.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (e.g. a court order).")],
    target: Annotated[str, typer.Option("--target", help="Person or lead id.")] = "",
    review_days: Annotated[int, typer.Option("--review-days", min=1, max=730)] = 90,
    database_url: DbOpt = DEFAULT_DATABASE_URL,
) -> None:
    """Place a legal hold; prints its id."""
    from confide.retention import holds

    hold = run_service(
        database_url,
        lambda ctx: holds.place(
            ctx.db,
            organisation_id=organisation,
            kind=kind,
            target_id=target,
            owner=owner,
            reason=reason,
            review_days=review_days,
        ),
    )
    typer.echo(hold.id)


@hold_app.command("release")
def release(hold_id: str, database_url: DbOpt = DEFAULT_DATABASE_URL) -> None:
    """Release a legal hold."""
    from confide.retention import holds

    run_service(database_url, lambda ctx: holds.release(ctx.db, hold_id))
    typer.echo("Released.")


@hold_app.command("list")
def list_(database_url: DbOpt = DEFAULT_DATABASE_URL) -> None:
    """Active legal holds (and which are due for review)."""
    from confide.retention import holds

    rows = run_service(database_url, lambda ctx: holds.active(ctx.db))
    if not rows:
        typer.echo("No active legal holds.")
    for h in rows:
        due = "  REVIEW DUE" if h["review_due"] else ""
        typer.echo(
            f"{h['id']}  {h['kind']:<12} {h['target']}  owner={h['owner']}  "
            f"review {h['review_at']}{due}"
        )
