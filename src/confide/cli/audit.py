"""`confide audit verify`: check the audit log's hash chain end to end."""

from __future__ import annotations

from typing import Annotated

import typer

from confide.cli.runtime import fail, run_service
from confide.settings import DEFAULT_DATABASE_URL

audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)

DbOpt = Annotated[
    str,
    typer.Option(
        "--database-url", envvar="CONFIDE_DATABASE_URL", help="sqlite:///file.db or postgresql://…"
    ),
]


@audit_app.command("verify")
def verify(database_url: DbOpt = DEFAULT_DATABASE_URL) -> None:
    """Detect a changed, removed or reordered entry; exit code 1 if the chain is broken."""
    from confide.audit.log import verify as verify_chain

    checked, problems = run_service(database_url, lambda ctx: verify_chain(ctx.db))
    if problems:
        for p in problems[:50]:
            typer.secho(f"entry {p.seq}: {p.reason}", fg=typer.colors.RED, err=True)
        fail(f"The audit log is NOT intact: {len(problems)} problem(s) in {checked} entries.")
    typer.echo(f"The audit log is intact: {checked} entries, every link and hash checks out.")
