"""The real ``confide`` command line, run in subprocesses against a temporary SQLite file.

Every failure must exit non-zero with a one-line, human message on stderr, and never a traceback.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import shlex
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from confide.testing import free_port

PUBLIC_URL = "https://chat.confide.test"
SHOP = "https://shop.example"
T = TypeVar("T")


@dataclass
class Cli:
    workdir: Path
    database_url: str

    def run(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        input: str | None = None,
        database_url: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        full_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CONFIDE_")},
            "CONFIDE_DATABASE_URL": database_url or self.database_url,
            "NO_COLOR": "1",
            "COLUMNS": "200",
            **(env or {}),
        }
        return subprocess.run(
            [sys.executable, "-m", "confide", *args],
            env=full_env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=60,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            start_new_session=True,  # no controlling terminal: password prompts read stdin
        )

    def ok(self, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        result = self.run(*args, **kwargs)  # type: ignore[arg-type]
        assert result.returncode == 0, f"confide {' '.join(args)}: {result.stderr}"
        assert "Traceback" not in result.stderr
        return result


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    workdir = tmp_path_factory.mktemp("cli")
    return Cli(workdir, f"sqlite:///{workdir / 'confide.db'}")


@dataclass
class Seeded:
    org: str
    other_org: str
    site_key: str
    site_id: str
    other_site_key: str
    site_stderr: str

    def fill(self, command: str) -> str:
        return command.format(
            org=self.org, other_org=self.other_org, site=self.site_key, site_id=self.site_id,
            other_site=self.other_site_key,
        )  # fmt: skip


def _parallel(calls: dict[str, Callable[[], T]]) -> dict[str, T]:
    """Run independent CLI invocations at once: each is a process start, mostly waiting."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = {name: pool.submit(call) for name, call in calls.items()}
        return {name: future.result() for name, future in futures.items()}


def _argv(command: str) -> list[str]:
    return shlex.split(command)


@pytest.fixture(scope="module")
def seeded(cli: Cli) -> Seeded:
    """migrate → org create → site create, as an administrator would do it."""
    migrated = cli.ok("migrate")
    assert "up to date" in migrated.stdout
    first = _parallel(
        {
            "org": lambda: cli.ok("org", "create", "Acme Motors"),
            "other": lambda: cli.ok("org", "create", "Other Cars"),
            "dup": lambda: cli.ok(
                *_argv("user create --email dup@acme.example --name Dup --role admin"),
                "--password", "long-enough-1",
            ),
        }
    )  # fmt: skip
    org, other_org = first["org"].stdout.strip(), first["other"].stdout.strip()
    sites = _parallel(
        {
            "site": lambda: cli.ok(
                *_argv(f"site create --org {org} --name 'Acme Leeds' --origin {SHOP}"),
                *_argv("--origin https://www.shop.example/some/path"),
                *_argv(f"--greeting 'Hello from Acme!' --public-url {PUBLIC_URL}/"),
            ),
            "other": lambda: cli.ok(
                *_argv(f"site create --org {other_org} --name 'Other York'"),
                *_argv("--origin https://other.example"),
            ),
        }
    )  # fmt: skip
    site = sites["site"]
    site_id = re.search(r"Site id: (\S+)", site.stderr)
    assert site_id is not None, site.stderr
    return Seeded(
        org, other_org, site.stdout.strip(), site_id.group(1), sites["other"].stdout.strip(),
        site.stderr,
    )  # fmt: skip


@dataclass
class Step:
    command: str  # shell-like; {org}, {other_org}, {site}, {site_id}, {other_site} are filled in
    env: dict[str, str] = field(default_factory=dict)
    input: str | None = None


@dataclass
class Outcome:
    database_url: str
    results: list[subprocess.CompletedProcess[str]]

    @property
    def last(self) -> subprocess.CompletedProcess[str]:
        return self.results[-1]


PW = "--password long-enough-1"

