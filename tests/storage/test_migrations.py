"""Migrations, on SQLite and PostgreSQL: empty → head → base → head, and they match the models.

``compare_metadata`` is what ``alembic revision --autogenerate`` would write: an empty diff means
the models and the migrations describe the same schema (a model change without its migration, or
a migration edited by hand into disagreement, fails here).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from confide.storage.engine import create_engine
from confide.storage.migrate import alembic_config, downgrade, upgrade
from confide.storage.models import Base
from confide.testing import postgres_database


@pytest.fixture(params=["sqlite", pytest.param("pg", marks=pytest.mark.pg)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
    else:
        with postgres_database() as url:
            yield url


def _inspect(connection: Connection) -> dict[str, Any]:
    """Tables, the revision and the schema diff against the models, in one connection."""
    context = MigrationContext.configure(
        connection,
        opts={"compare_type": True, "render_as_batch": connection.dialect.name == "sqlite"},
    )
    inspector = inspect(connection)
    tables = set(inspector.get_table_names())
    return {
        "tables": tables - {"alembic_version"},
        "revision": context.get_current_revision(),
        "diff": compare_metadata(context, Base.metadata),
        "indexes": {t: {i["name"] for i in inspector.get_indexes(t)} for t in sorted(tables)},
    }


def state(url: str) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        engine = create_engine(url)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(_inspect)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def head() -> str:
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    assert len(heads) == 1, f"the migration history has branched: heads {heads}"
    return heads[0]


MODEL_TABLES = set(Base.metadata.tables)


def test_one_linear_history() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    revisions = list(script.walk_revisions())
    assert head()
    bases = [r.revision for r in revisions if r.down_revision is None]
    assert len(bases) == 1, f"more than one base revision: {bases}"


def test_upgrade_downgrade_upgrade_round_trip(empty_url: str) -> None:
    assert state(empty_url)["tables"] == set()

    upgrade(empty_url)
    first = state(empty_url)
    assert first["revision"] == head()
    assert first["tables"] == MODEL_TABLES
    assert first["diff"] == [], f"migrations and models disagree after upgrade: {first['diff']}"

    upgrade(empty_url)  # idempotent at head
    assert state(empty_url)["revision"] == head()

    downgrade(empty_url, "base")
    down = state(empty_url)
    assert down["tables"] == set(), f"downgrade to base left tables behind: {down['tables']}"
    assert down["revision"] is None

    upgrade(empty_url)
    again = state(empty_url)
    assert again["revision"] == head()
    assert again["tables"] == MODEL_TABLES
    assert again["diff"] == [], f"migrations and models disagree after re-upgrade: {again['diff']}"
    assert again["indexes"] == first["indexes"], "the second upgrade built a different schema"


def test_the_shared_fixture_database_matches_the_models(database_url: str) -> None:
    """The database every integration test runs on (tests/conftest.py) is at head, no diff."""
    current = state(database_url)
    assert current["revision"] == head()
    assert current["diff"] == [], f"migrations and models disagree: {current['diff']}"
