"""``confide site configure --tracking-identity/--salt-rotation`` (R21), as an operator runs it:
a subprocess against a SQLite file. A bad value is one clear line on stderr and changes nothing;
a change is in the audit log."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest


def cli(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONFIDE_")}
    env["CONFIDE_DATABASE_URL"] = f"sqlite:///{workdir / 'confide.db'}"
    return subprocess.run(
        [sys.executable, "-m", "confide", *args],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    workdir = tmp_path_factory.mktemp("identity")
    assert cli(workdir, "migrate").returncode == 0
    org = cli(workdir, "org", "create", "Quiet Motors").stdout.strip()
    made = cli(
        workdir, "site", "create", "--org", org, "--name", "Q", "--origin", "https://q.example"
    )
    assert made.returncode == 0, made.stderr
    return workdir, made.stdout.strip()


def stored(workdir: Path) -> tuple[tuple[str, str], list[str]]:
    with closing(sqlite3.connect(workdir / "confide.db")) as db:
        row = db.execute("SELECT tracking_identity, salt_rotation FROM sites").fetchone()
        audit = [
            p for (p,) in db.execute(
                "SELECT purpose FROM audit_log WHERE action = 'config.site.identity' ORDER BY seq"
            )
        ]  # fmt: skip
    return (row[0], row[1]), audit


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--tracking-identity", "fingerprint"), "tracking identity must be 'cookie' or"),
        (("--tracking-identity", "cookieless", "--salt-rotation", "yearly"),
         "salt rotation must be 'daily', 'weekly' or 'monthly'"),
    ],
)  # fmt: skip
def test_a_bad_value_is_refused_and_changes_nothing(
    site: tuple[Path, str], args: tuple[str, ...], message: str
) -> None:
    workdir, key = site
    before = stored(workdir)
    result = cli(workdir, "site", "configure", "--site", key, *args)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
    assert stored(workdir) == before


def test_cookieless_with_a_weekly_salt_is_set_and_audited(site: tuple[Path, str]) -> None:
    workdir, key = site
    result = cli(
        workdir,
        "site",
        "configure",
        "--site",
        key,
        "--tracking-identity",
        "cookieless",
        "--salt-rotation",
        "weekly",
    )
    assert result.returncode == 0, result.stderr
    assert "identity cookieless (salt weekly)" in result.stdout
    assert stored(workdir) == (
        ("cookieless", "weekly"),
        ["salt_rotation: daily -> weekly; tracking_identity: cookie -> cookieless"],
    )