#: Jobs that succeed. Each runs its steps in order on its own copy of the seeded database, so
#: jobs run in parallel without contending for SQLite's write lock.
JOBS: dict[str, list[Step]] = {
    "help": [Step("--help")],
    "bare": [Step("")],
    "help-user": [Step("user --help")],
    "migrate-again": [Step("migrate")],
    "org-list": [Step("org list")],
    "site-list": [Step("site list")],
    "site-env-public-url": [
        Step(f"site create --org {{org}} --name 'Acme York' --origin {SHOP}",
             env={"CONFIDE_PUBLIC_URL": "https://support.acme.example"})
    ],
    "user-admin": [Step(f"user create --email ada@acme.example --name Ada --role admin {PW}")],
    "user-operator-key": [
        Step(f"user create --email otto@acme.example --name Otto --role operator {PW}"
             " --site {site}")
    ],
    "user-operator-two-sites": [
        Step(f"user create --email olga@acme.example --name Olga --role operator {PW}"
             " --site {site_id} --site {other_site}")
    ],
    "user-client": [
        Step(f"user create --email cara@acme.example --name Cara --role client {PW}"
             " --org {org} --site {site}")
    ],
    "user-env-password": [
        Step("user create --email env@acme.example --name Env --role admin",
             env={"CONFIDE_PASSWORD": "password-from-env"})
    ],
    "user-prompted-password": [
        Step("user create --email prompt@acme.example --name Prompt --role admin",
             input="prompted-password\nprompted-password\n")
    ],
    "org-configure": [
        Step("org configure --org {org} --contract-start 2026-01-01 --contract-end 2027-06-30"
             " --retention-months 6 --behaviour-days 200 --end-of-contract return_then_delete"),
        Step("org configure --org {org} --retention-months 2"),  # refused: changes nothing
        Step("org configure --org {org} --auto-approve"),
    ],
    "user-set-password": [
        Step("user set-password --email DUP@acme.example --password brand-new-password"),
        Step("user list"),
    ],
    "user-assign": [
        Step(f"user create --email late@acme.example --name Late --role operator {PW}"),
        Step("user assign --email LATE@acme.example --site {site}"),
    ],
    # A client user stays within their organisation, whichever command assigns the site.
    "client-assign-other": [
        Step(f"user create --email inside@acme.example --name In --role client {PW} --org {{org}}"),
        Step("user assign --email inside@acme.example --site {other_site}"),
    ],
    # A refused --site must not leave a half-created user behind: the retry succeeds.
    "fail-then-retry": [
        Step(f"user create --email half@acme.example --name Half --role client {PW}"
             " --org {org} --site {other_site}"),
        Step(f"user create --email half@acme.example --name Half --role client {PW}"
             " --org {org} --site {site}"),
    ],
}  # fmt: skip

_USER = "user create --name X"
MYSQL = "mysql://root@localhost/confide"

