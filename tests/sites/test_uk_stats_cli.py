"""``confide site configure --uk-stats-exception`` (R12): refused for a site outside the UK with
one clear line and no change; on for a UK site, audited."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from tests.sites.test_identity_cli import cli


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    workdir = tmp_path_factory.mktemp("uk_stats")
    assert cli(workdir, "migrate").returncode == 0
    org = cli(workdir, "org", "create", "Border Motors").stdout.strip()
    made = cli(
        workdir, "site", "create", "--org", org, "--name", "B", "--origin", "https://b.example"
    )
    assert made.returncode == 0, made.stderr
    return workdir, made.stdout.strip()


def stored(workdir: Path) -> tuple[tuple[str, int], list[str]]:
    with closing(sqlite3.connect(workdir / "confide.db")) as db:
        row = db.execute("SELECT country, uk_stats_exception FROM sites").fetchone()
        audit = [
            p for (p,) in db.execute(
                "SELECT purpose FROM audit_log WHERE action = 'config.site.uk_stats' ORDER BY seq"
            )
        ]  # fmt: skip
    return (row[0], row[1]), audit


def test_the_exception_is_refused_for_an_eu_site_and_set_for_a_uk_one(
    site: tuple[Path, str],
) -> None:
    workdir, key = site
    refused = cli(
        workdir, "site", "configure", "--site", key, "--country", "IE", "--uk-stats-exception"
    )
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "applies only to sites in the United Kingdom (country GB)" in refused.stderr
    assert "not to a site in IE" in refused.stderr
    assert stored(workdir) == (("GB", 0), [])

    on = cli(workdir, "site", "configure", "--site", key, "--uk-stats-exception")
    assert on.returncode == 0, on.stderr
    assert "country GB, UK statistics exception on" in on.stdout
    assert stored(workdir) == (("GB", 1), ["uk_stats_exception: False -> True"])

    leaving = cli(workdir, "site", "configure", "--site", key, "--country", "FR")
    assert leaving.returncode == 1 and "not to a site in FR" in leaving.stderr
    assert stored(workdir)[0] == ("GB", 1)
