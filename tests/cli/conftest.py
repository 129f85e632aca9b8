"""Fixtures of the CLI tests: databases of their own per backend, which only the CLI migrates,
and a real HTTP server on them to read back what the CLI wrote.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text

from clubfeed.settings import Settings
from clubfeed.storage.engine import make_engine
from tests.clikit import clubfeed
from tests.conftest import BACKENDS, Server
from tests.factories import Api, new_tenant


class Databases:
    """Empty databases for the CLI to build its schema in; PostgreSQL ones are dropped at the end."""

    def __init__(self, request: pytest.FixtureRequest, folder: Path) -> None:
        self.request = request
        self.folder = folder
        self.pg_names: list[str] = []
        self._admin: Engine | None = None

    @property
    def admin(self) -> Engine:
        if self._admin is None:
            pg_url: str = self.request.getfixturevalue("pg_url")
            self._admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
        return self._admin

    def new(self, backend: str) -> str:
        name = f"clubfeed_cli_{uuid.uuid4().hex[:12]}"
        if backend == "sqlite":
            return f"sqlite:///{self.folder / name}.db"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self.pg_names.append(name)
        return self.admin.url.set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        if self._admin is None:
            return
        with self._admin.connect() as conn:
            for name in self.pg_names:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self._admin.dispose()


@pytest.fixture(scope="module")
def databases(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Databases]:
    made = Databases(request, tmp_path_factory.mktemp("cli-db"))
    yield made
    made.drop_all()


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, databases: Databases) -> str:
    """A database with no schema yet."""
    return databases.new(request.param)


@pytest.fixture(scope="module", params=BACKENDS)
def cli_url(request: pytest.FixtureRequest, databases: Databases) -> str:
    """A database migrated by `clubfeed db upgrade`, shared by this module's tests."""
    url = databases.new(request.param)
    result = clubfeed(url, "db", "upgrade")
    assert result.exit_code == 0, result.stderr
    return url


@pytest.fixture(scope="module")
def engine(cli_url: str) -> Iterator[Engine]:
    made = make_engine(cli_url, pool_size=2)
    yield made
    made.dispose()


@pytest.fixture(scope="module")
def http(cli_url: str) -> Iterator[httpx.Client]:
    """A client of the API served on the CLI's database."""
    with (
        Server(Settings(database_url=cli_url)) as server,
        httpx.Client(base_url=server.base_url, timeout=60) as client,
    ):
        yield client


@pytest.fixture
def api(http: httpx.Client, engine: Engine) -> Api:
    """A fresh business (and integrator) on the CLI's database, so a test sees only its records."""
    return Api(http, new_tenant(engine))