#: (id, command, expected message on stderr). Placeholders as in :class:`Step`.
FAILURES: list[tuple[str, str, str]] = [
    ("unknown-role", f"{_USER} --email x1@acme.example --role boss {PW}", "Unknown role 'boss'"),
    ("short-password", f"{_USER} --email x2@acme.example --role admin --password short",
     "10 to 1024 characters"),
    ("bad-email", f"{_USER} --email not-an-email --role admin {PW}", "Not a valid email address"),
    ("duplicate-email", f"{_USER} --email DUP@acme.example --role admin {PW}", "already exists"),
    ("client-without-org", f"{_USER} --email x3@acme.example --role client {PW}",
     "belongs to an organisation"),
    ("operator-with-org", f"{_USER} --email x4@acme.example --role operator {PW} --org {{org}}",
     "Only client users belong to an organisation"),
    ("client-unknown-org", f"{_USER} --email x5@acme.example --role client {PW} --org nope",
     "No such organisation"),
    ("unknown-site-key",
     f"{_USER} --email x7@acme.example --role operator {PW} --site site_doesnotexist",
     "Unknown site key"),
    ("assign-unknown-user", "user assign --email ghost@acme.example --site {site}",
     "No such user"),
    ("site-unknown-org", f"site create --org no-such-org --name S --origin {SHOP}",
     "No such organisation"),
    ("site-ftp-origin", "site create --org {org} --name S --origin ftp://x", "Not an origin"),
    ("site-not-a-url", "site create --org {org} --name S --origin 'not a url'", "Not an origin"),
    ("site-port-out-of-range", "site create --org {org} --name S --origin https://a.example:99999",
     "Not an origin"),
    ("site-broken-ipv6", "site create --org {org} --name S --origin 'https://[::1'",
     "Not an origin"),
    ("site-wildcard", "site create --org {org} --name S --origin 'https://*.example'",
     "Wildcards are not supported"),
    ("site-bad-public-url",
     f"site create --org {{org}} --name S --origin {SHOP} --public-url 'javascript:alert(1)'",
     "--public-url must be an http(s) address"),
    ("site-no-origin", "site create --org {org} --name S", "Missing option '--origin'"),
    ("site-missing-org", f"site create --name S --origin {SHOP}", "Missing option '--org'"),
    ("user-missing-role", f"{_USER} --email x11@acme.example {PW}", "Missing option '--role'"),
    ("org-missing-name", "org create", "Missing argument"),
    ("set-password-unknown",
     "user set-password --email ghost@acme.example --password long-enough-2",
     "No such user"),
    ("set-password-short", "user set-password --email dup@acme.example --password short",
     "10 to 1024 characters"),
    ("keys-new-empty-name", "keys new ''", "A key name is 1 to 40"),
    ("keys-new-spaces", "keys new 'bad id with spaces'", "A key name is 1 to 40"),
    ("org-retention-too-short", "org configure --org {org} --retention-months 2",
     "at least 3 months"),
    ("org-contract-backwards",
     "org configure --org {org} --contract-start 2027-01-01 --contract-end 2026-01-01",
     "cannot end before it starts"),
    ("org-bad-date", "org configure --org {org} --contract-end 31/12/2026",
     "Invalid --contract-end"),
    ("org-configure-unknown", "org configure --org nope --behaviour-days 30",
     "No such organisation"),
    ("org-bad-end-of-contract", "org configure --org {org} --end-of-contract keep",
     "'delete' or 'return_then_delete'"),
    ("retention-report-nowhere", "retention run --report /nonexistent-dir/r.json", "no folder"),
    ("unknown-command", "frobnicate", "No such command"),
    ("serve-port-too-high", "serve --port 70000", "Invalid value for '--port'"),
    ("demo-port-too-high", "demo --port 99999", "Invalid value for '--port'"),
    ("migrate-mysql", f"migrate --database-url {MYSQL}", "unsupported database URL scheme 'mysql'"),
    ("serve-mysql", f"serve --database-url {MYSQL}", "unsupported database URL scheme 'mysql'"),
    ("migrate-unparseable-url", "migrate --database-url not-a-database-url", "URL"),
    ("org-unparseable-url", "org create X --database-url not-a-database-url", "URL"),
    ("postgres-unknown-role", "org list --database-url postgresql://nosuchrole@127.0.0.1:5432/test",
     "refused the login: role"),
    ("destination-unknown-org",
     "destination add --org nope --kind email --target a@b.example --region UK",
     "No such organisation"),
    ("unreachable-postgres", "org create X --database-url postgresql://nobody@127.0.0.1:1/x",
     "Cannot reach the database"),
    ("migrate-unwritable-path", "migrate --database-url sqlite:////nonexistent-dir/x/c.db",
     "folder for the SQLite file does not exist"),
    ("unmigrated-database", "org create X --database-url sqlite:///empty.db",
     "run `confide migrate`"),
    ("password-prompt-without-input", f"{_USER} --email x10@acme.example --role admin", "Abort"),
    # A bad address is reported before the password is asked for (no input given here).
    ("bad-email-before-prompt", f"{_USER} --email not-an-email --role admin",
     "Not a valid email address"),
]  # fmt: skip


