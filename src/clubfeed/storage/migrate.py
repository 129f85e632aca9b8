"""Alembic, driven from code: no alembic.ini to find, the engine handed in."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
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


def head_revision() -> str:
    """The revision this code's schema is at."""
    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    assert head is not None, "the migrations have one head"
    return head


def known_revision(revision: str) -> bool:
    """Whether this code's migrations include `revision` (a newer clubfeed's are unknown)."""
    try:
        return ScriptDirectory(str(MIGRATIONS_DIR)).get_revision(revision) is not None
    except CommandError:
        return False


def current_revision(engine: Engine) -> str | None:
    """The revision the database's schema is at; None if it has none yet."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@dataclass(frozen=True)
class Upgrade:
    """What `upgrade` did: from which revision (None: an empty database) to which."""

    before: str | None
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


def upgrade(engine: Engine, revision: str = "head") -> Upgrade:
    """Bring the database to `revision` (the newest by default)."""
    before = current_revision(engine)
    command.upgrade(alembic_config(engine), revision)
    after = current_revision(engine)
    assert after is not None, "an upgraded database has a revision"
    return Upgrade(before, after)


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
