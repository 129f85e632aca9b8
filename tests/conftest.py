"""Fixtures: a real SQLite file and a real PostgreSQL database per run, and a real HTTP server on each.

Every test that takes `db` or `api` runs once per backend. Tests isolate by
creating their own business, so one migrated database serves the whole run.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from clubfeed.app import create_app
from clubfeed.settings import Settings
from clubfeed.storage.engine import make_engine
from clubfeed.storage.migrate import upgrade
from clubfeed.web import serving
from tests.consolekit import console_settings
from tests.factories import Api, Tenant, new_integrator, new_tenant

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this run, dropped at the end."""
    base = make_url(os.environ.get("CLUBFEED_TEST_PG_URL") or DEFAULT_PG_URL)
    if base.drivername == "postgresql":
        base = base.set(drivername="postgresql+psycopg")
    name = f"clubfeed_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'clubfeed.db'}"


@pytest.fixture(scope="session", params=BACKENDS)
def db_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue("pg_url" if request.param == "postgresql" else "sqlite_url")
    return url


_migrated: dict[str, Engine] = {}


@pytest.fixture(scope="session")
def db(db_url: str) -> Iterator[Engine]:
    """A migrated engine on this backend."""
    if db_url not in _migrated:
        engine = make_engine(db_url)
        upgrade(engine)
        _migrated[db_url] = engine
    yield _migrated[db_url]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """The app served by uvicorn, configured as `clubfeed serve` does, on a loopback port."""

    def __init__(self, settings: Settings, **uvicorn_options: Any) -> None:
        self.port = _free_port()
        config = serving.config(
            create_app(settings),
            settings,
            host="127.0.0.1",
            port=self.port,
            **{"log_level": "warning", **uvicorn_options},
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="session")
def server(db: Engine, db_url: str) -> Iterator[Server]:
    with Server(Settings(database_url=db_url)) as running:
        yield running


@pytest.fixture(scope="module")
def console(db: Engine, db_url: str) -> Iterator[Server]:
    """The app with cheap password hashing and a loose login limit, for console tests.

    One per module, so that modules do not share rate-limit counts.
    """
    with Server(console_settings(db_url)) as running:
        yield running


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=60) as http:
        yield http


@pytest.fixture(params=("sqlite", "postgresql", "mariadb"))
def source(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A POS database of its own on each source kind (tests/sourcekit.py), dropped after."""
    from tests.sourcekit import SourceDatabase

    made = SourceDatabase(request.param, tmp_path)
    try:
        yield made
    finally:
        made.drop()


@pytest.fixture
def tenant(db: Engine) -> Tenant:
    """A fresh business and integrator, so a test sees only its own rows."""
    return new_tenant(db)


@pytest.fixture
def api(client: httpx.Client, tenant: Tenant) -> Api:
    return Api(client, tenant)


@pytest.fixture
def other_api(client: httpx.Client, db: Engine) -> Api:
    """A second business read by a second integrator, to prove tenants never see each other."""
    return Api(client, Tenant(new_tenant(db).business, new_integrator(db)))
