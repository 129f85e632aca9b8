"""GET /v1/me names the integrator, business, channel and reach of a pair of read credentials."""

from __future__ import annotations

import httpx
from sqlalchemy import Engine

from clubfeed import catalogue
from clubfeed.timefmt import now_us
from tests.factories import Tenant
from tests.feedkit import us
from tests.oauthkit import connect
from tests.problemkit import assert_problem


def test_a_shared_secret_reads_every_resource_and_never_expires(
    client: httpx.Client, tenant: Tenant
) -> None:
    me = client.get("/v1/me", headers=tenant.read_headers)
    assert me.status_code == 200, me.text
    assert me.json() == {
        "integrator": {"id": tenant.integrator.id, "name": tenant.integrator.name},
        "business": {"id": tenant.business.id, "name": tenant.business.name},
        "channel": "shared_secret",
        "resources": list(catalogue.NAMES),
        "token_expires_at": None,
    }


def test_an_access_token_names_its_grant_scope_and_expiry(
    client: httpx.Client, db: Engine, tenant: Tenant
) -> None:
    granted = connect(client, db, tenant.business.id, scope="checkins users")
    me = client.get("/v1/me", headers=granted.read_headers()).json()
    assert me["integrator"] == {"id": granted.app.id, "name": granted.app.name}
    assert me["business"] == {"id": tenant.business.id, "name": tenant.business.name}
    assert me["channel"] == "oauth"
    assert me["resources"] == ["users", "checkins"], "in the catalogue's order"
    left_s = (us(me["token_expires_at"]) - now_us()) / 1_000_000
    assert 3_500 < left_s <= granted.tokens["expires_in"] + 1


def test_wrong_credentials_learn_nothing(client: httpx.Client, tenant: Tenant) -> None:
    wrong = {**tenant.read_headers, "Authorization": "Bearer cfs_not-a-secret"}
    assert_problem(client.get("/v1/me", headers=wrong), 401, "unauthenticated")
    only_key = {"X-Integrator-Key": tenant.read_headers["X-Integrator-Key"]}
    assert_problem(client.get("/v1/me", headers=only_key), 401, "unauthenticated")