#: Database URLs carrying a password, each wrong in its own way.
SECRET_URLS = {
    "unparseable": "postgresql//confide:s3cret-pw@db.internal/confide",
    "unsupported": "mysql://confide:s3cret-pw@db.internal/confide",
    "unreachable": "postgresql://confide:s3cret-pw@127.0.0.1:1/confide",
}


@pytest.fixture(scope="module")
def outcomes(cli: Cli, seeded: Seeded) -> dict[str, Outcome]:
    """Every job and failure case, run concurrently on private copies of the seeded database."""
    source = Path(cli.database_url.removeprefix("sqlite:///"))
    jobs = {**JOBS, **{f"fail:{name}": [Step(command)] for name, command, _ in FAILURES}}
    for name, url in SECRET_URLS.items():
        jobs[f"secret-url:{name}"] = [Step(f"org create X --database-url {url}")]

    def run(name: str, steps: list[Step]) -> Outcome:
        copy = source.with_name(f"job-{re.sub(r'[^a-z0-9]+', '-', name.lower())}.db")
        with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(copy)) as dst:
            src.backup(dst)  # consistent even if a WAL is still around
        url = f"sqlite:///{copy}"
        results = [
            cli.run(*_argv(seeded.fill(step.command)), env=step.env, input=step.input,
                    database_url=url)
            for step in steps
        ]  # fmt: skip
        return Outcome(url, results)

    with socket.socket() as busy:  # a port someone else is listening on
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        jobs["serve-busy-port"] = [Step(f"serve --port {busy.getsockname()[1]} --no-migrate")]
        return _parallel(
            {name: functools.partial(run, name, steps) for name, steps in jobs.items()}
        )


def _ok(outcome: Outcome) -> subprocess.CompletedProcess[str]:
    for result in outcome.results:
        assert result.returncode == 0, f"{result.args[3:]}: {result.stderr}"
        assert "Traceback" not in result.stdout + result.stderr
    return outcome.last


# --- help and the happy path ------------------------------------------------------------------


def test_help_lists_every_command(outcomes: dict[str, Outcome]) -> None:
    result = _ok(outcomes["help"])
    for command in ("serve", "migrate", "org", "site", "user", "demo"):
        assert re.search(rf"^\W*{command}\b", result.stdout, re.M), f"{command} not in help"
    bare = outcomes["bare"].last  # no arguments: the help, not a crash
    assert "Usage" in bare.stdout + bare.stderr
    assert "Traceback" not in bare.stdout + bare.stderr
    user_help = _ok(outcomes["help-user"]).stdout
    assert "create" in user_help and "assign" in user_help


def test_migrate_is_idempotent(outcomes: dict[str, Outcome]) -> None:
    assert "up to date" in _ok(outcomes["migrate-again"]).stdout


def test_org_create_prints_an_id(seeded: Seeded, outcomes: dict[str, Outcome]) -> None:
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", seeded.org)
    assert seeded.org != seeded.other_org
    listed = _ok(outcomes["org-list"]).stdout
    assert f"{seeded.org}\tAcme Motors" in listed
    assert f"{seeded.other_org}\tOther Cars" in listed


