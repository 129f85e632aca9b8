"""OAuth secrets stay secret: long enough to be unguessable, and never in the database or the logs."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import Engine

from clubfeed.auth.credentials import token_hash
from clubfeed.settings import Settings
from tests.conftest import Server
from tests.consolekit import PASSWORD
from tests.factories import Api, Tenant, database_dump
from tests.oauthkit import (
    approve,
    authorize_params,
    exchange,
    feed_status,
    logged_in_admin,
    new_app,
    pkce,
    refresh,
)

URLSAFE = re.compile(r"[A-Za-z0-9_-]+")
PREFIX = re.compile(r"^cf[a-z]+_")
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


@dataclass(frozen=True)
class Flow:
    """Every secret one complete flow handled, each with its prefix."""

    secrets: dict[str, str]

    def assert_absent_from(self, text: str) -> None:
        for name, secret in self.secrets.items():
            assert secret not in text, name
            assert PREFIX.sub("", secret) not in text, name


def run_flow(client: httpx.Client, db: Engine, tenant: Tenant) -> Flow:
    """Approve, exchange, read, refresh, reuse the code, fail to authenticate, revoke."""
    app = new_app(db)
    admin = logged_in_admin(db, tenant.business.id)
    proof = pkce()
    code = approve(client, admin, authorize_params(app, proof))
    first = exchange(client, app, code, proof.verifier).json()
    headers = {"X-Integrator-Key": app.key, "Authorization": f"Bearer {first['access_token']}"}
    assert feed_status(client, headers) == 200
    second = refresh(client, app, first["refresh_token"]).json()
    assert exchange(client, app, code, proof.verifier).status_code == 400
    wrong = client.post(
        "/oauth/token", data={"grant_type": "refresh_token"}, auth=(app.client_id, "cfcs_x")
    )
    assert wrong.status_code == 401
    revoked = client.post(
        "/oauth/revoke",
        data={"token": second["access_token"]},
        auth=(app.client_id, app.client_secret),
    )
    assert revoked.status_code == 200
    return Flow(
        {
            "code": code,
            "code_verifier": proof.verifier,
            "access_token": first["access_token"],
            "refresh_token": first["refresh_token"],
            "second_access_token": second["access_token"],
            "second_refresh_token": second["refresh_token"],
            "client_secret": app.client_secret,
            "integrator_key": app.key,
            "session_cookie": admin.cookie,
            "password": PASSWORD,
        }
    )


def test_tokens_and_codes_carry_at_least_128_random_bits(
    client: httpx.Client, db: Engine, tenant: Tenant
) -> None:
    flows = [run_flow(client, db, tenant) for _ in range(2)]
    prefixes = {
        "code": "cfac_",
        "access_token": "cfa_",
        "refresh_token": "cfr_",
        "second_access_token": "cfa_",
        "second_refresh_token": "cfr_",
        "client_secret": "cfcs_",
    }
    seen: set[str] = set()
    for flow in flows:
        for name, prefix in prefixes.items():
            secret = flow.secrets[name]
            assert secret.startswith(prefix), name
            body = secret.removeprefix(prefix)
            assert URLSAFE.fullmatch(body), name
            # Base64url: 6 bits a character; 43 characters are 256 bits (at least 128 required).
            assert len(body) * 6 >= 256, name
            seen.add(body)
    assert len(seen) == len(flows) * len(prefixes)


def test_a_database_dump_holds_no_raw_token_code_secret_or_password(
    client: httpx.Client, db: Engine, tenant: Tenant
) -> None:
    flow = run_flow(client, db, tenant)
    text, tables = database_dump(db)
    assert {"oauth_codes", "oauth_tokens", "oauth_grants", "admins"} <= tables
    flow.assert_absent_from(text)
    # What is kept is the hash, so the dump is the one that would have held them.
    for name in ("code", "access_token", "second_refresh_token", "client_secret"):
        assert token_hash(flow.secrets[name]).hex() in text, name
    assert "$argon2id$" in text


@pytest.fixture
def logged_server(db: Engine, db_url: str) -> Iterator[Server]:
    """A server whose uvicorn logs (the access log included) reach pytest's capture at DEBUG."""
    loggers = [logging.getLogger(name) for name in UVICORN_LOGGERS]
    saved = [(logger.handlers[:], logger.propagate, logger.level) for logger in loggers]
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {
            name: {"handlers": [], "propagate": True, "level": "DEBUG"} for name in UVICORN_LOGGERS
        },
    }
    try:
        with Server(Settings(database_url=db_url), log_config=config, log_level="debug") as running:
            yield running
    finally:
        for logger, (handlers, propagate, level) in zip(loggers, saved, strict=True):
            logger.handlers[:] = handlers
            logger.propagate = propagate
            logger.setLevel(level)


def test_no_token_code_or_secret_is_logged(
    logged_server: Server, db: Engine, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with httpx.Client(base_url=logged_server.base_url) as client:
        Api(client, tenant).seed()
        flow = run_flow(client, db, tenant)
    # The test's own HTTP client logs the responses it receives (Location holds the code);
    # everything else, the server's access log and every library it runs, must be clean.
    server_side = [
        record for record in caplog.records if not record.name.startswith(("httpx", "httpcore"))
    ]
    text = "\n".join(record.getMessage() for record in server_side)
    flow.assert_absent_from(text)
    # Proof that the capture saw the flow: the access log, Authlib's own debug lines
    # (which print the token response, redacted), and the reuse being noticed.
    assert '"POST /oauth/token HTTP/1.1" 200' in text
    assert '"GET /v1/checkins HTTP/1.1" 200' in text
    assert "Issue token <token response: access_token, token_type" in text
    assert "A spent authorization code was presented again" in text
