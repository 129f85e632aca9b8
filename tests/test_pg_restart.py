"""A real PostgreSQL stopped and started under a running clubfeed: 503s, then recovery.

The cluster is this module's own (see `outagekit.own_cluster`); the shared one on
5432 is never stopped.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from sqlalchemy import Connection, Engine, event, text

from clubfeed.storage.engine import make_engine
from clubfeed.storage.migrate import upgrade
from clubfeed.web.state import AppState
from tests.conftest import Server
from tests.consolekit import console_settings
from tests.factories import new_tenant
from tests.oauthkit import connect
from tests.outagekit import (
    Callers,
    Cluster,
    assert_unavailable,
    assert_unavailable_page,
    assert_unavailable_token,
    eventually,
    own_cluster,
)
from tests.problemkit import assert_problem

# A request waits this long for a connection before it gives up with a 503.
DB_TIMEOUT_S = 2.0
RECOVERY_S = 3.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with own_cluster() as made:
        yield made


@pytest.fixture(scope="module")
def engine(cluster: Cluster) -> Iterator[Engine]:
    """The test's own engine on the cluster's migrated database (the server has another)."""
    made = make_engine(cluster.url, pool_size=2)
    upgrade(made)
    yield made
    made.dispose()


@pytest.fixture(scope="module")
def running(cluster: Cluster, engine: Engine) -> Iterator[Server]:
    """The app on the cluster; its activity is written only at shutdown, so that the
    only commits a test sees are those of its own requests."""
    settings = console_settings(cluster.url, db_timeout_s=DB_TIMEOUT_S, activity_flush_s=3600)
    with Server(settings) as server:
        yield server


@pytest.fixture
def callers(running: Server, engine: Engine) -> Iterator[Callers]:
    tenant = new_tenant(engine)
    with httpx.Client(base_url=running.base_url, timeout=30) as client:
        connected = connect(client, engine, tenant.business.id)
        yield Callers(client, tenant, connected)


def _app_engine(server: Server) -> Engine:
    app_state: AppState = server.server.config.app.state.clubfeed
    return app_state.engine


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_while_postgresql_is_down_every_surface_answers_503_then_recovers_by_itself(
    cluster: Cluster, callers: Callers, mode: str
) -> None:
    client = callers.client
    assert callers.read().status_code == 200
    assert callers.write("before").status_code == 201
    assert callers.console().status_code == 200
    assert callers.consent().status_code == 200
    assert callers.token().status_code == 200
    refresh_token = callers.refresh_token

    document = client.get("/openapi.json").json()

    cluster.stop(mode)
    try:
        read, write, token, ready = (
            callers.read(), callers.write("during"), callers.token(), client.get("/readyz")
        )  # fmt: skip
        assert_unavailable(read, "read")
        assert_unavailable(write, "nothing written")
        assert_unavailable_token(token)
        assert_unavailable(ready, "read")
        assert_unavailable_page(callers.console(), retry_url="/console")
        assert_unavailable_page(callers.console_form(), retry_url=None)
        consent = callers.consent()
        assert_unavailable_page(consent, retry_url=f"/oauth/authorize?{consent.url.query.decode()}")
        assert client.get("/healthz").status_code == 200
        _as_documented(document, "/v1/locations", "get", read)
        _as_documented(document, "/v1/locations/{record_id}", "put", write)
        _as_documented(document, "/oauth/token", "post", token)
        _as_documented(document, "/readyz", "get", ready)
        assert (
            "Retry-After"
            in document["paths"]["/oauth/authorize"]["get"]["responses"]["503"]["headers"]
        )
    finally:
        cluster.start()
    started = time.monotonic()

    ready = eventually(lambda: client.get("/readyz"), 200, RECOVERY_S)
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready", "schema": "current"}
    assert eventually(callers.read, 200, RECOVERY_S).status_code == 200
    assert eventually(lambda: callers.write("after"), 201, RECOVERY_S).status_code == 201
    assert eventually(callers.console, 200, RECOVERY_S).status_code == 200
    assert eventually(callers.consent, 200, RECOVERY_S).status_code == 200
    # The refresh during the outage changed nothing: the same refresh token still works.
    assert callers.refresh_token == refresh_token
    assert eventually(callers.token, 200, RECOVERY_S).status_code == 200
    assert time.monotonic() - started < RECOVERY_S

    # Nothing of the write refused during the outage was kept.
    assert_problem(
        client.get("/v1/locations/during", headers=callers.tenant.read_headers), 404, "not-found"
    )
    ids = [r["id"] for r in _all_locations(callers)]
    assert ids == ["before", "after"]
    # Nor was the rotation: the old secret read all along, and rotating works now.
    rotated = callers.console_form()
    assert rotated.status_code == 303, rotated.text
    assert rotated.headers["location"].startswith("/console/secret/new?flash=")


def _as_documented(
    document: dict[str, Any], path: str, method: str, response: httpx.Response
) -> None:
    """The 503 is in the OpenAPI document, with its Retry-After header and its body's schema."""
    described = document["paths"][path][method]["responses"]["503"]
    assert "Retry-After" in described["headers"]
    (media_type,) = described["content"]
    assert response.headers["content-type"] == media_type
    schema = {**described["content"][media_type]["schema"], "components": document["components"]}
    Draft202012Validator(schema).validate(response.json())


def _all_locations(callers: Callers) -> list[dict[str, Any]]:
    response = callers.client.get("/v1/locations", headers=callers.tenant.read_headers)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def test_a_write_whose_commit_fails_says_its_outcome_is_unknown(
    running: Server, engine: Engine, callers: Callers
) -> None:
    """The connection dies between the last statement and COMMIT, as when the server
    crashes then: clubfeed cannot know whether the write landed, and says so."""
    killed: list[int] = []

    def kill_backend(conn: Connection) -> None:
        pid = conn.connection.dbapi_connection.info.backend_pid
        with engine.connect() as admin:
            # With a timeout, pg_terminate_backend returns once the backend has exited.
            admin.execute(text("SELECT pg_terminate_backend(:pid, 10000)"), {"pid": pid})
        killed.append(pid)

    app_engine = _app_engine(running)
    event.listen(app_engine, "commit", kill_backend, once=True)
    try:
        response = callers.write("at-commit")
    finally:
        if not killed:
            event.remove(app_engine, "commit", kill_backend)
    assert len(killed) == 1
    detail = assert_unavailable(response, "unknown")
    assert "Idempotency-Key" in detail
    # Here the commit never reached the server, so resending creates the record.
    assert callers.write("at-commit").status_code == 201