def test_org_configure_sets_the_contract_and_audits_it(
    seeded: Seeded, outcomes: dict[str, Outcome]
) -> None:
    import json

    outcome = outcomes["org-configure"]
    first, refused, last = outcome.results
    assert first.returncode == 0 and last.returncode == 0, first.stderr + last.stderr
    assert refused.returncode == 1 and "at least 3 months" in refused.stderr
    assert json.loads(last.stdout) == {
        "id": seeded.org,
        "name": "Acme Motors",
        "contract_start": "2026-01-01",
        "contract_end": "2027-06-30",
        "retention_months": 6,  # the refused change left it alone
        "behaviour_retention_days": 200,
        "end_of_contract": "return_then_delete",
        "privacy_auto_approve": True,
    }
    path = outcome.database_url.removeprefix("sqlite:///")
    with closing(sqlite3.connect(path)) as db:
        purposes = [
            p
            for (p,) in db.execute(
                "SELECT purpose FROM audit_log WHERE action = 'config.organisation.contract'"
                " AND organisation_id = ? ORDER BY seq",
                (seeded.org,),
            )
        ]
    assert len(purposes) == 2
    assert "contract_end: None -> 2027-06-30" in purposes[0]
    assert purposes[1] == "privacy_auto_approve: False -> True"


