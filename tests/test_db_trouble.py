"""A database that is busy, locked, behind the code, or broken, on SQLite and PostgreSQL.

Each backend gets a database of its own (a SQLite file; a database in a PostgreSQL
cluster of this module's own), since these tests lock it, re-stamp its schema version
and rename its tables under a running server. The server waits at most half a second
for the database, with a pool of two connections.
"""

from __future__ import annotations

import logging
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from clubfeed.activity import Event, Recorder
from clubfeed.cli import main
from clubfeed.storage.engine import is_sqlite, make_engine, write_transaction
from clubfeed.storage.migrate import head_revision, upgrade
from clubfeed.web.state import AppState
from tests.conftest import Server, _free_port
from tests.consolekit import console_settings
from tests.factories import Tenant, new_tenant, record
from tests.outagekit import assert_unavailable, own_cluster
from tests.problemkit import assert_problem

DB_TIMEOUT_S = 0.5
T = TypeVar("T")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """A migrated database of this module's own, on each backend."""
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path_factory.mktemp('trouble') / 'clubfeed.db'}"
        else:
            url = stack.enter_context(own_cluster()).url
        made = make_engine(url, pool_size=2)
        upgrade(made)
        yield made
        made.dispose()


@pytest.fixture(scope="module")
def running(engine: Engine) -> Iterator[Server]:
    """The app on that database; uvicorn's loggers reach pytest's log capture."""
    url = engine.url.render_as_string(hide_password=False)
    settings = console_settings(url, db_timeout_s=DB_TIMEOUT_S, pool_size=1)
    with Server(settings, log_config=None, access_log=False) as server:
        yield server


@pytest.fixture
def tenant(engine: Engine) -> Tenant:
    return new_tenant(engine)


@pytest.fixture
def client(running: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=running.base_url, timeout=30) as http:
        yield http


def _put(client: httpx.Client, tenant: Tenant, record_id: str) -> httpx.Response:
    headers = {**tenant.write_headers, "Connection": "close"}
    body = record("locations", record_id)
    return client.put(f"/v1/locations/{record_id}", json=body, headers=headers)


def _list(client: httpx.Client, tenant: Tenant) -> httpx.Response:
    return client.get("/v1/locations", headers=tenant.read_headers)


def _timed(call: Callable[[], T]) -> tuple[T, float]:
    started = time.monotonic()
    answer = call()
    return answer, time.monotonic() - started


def test_no_free_pooled_connection_answers_503_after_the_timeout(
    running: Server, client: httpx.Client, tenant: Tenant
) -> None:
    app_state: AppState = running.server.config.app.state.clubfeed
    with app_state.engine.connect(), app_state.engine.connect():  # the whole pool
        response, took = _timed(lambda: _list(client, tenant))
        assert_unavailable(response, "read")
        assert DB_TIMEOUT_S <= took < DB_TIMEOUT_S + 5
        assert_unavailable(_put(client, tenant, "while-busy"), "nothing written")
    assert _list(client, tenant).status_code == 200
    assert _put(client, tenant, "when-free").status_code == 201
    assert [r["id"] for r in _list(client, tenant).json()["data"]] == ["when-free"]


