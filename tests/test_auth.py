"""Credentials, through real HTTP on both databases: who may read and write what, and what is stored."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from clubfeed.auth import credentials
from clubfeed.storage.engine import write_transaction
from tests.factories import Api, Tenant, database_dump, new_integrator, record
from tests.problemkit import EPOCH, assert_problem, nothing_written

MISSING = 'Bearer realm="clubfeed"'
REJECTED = 'Bearer realm="clubfeed", error="invalid_token"'
PROBLEM_KEYS = {"type", "title", "status", "detail"}


def _requests(client: httpx.Client, headers: dict[str, str]) -> list[httpx.Response]:
    """One request to every read and write endpoint, each with a body it would refuse.

    A 401 here, rather than 400 or 422, shows credentials are checked first.
    """
    broken = b'{"nickname": '
    return [
        client.get("/v1/users", params={"limit": "0"}, headers=headers),
        client.get("/v1/users/use-1", headers=headers),
        client.post("/v1/users/lookup", content=broken, headers=headers),
        client.put("/v1/users/use-1", content=broken, headers=headers),
        client.post("/v1/users/batch", content=broken, headers=headers),
        client.delete("/v1/users/use-1", headers={**headers, "Idempotency-Key": ""}),
    ]


def _assert_unauthenticated(response: httpx.Response, challenge: str) -> dict[str, Any]:
    body = assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == challenge
    assert set(body) == PROBLEM_KEYS
    return body


def test_no_credential_is_401_with_a_challenge(api: Api) -> None:
    api.seed()
    with nothing_written(api):
        for response in _requests(api.client, {}):
            body = _assert_unauthenticated(response, MISSING)
            assert "Authorization: Bearer" in body["detail"]
            assert "use-1" not in response.text


def test_wrong_credentials_are_401_invalid_token(api: Api, other_api: Api) -> None:
    api.seed()
    tenant = api.tenant
    wrong_reads = [
        {"Authorization": "Bearer cfs_wrong", "X-Integrator-Key": tenant.integrator.key},
        {**tenant.read_headers, "X-Integrator-Key": "cfk_wrong"},
        {**tenant.read_headers, "Authorization": f"Basic {tenant.business.shared_secret}"},
        {**tenant.read_headers, "Authorization": "Bearer"},
    ]
    with nothing_written(api):
        for headers in wrong_reads:
            for response in _requests(api.client, headers)[:3]:
                _assert_unauthenticated(response, REJECTED)
        for headers in (
            {"Authorization": "Bearer cfi_wrong"},
            other_api.tenant.read_headers,
            {"Authorization": tenant.business.ingest_key},
        ):
            for response in _requests(api.client, headers)[3:]:
                _assert_unauthenticated(response, REJECTED)


def test_a_missing_integrator_key_is_401(api: Api) -> None:
    api.seed()
    secret_only = {"Authorization": f"Bearer {api.tenant.business.shared_secret}"}
    for response in _requests(api.client, secret_only)[:3]:
        body = _assert_unauthenticated(response, MISSING)
        assert "X-Integrator-Key" in body["detail"]


def test_read_credentials_cannot_write(api: Api) -> None:
    refs = api.seed()
    headers = api.tenant.read_headers
    with nothing_written(api):
        for response in (
            api.client.put("/v1/users/u-2", json=record("users", "u-2"), headers=headers),
            api.client.put("/v1/users/use-1", json=record("users", "use-1"), headers=headers),
            api.client.delete(f"/v1/users/{refs['users']}", headers=headers),
            api.client.post(
                "/v1/users/batch", json={"upsert": [record("users", "u-2")]}, headers=headers
            ),
        ):
            body = _assert_unauthenticated(response, REJECTED)
            assert "That is a shared secret, which only reads" in body["detail"]


def test_the_ingest_key_cannot_read(api: Api) -> None:
    api.seed()
    headers = {**api.tenant.write_headers, "X-Integrator-Key": api.tenant.integrator.key}
    for response in (
        api.client.get("/v1/users", headers=headers),
        api.client.get("/v1/users", params={"modified_since": EPOCH}, headers=headers),
        api.client.get("/v1/users/use-1", headers=headers),
        api.client.post("/v1/users/lookup", json={"ids": ["use-1"]}, headers=headers),
    ):
        body = _assert_unauthenticated(response, REJECTED)
        assert "That is an ingest key, which only writes" in body["detail"]
        assert "use-1" not in response.text


def test_a_secret_reads_only_its_business_with_any_integrator_key(
    api: Api, other_api: Api, db: Engine
) -> None:
    mine = api.put("users", "shared-id", record("users", "shared-id", first_name="Mine")).json()
    theirs = other_api.put("users", "shared-id", record("users", "shared-id", first_name="Theirs"))
    other_api.put("users", "only-theirs", record("users", "only-theirs"))
    assert theirs.status_code == 201

    for integrator_key in (
        api.tenant.integrator.key,
        other_api.tenant.integrator.key,
        new_integrator(db).key,
    ):
        reader = Api(api.client, Tenant(api.tenant.business, _with_key(api.tenant, integrator_key)))
        assert reader.read_all("/v1/users") == [mine]
        assert reader.read_all("/v1/users", modified_since=EPOCH) == [mine]
        assert reader.get("/v1/users/shared-id").json() == mine
        assert reader.get("/v1/users/only-theirs").status_code == 404
        looked_up = reader.post("/v1/users/lookup", json={"ids": ["shared-id", "only-theirs"]})
        assert looked_up.json() == {"data": [mine], "missing": ["only-theirs"]}


def _with_key(tenant: Tenant, key: str) -> credentials.NewIntegrator:
    return credentials.NewIntegrator(tenant.integrator.id, tenant.integrator.name, key)


def test_an_ingest_key_writes_only_its_business(api: Api, other_api: Api) -> None:
    theirs = other_api.put("users", "shared-id", record("users", "shared-id")).json()
    other_api.put("users", "only-theirs", record("users", "only-theirs"))
    with nothing_written(other_api):
        created = api.put("users", "shared-id", record("users", "shared-id", first_name="Mine"))
        assert created.status_code == 201
        assert created.json()["first_name"] == "Mine"
        assert_problem(api.delete("users", "only-theirs"), 404, "not-found")
        # A batch delete of an id this business never had is a no-op, not the other's record.
        batch = api.batch("users", [], ["only-theirs"])
        assert batch.status_code == 200 and batch.json()["unchanged"] == 1
        assert api.delete("users", "shared-id").status_code == 200
    assert other_api.get("/v1/users/shared-id").json() == theirs


def test_a_rotated_secret_stops_working_at_once(api: Api, db: Engine) -> None:
    api.seed()
    with write_transaction(db) as conn:
        new_secret = credentials.rotate_shared_secret(conn, api.tenant.business.id)
    assert new_secret is not None
    old = api.get("/v1/users")
    _assert_unauthenticated(old, REJECTED)
    fresh = {**api.tenant.read_headers, "Authorization": f"Bearer {new_secret}"}
    assert api.client.get("/v1/users", headers=fresh).status_code == 200


def test_healthz_answers_without_credentials(client: httpx.Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize("header", ["Authorization", "X-Integrator-Key"])
def test_a_credential_is_never_echoed(api: Api, header: str) -> None:
    probe = "cfs_" + "Z" * 40
    headers = {**api.tenant.read_headers, header: f"Bearer {probe}"}
    response = api.client.get("/v1/users", headers=headers)
    _assert_unauthenticated(response, REJECTED)
    assert "ZZZZ" not in response.text


def test_credentials_are_stored_only_as_hashes(api: Api, db: Engine) -> None:
    """Dump every table's rows as text and find no raw credential, only their hashes."""
    api.seed()
    keyed = {**api.tenant.write_headers, "Idempotency-Key": "hash-check"}
    api.client.post("/v1/users/batch", json={"upsert": [record("users", "u-2")]}, headers=keyed)
    api.get("/v1/users", params={"ids": "use-1,u-2"})
    api.client.get("/v1/users", headers={"Authorization": "Bearer cfs_bad"})
    business, integrator = api.tenant.business, api.tenant.integrator
    raw = [business.shared_secret, business.ingest_key, integrator.key]

    text, tables = database_dump(db)
    assert {"businesses", "integrators", "idempotency_keys", "users"} <= tables
    for secret in raw:
        assert secret not in text
        assert secret.removeprefix(secret[:4]) not in text
        assert credentials.token_hash(secret).hex() in text
