"""`confide keys …`: master-key rotation and new key material."""

from __future__ import annotations

from typing import Annotated

import typer

from confide.cli.runtime import fail
from confide.settings import DEFAULT_DATABASE_URL, Settings

keys_app = typer.Typer(
    help="Encryption keys (envelope encryption of personal data).", no_args_is_help=True
)

DbOpt = Annotated[
    str,
    typer.Option(
        "--database-url", envvar="CONFIDE_DATABASE_URL", help="sqlite:///file.db or postgresql://…"
    ),
]


@keys_app.command("new")
def new(kid: Annotated[str, typer.Argument(help="A name for the key, e.g. 2026-11.")]) -> None:
    """Print a new master key entry for CONFIDE_MASTER_KEYS (put it first, keep the old after)."""
    from confide.crypto.vault import new_master_key_spec

    try:
        typer.echo(new_master_key_spec(kid))
    except ValueError as exc:
        fail(str(exc))


@keys_app.command("rotate")
def rotate(database_url: DbOpt = DEFAULT_DATABASE_URL) -> None:
    """Re-wrap every organisation key under the current (first) master key, without downtime.

    Data keys and data are untouched; old master keys may be removed from the configuration once
    this has run. Without configured master keys, a new development key is generated.
    """
    from confide.crypto.vault import new_master_key_spec, parse_master_keys
    from confide.storage.engine import Database

    settings = Settings(database_url=database_url)
    try:
        db = Database(
            settings.database_url,
            keystore_url=settings.keystore_url or None,
            master_keys=settings.master_keys or None,
        )
    except ValueError as exc:
        fail(str(exc))
    vault = db.vault
    if not settings.master_keys:
        kid, secret = parse_master_keys(
            new_master_key_spec(f"dev{len(vault.store.dev_masters()) + 1}")
        )[0]
        vault.store.add_dev_master(kid, secret)
        vault.make_current(kid, secret)
    total = len(vault.store.org_keys())
    done = vault.rotate()
    typer.echo(f"Re-wrapped {done} of {total} organisation key(s) under the current master key.")
