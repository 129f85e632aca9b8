"""A fresh database per backend, set up through the `clubfeed` CLI as an operator would."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError

from bench.client import BenchError
from bench.servers import CLUBFEED

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BACKENDS = ("sqlite", "postgresql")


@dataclass(frozen=True)
class Credentials:
    business_id: int
    shared_secret: str
    ingest_key: str


def pg_base() -> URL:
    base = make_url(os.environ.get("CLUBFEED_TEST_PG_URL") or DEFAULT_PG_URL)
    return base.set(drivername="postgresql+psycopg")


def _admin_url(base: URL) -> URL:
    """The base URL's database if it exists, else the server's `postgres` database."""
    for candidate in (base, base.set(database="postgres")):
        engine = create_engine(candidate)
        try:
            with engine.connect():
                return candidate
        except OperationalError:
            continue
        finally:
            engine.dispose()
    raise BenchError(f"Cannot reach PostgreSQL at {base.render_as_string(hide_password=True)}")


@contextmanager
def fresh(backend: str, workdir: Path) -> Iterator[str]:
    """The URL of a new, empty database, dropped (or deleted) afterwards."""
    if backend == "sqlite":
        path = workdir / "clubfeed-bench.db"
        try:
            yield f"sqlite:///{path}"
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    admin = create_engine(_admin_url(pg_base()), isolation_level="AUTOCOMMIT")
    name = f"clubfeed_bench_{os.getpid()}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield pg_base().set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def cli(url: str, *args: str) -> Any:
    """Run `clubfeed --database-url URL ARGS…`; the parsed JSON it prints, if any."""
    done = subprocess.run(
        [str(CLUBFEED), "--database-url", url, *args], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise BenchError(f"clubfeed {' '.join(args)} failed:\n{done.stderr}")
    return json.loads(done.stdout) if "--json" in args else None


def create_business(url: str, name: str) -> Credentials:
    made = cli(url, "business", "create", name, "--json")
    return Credentials(made["id"], made["shared_secret"], made["ingest_key"])


def libpq_url(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as psycopg's own connection string."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def sqlite_path(url: str) -> str:
    database = make_url(url).database
    assert database is not None
    return database


def settle(backend: str, url: str) -> None:
    """Bring the freshly loaded tables to a steady state before anything is timed.

    PostgreSQL: VACUUM ANALYZE, what autovacuum does soon after a bulk load (statistics,
    visibility map, hint bits). SQLite: checkpoint the WAL into the main file.
    """
    if backend == "postgresql":
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            conn.execute("VACUUM (ANALYZE)")
        return
    with sqlite3.connect(sqlite_path(url)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def server_version(backend: str, url: str) -> str:
    if backend == "postgresql":
        with psycopg.connect(libpq_url(url)) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return f"PostgreSQL {row[0] if row else '?'}"
    return f"SQLite {sqlite3.sqlite_version}"