@contextmanager
def _writer_holding_the_lock(engine: Engine, tenant: Tenant) -> Iterator[None]:
    """Another writer, in a transaction that holds what this business's writes need:
    SQLite's one write lock, or the business's change_clock row in PostgreSQL."""
    if is_sqlite(engine):
        conn = sqlite3.connect(str(make_url(engine.url).database), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    with write_transaction(engine) as locked:
        held = locked.execute(
            text("SELECT seq FROM change_clock WHERE business_id = :b FOR UPDATE"),
            {"b": tenant.business.id},
        ).all()
        assert len(held) == 1
        yield


def test_a_write_waiting_past_the_timeout_for_another_writers_lock_answers_503(
    engine: Engine, client: httpx.Client, tenant: Tenant
) -> None:
    with _writer_holding_the_lock(engine, tenant):
        response, took = _timed(lambda: _put(client, tenant, "while-locked"))
        assert_unavailable(response, "nothing written")
        assert DB_TIMEOUT_S <= took < DB_TIMEOUT_S + 5
        # Readers never wait for writers.
        assert _list(client, tenant).json()["data"] == []
    assert _put(client, tenant, "after").status_code == 201
    assert [r["id"] for r in _list(client, tenant).json()["data"]] == ["after"]


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_a_write_held_up_inside_its_bulk_statement_answers_503(
    engine: Engine, client: httpx.Client, tenant: Tenant
) -> None:
    """A lock wait in the upsert itself (another session holds the record's row, which only
    PostgreSQL has) is an outage like any other: 503, nothing written, never a 500."""
    assert _put(client, tenant, "held").status_code == 201
    with write_transaction(engine) as holder:
        holder.execute(
            text("SELECT id FROM locations WHERE business_id = :b AND id = 'held' FOR UPDATE"),
            {"b": tenant.business.id},
        )
        changed = record("locations", "held", name="Renamed")
        response, took = _timed(
            lambda: client.put("/v1/locations/held", json=changed, headers=tenant.write_headers)
        )
        assert_unavailable(response, "nothing written")
        assert DB_TIMEOUT_S <= took < DB_TIMEOUT_S + 5
    assert [r["name"] for r in _list(client, tenant).json()["data"]] == ["name of held"]


def test_a_bug_in_a_statement_stays_a_500_and_its_logged_traceback_holds_no_values(
    engine: Engine, client: httpx.Client, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    """A missing table is no outage: retrying will not help, so it is not a 503."""
    secret_id = f"value-{uuid.uuid4().hex}"
    with write_transaction(engine) as conn:
        conn.execute(text("ALTER TABLE locations RENAME TO locations_gone"))
    try:
        with caplog.at_level(logging.ERROR):
            response = _put(client, tenant, secret_id)
            # uvicorn logs the traceback just after the 500 is sent.
            deadline = time.monotonic() + 5
            while "Exception in ASGI application" not in caplog.text:
                assert time.monotonic() < deadline, "no traceback was logged"
                time.sleep(0.02)
    finally:
        with write_transaction(engine) as conn:
            conn.execute(text("ALTER TABLE locations_gone RENAME TO locations"))
    body = assert_problem(response, 500, "internal-error")
    assert body["detail"].startswith("Something went wrong on our side; nothing was written.")
    # Answered inside the middleware stack: the request id to quote comes with it.
    assert len(response.headers["x-request-id"]) == 32
    assert response.headers["cache-control"] == "no-store"
    # The failing statement is logged, its values are not.
    assert "[SQL: " in caplog.text
    assert "[SQL parameters hidden due to hide_parameters=True]" in caplog.text
    assert secret_id not in caplog.text


def _stamp(engine: Engine, sql: str) -> None:
    with write_transaction(engine) as conn:
        conn.execute(text(sql))


def test_readyz_answers_200_only_while_the_schema_is_not_behind_the_code(
    engine: Engine, client: httpx.Client
) -> None:
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.headers["content-type"] == "application/json"
    assert ready.json() == {"status": "ready", "schema": "current"}
    try:
        _stamp(engine, "UPDATE alembic_version SET version_num = '0003'")
        behind = assert_problem(client.get("/readyz"), 503, "service-unavailable")
        assert "older than this version of clubfeed needs" in behind["detail"]
        assert "clubfeed db upgrade" in behind["detail"]
        # A revision this code does not know: a newer clubfeed migrated it; keep serving.
        _stamp(engine, "UPDATE alembic_version SET version_num = 'f00dfeed'")
        assert client.get("/readyz").json() == {"status": "ready", "schema": "newer"}
        _stamp(engine, "ALTER TABLE alembic_version RENAME TO alembic_version_gone")
        missing = assert_problem(client.get("/readyz"), 503, "service-unavailable")
        assert "no clubfeed schema yet" in missing["detail"]
        _stamp(engine, "ALTER TABLE alembic_version_gone RENAME TO alembic_version")
    finally:
        _stamp(engine, f"UPDATE alembic_version SET version_num = '{head_revision()}'")
    assert client.get("/readyz").json() == {"status": "ready", "schema": "current"}
    assert client.get("/healthz").json() == {"status": "ok"}


def test_the_cli_says_when_the_database_is_unreachable_or_locked(tmp_path: Path) -> None:
    runner = CliRunner()
    nobody = f"postgresql+psycopg://postgres@127.0.0.1:{_free_port()}/clubfeed"
    refused = runner.invoke(main, ["--database-url", nobody, "business", "list"])
    assert refused.exit_code == 1
    assert "Connection refused. The database is unreachable or busy" in refused.output
    assert "Traceback" not in refused.output

    url = f"sqlite:///{tmp_path / 'locked.db'}"
    upgrade(made := make_engine(url))
    made.dispose()
    locker = sqlite3.connect(str(tmp_path / "locked.db"), isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    try:
        locked, took = _timed(
            lambda: runner.invoke(
                main,
                ["--database-url", url, "business", "create", "Summit"],
                env={"CLUBFEED_DB_TIMEOUT_S": "0.2"},
            )
        )
    finally:
        locker.close()
    assert took < 5  # the busy timeout came from CLUBFEED_DB_TIMEOUT_S, not the default 30 s
    assert locked.exit_code == 1
    assert "failed: database is locked. The database is unreachable or busy" in locked.output
    assert "SELECT" not in locked.output and "INSERT" not in locked.output


def test_activity_the_recorder_cannot_write_in_an_outage_is_logged_in_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    nobody = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{_free_port()}/clubfeed")
    recorder = Recorder(nobody, 0.02)
    recorder.record(Event(1, 1, "shared_secret", 0, "GET", "/v1/checkins", 200))
    with caplog.at_level(logging.WARNING, logger="clubfeed.activity"):
        recorder.start()
        deadline = time.monotonic() + 5
        while not caplog.records:
            assert time.monotonic() < deadline, "nothing was logged"
            time.sleep(0.02)
        recorder.stop()
    (logged,) = caplog.records
    assert logged.levelno == logging.WARNING and logged.exc_info is None
    assert logged.getMessage().startswith("could not write API activity (connection failed: ")
    assert logged.getMessage().endswith("Connection refused); dropped")
