"""Alembic, driven from code: no alembic.ini to find, the engine handed in."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from clubfeed.storage.outages import unavailable

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(engine: Engine) -> Config:
    """An Alembic config that migrates `engine`'s database with clubfeed's migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to `revision` (the newest by default)."""
    command.upgrade(alembic_config(engine), revision)


SchemaStatus = Literal["current", "newer", "behind", "missing"]


@cache
def _code_revisions() -> tuple[frozenset[str], frozenset[str]]:
    """This code's migration heads, and every revision it knows (read once per process)."""
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    return frozenset(script.get_heads()), frozenset(r.revision for r in script.walk_revisions())


def schema_status(conn: Connection) -> SchemaStatus:
    """Where the database's schema stands against this code's migrations, in one query.

    `newer` is a revision this code does not know: a newer clubfeed migrated the
    database (as during a rollback), and this one keeps serving. `missing` means the
    database was never migrated.
    """
    try:
        stamped = frozenset(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    except DBAPIError as exc:
        if unavailable(exc):
            raise
        return "missing"  # no alembic_version table
    heads, known = _code_revisions()
    if not stamped:
        return "missing"
    if stamped == heads:
        return "current"
    return "behind" if stamped <= known else "newer"