def test_user_set_password_and_list(outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes["user-set-password"]
    changed, listed = outcome.results
    assert changed.returncode == 0, changed.stderr
    assert changed.stdout.strip() == "Password changed; 0 session(s) signed out."
    assert "dup@acme.example\tadmin\t-\tDup" in listed.stdout.splitlines()
    path = outcome.database_url.removeprefix("sqlite:///")
    with closing(sqlite3.connect(path)) as db:
        (hashed,) = db.execute(
            "SELECT password_hash FROM users WHERE email = 'dup@acme.example'"
        ).fetchone()
        actions = [a for (a,) in db.execute("SELECT action FROM audit_log")]
    from confide.accounts.passwords import verify_password

    assert verify_password(hashed, "brand-new-password")
    assert "account.password_set" in actions


def test_site_create_prints_key_and_embed_snippet(
    seeded: Seeded, outcomes: dict[str, Outcome]
) -> None:
    assert re.fullmatch(r"site_[A-Za-z0-9_-]+", seeded.site_key), seeded.site_key
    snippet = f'<script async src="{PUBLIC_URL}/widget.js" data-site="{seeded.site_key}"></script>'
    assert snippet in seeded.site_stderr
    listed = _ok(outcomes["site-list"]).stdout
    row = next(line for line in listed.splitlines() if line.startswith(seeded.site_key))
    fields = row.split("\t")
    assert fields[1] == seeded.site_id
    assert fields[2] == "Acme Motors"
    assert fields[3] == "Acme Leeds"
    # Origins are normalised (path dropped) and de-duplicated.
    assert fields[4].split() == [SHOP, "https://www.shop.example"]


def test_site_create_takes_the_public_url_from_the_environment(
    outcomes: dict[str, Outcome],
) -> None:
    result = _ok(outcomes["site-env-public-url"])
    key = result.stdout.strip()
    assert re.fullmatch(r"site_[A-Za-z0-9_-]+", key), key
    assert (
        f'<script async src="https://support.acme.example/widget.js" data-site="{key}"></script>'
        in result.stderr
    )


def _assignments(database_url: str, user_id: str) -> tuple[str, str | None, set[str]]:
    """(role, organisation id, assigned site ids) of a user, read from the database."""
    from sqlalchemy import select

    from confide.accounts.models import SiteAssignment, User
    from confide.storage.engine import Database
    from confide.storage.scope import Scope

    async def read() -> tuple[str, str | None, set[str]]:
        db = Database(database_url)
        try:
            async with db.session(Scope.system()) as s:
                user = await s.get(User, user_id)
                assert user is not None
                sites = set(
                    (
                        await s.scalars(
                            select(SiteAssignment.site_id).where(SiteAssignment.user_id == user_id)
                        )
                    ).all()
                )
                return user.role, user.organisation_id, sites
        finally:
            await db.dispose()

    return asyncio.run(read())


def _user_id(outcome: Outcome) -> str:
    match = re.search(r"([A-Za-z0-9_-]{22})\s*$", _ok(outcome).stdout)
    assert match is not None, outcome.last.stdout
    return match.group(1)


def test_user_create_admin(outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes["user-admin"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", outcome.last.stdout.strip())
    assert _assignments(outcome.database_url, _user_id(outcome)) == ("admin", None, set())


def test_user_create_operator_with_site_key(seeded: Seeded, outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes["user-operator-key"]
    assert _assignments(outcome.database_url, _user_id(outcome)) == (
        "operator",
        None,
        {seeded.site_id},
    )


def test_user_create_operator_with_site_id_and_two_sites(
    seeded: Seeded, outcomes: dict[str, Outcome]
) -> None:
    outcome = outcomes["user-operator-two-sites"]
    role, org, sites = _assignments(outcome.database_url, _user_id(outcome))
    assert role == "operator" and org is None
    assert seeded.site_id in sites and len(sites) == 2


def test_user_create_client_with_org(seeded: Seeded, outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes["user-client"]
    assert _assignments(outcome.database_url, _user_id(outcome)) == (
        "client",
        seeded.org,
        {seeded.site_id},
    )


def test_user_create_password_from_environment_or_prompt(outcomes: dict[str, Outcome]) -> None:
    from confide.accounts.service import AccountService
    from confide.storage.engine import Database

    for job, email, password in (
        ("user-env-password", "env@acme.example", "password-from-env"),
        ("user-prompted-password", "prompt@acme.example", "prompted-password"),
    ):
        outcome = outcomes[job]
        _user_id(outcome)
        assert password not in outcome.last.stdout + outcome.last.stderr  # never echoed

        async def sign_in(
            url: str = outcome.database_url, e: str = email, p: str = password
        ) -> str:
            db = Database(url)
            try:
                accounts = AccountService(
                    db, max_failures=5, lockout=timedelta(minutes=1), session_ttl=timedelta(hours=1)
                )
                return (await accounts.sign_in(e, p)).principal.email
            finally:
                await db.dispose()

        assert asyncio.run(sign_in()) == email


def test_user_assign(seeded: Seeded, outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes["user-assign"]
    _ok(outcome)
    user_id = re.search(r"([A-Za-z0-9_-]{22})", outcome.results[0].stdout)
    assert user_id is not None
    assert "Assigned" in outcome.results[1].stdout
    assert _assignments(outcome.database_url, user_id.group(1))[2] == {seeded.site_id}


# --- failures: clean messages, non-zero exits, no tracebacks ----------------------------------


@pytest.mark.parametrize(
    ("name", "message"), [(f[0], f[2]) for f in FAILURES], ids=[f[0] for f in FAILURES]
)
def test_failures_are_clean(outcomes: dict[str, Outcome], name: str, message: str) -> None:
    result = outcomes[f"fail:{name}"].last
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output[-1500:]
    assert 'File "' not in output, output[-1500:]
    assert message.lower() in result.stderr.lower(), result.stderr[-1500:]
    # Nothing a script would capture as a result (only an interactive prompt may be shown).
    assert result.stdout.strip() in ("", "Password:"), result.stdout


def test_failed_user_create_stores_nothing(outcomes: dict[str, Outcome]) -> None:
    """A refused --site must not leave a half-created user behind: the retry succeeds."""
    failed, retry = outcomes["fail-then-retry"].results
    assert failed.returncode != 0
    assert "only be assigned their own sites" in failed.stderr
    assert retry.returncode == 0, retry.stderr


def test_a_client_user_is_not_assigned_another_organisations_site(
    outcomes: dict[str, Outcome],
) -> None:
    made, assigned = outcomes["client-assign-other"].results
    assert made.returncode == 0, made.stderr
    assert assigned.returncode != 0 and "Assigned" not in assigned.stdout
    assert "only be assigned their own sites" in assigned.stderr


def test_database_url_errors_never_echo_the_password(outcomes: dict[str, Outcome]) -> None:
    """Errors go to terminals and CI logs: a mistyped URL must not print its password."""
    for name in SECRET_URLS:
        result = outcomes[f"secret-url:{name}"].last
        output = result.stdout + result.stderr
        assert result.returncode != 0, name
        assert "Traceback" not in output, (name, output[-800:])
        assert "s3cret-pw" not in output, (name, result.stderr)


@pytest.mark.pg
def test_missing_postgres_database_is_not_blamed_on_migrations(cli: Cli) -> None:
    """`migrate` cannot create the database itself: it must not tell you to run `migrate`."""
    from confide.testing import PG_ADMIN_URL

    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/confide_no_such_database_xyz"
    results = _parallel(
        {
            "migrate": functools.partial(cli.run, "migrate", database_url=url),
            "org": functools.partial(cli.run, "org", "create", "X", database_url=url),
        }
    )
    for name, result in results.items():
        assert result.returncode != 0, name
        assert "Traceback" not in result.stderr, name
        assert "confide_no_such_database_xyz" in result.stderr, (name, result.stderr)
        assert "does not exist" in result.stderr, (name, result.stderr)
        assert "run `confide migrate`" not in result.stderr, (name, result.stderr)


def test_serve_on_a_busy_port_fails_cleanly(outcomes: dict[str, Outcome]) -> None:
    result = outcomes["serve-busy-port"].last
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    assert "is not available (Address already in use)" in result.stderr


# --- confide demo -----------------------------------------------------------------------------


@dataclass
class Demo:
    port: int
    output: Path
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def banner(self) -> str:
        return self.output.read_text()


@pytest.fixture(scope="module")
def demo(cli: Cli) -> Iterator[Demo]:
    port = free_port()
    workdir = cli.workdir / "demo"
    workdir.mkdir()
    output = workdir / "stdout.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONFIDE_")}
    with open(output, "wb") as out, open(workdir / "stderr.txt", "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "confide", "demo", "--port", str(port)],
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=err,
        )
    running = Demo(port, output, proc)
    try:
        deadline = time.monotonic() + 90  # a busy 2-core machine starts slowly
        while True:
            assert proc.poll() is None, (workdir / "stderr.txt").read_text()[-2000:]
            assert time.monotonic() < deadline, "confide demo did not become ready"
            try:
                if httpx.get(running.url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        yield running
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode in (0, -15), proc.returncode
    assert "Traceback" not in (workdir / "stderr.txt").read_text()


def _banner_value(banner: str, label: str) -> str:
    match = re.search(rf"{label}\s*:\s*(.+)", banner)
    assert match is not None, f"{label!r} not in the demo banner:\n{banner}"
    return match.group(1).strip()


def test_demo_prints_urls_and_login(demo: Demo) -> None:
    banner = demo.banner()
    assert _banner_value(banner, "Demo dealership page") == f"http://localhost:{demo.port}/demo/"
    assert _banner_value(banner, "Second dealership") == f"http://localhost:{demo.port}/demo/east"
    assert _banner_value(banner, "Operator console") == f"http://localhost:{demo.port}/console"
    email, _, password = _banner_value(banner, "Operator sign-in").partition("  /  ")
    assert "@" in email and len(password) >= 10
    assert re.fullmatch(r"site_[A-Za-z0-9_-]+", _banner_value(banner, "Site key"))
    assert _banner_value(banner, "Database") == "sqlite:///confide-demo.db"
    assert (demo.output.parent / "confide-demo.db").exists()  # in the working directory


def test_demo_page_embeds_the_widget_with_the_printed_key(demo: Demo) -> None:
    key = _banner_value(demo.banner(), "Site key")
    with httpx.Client(base_url=demo.url, timeout=10) as client:
        page = client.get("/demo/")
        assert page.status_code == 200
        snippet = f'<script async src="{demo.url}/widget.js" data-site="{key}"></script>'
        assert snippet in page.text
        for sub in ("/demo/used-cars", "/demo/contact"):
            assert client.get(sub).status_code == 200, sub
        assert client.get("/demo/no-such-page").status_code == 404
        # The widget may be embedded by the demo page, whichever host name the browser uses.
        frame = client.get("/widget/frame", params={"site": key})
        assert frame.status_code == 200
        csp = frame.headers["content-security-policy"]
        assert f"http://127.0.0.1:{demo.port}" in csp
        assert f"http://localhost:{demo.port}" in csp


def test_demo_printed_login_works(demo: Demo) -> None:
    banner = demo.banner()
    email, _, password = _banner_value(banner, "Operator sign-in").partition("  /  ")
    key = _banner_value(banner, "Site key")
    with httpx.Client(base_url=demo.url, timeout=10) as client:
        form = client.get("/console/login")
        csrf = re.search(r'name="csrf_token"\s+value="([^"]+)"', form.text)
        assert csrf is not None
        signed_in = client.post(
            "/console/login",
            data={"email": email, "password": password, "csrf_token": csrf.group(1)},
        )
        assert signed_in.status_code == 303, signed_in.text[:300]
        me = client.get("/api/me").json()
        assert me["role"] == "operator"
        sites = client.get("/api/sites").json()
        assert key in {s["key"] for s in sites}  # the operator answers the demo site


def test_demo_publishes_a_policy_and_keeps_its_mail_in_a_folder(demo: Demo) -> None:
    """The public pages' policy link works, and the emails a user would need (the policy
    notice to the sales manager here; verification codes, leads) are readable files."""
    assert _banner_value(demo.banner(), "Emails") == "written to demo-mail/ (no mail server needed)"
    policy = httpx.get(demo.url + "/policy", timeout=10)
    assert policy.status_code == 200 and "Confide privacy policy (demo)" in policy.text
    folder = demo.output.parent / "demo-mail"
    deadline = time.monotonic() + 10
    while not list(folder.glob("*.eml")) and time.monotonic() < deadline:
        time.sleep(0.05)
    (notice,) = [p.read_text() for p in folder.glob("*.eml")]
    assert "To: manager@demo.confide.dev" in notice and "demo-1" in notice
    assert oct(folder.stat().st_mode & 0o777) == "0o700"


def test_a_second_demo_on_the_same_port_says_so_before_anything_else(
    demo: Demo, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONFIDE_")}
    again = subprocess.run(
        [sys.executable, "-m", "confide", "demo", "--port", str(demo.port)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert again.returncode == 1
    assert "is not available" in again.stderr and "--port" in again.stderr
    assert "demo is running" not in again.stdout
    assert not (tmp_path / "confide-demo.db").exists()  # nothing was created either


def test_demo_seed_is_idempotent(tmp_path: Path) -> None:
    """A second ``confide demo`` reuses the site and user, adding the new port's origins."""
    from confide.cli.demo import seed_demo
    from confide.cli.runtime import run_service
    from confide.storage.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'demo.db'}"
    upgrade(url)
    first = run_service(url, lambda ctx: seed_demo(ctx, "http://localhost:8000", 8000))
    second = run_service(url, lambda ctx: seed_demo(ctx, "http://localhost:9000", 9000))
    assert first == second

    async def origins(ctx):  # type: ignore[no-untyped-def]
        from confide.storage.scope import Scope

        return [(s.key, s.allowed_origins) for s, _ in await ctx.sites.list_sites(Scope.admin())]

    sites = dict(run_service(url, origins))
    assert set(sites) == {first.site_key, first.east_site_key}  # Main Street and Eastside, once

    async def destinations(ctx):  # type: ignore[no-untyped-def]
        from confide.storage.scope import Scope

        return [d["target"] for d in await ctx.delivery_admin.list_destinations(Scope.admin())]

    # Leads go somewhere a new user can read them: an email in the demo's mail folder, once.
    assert run_service(url, destinations) == ["sales@demo-motors.example"]
    for allowed in sites.values():
        assert {"http://localhost:8000", "http://localhost:9000", "http://127.0.0.1:9000"} <= set(
            allowed
        )
