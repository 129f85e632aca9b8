"""`clubfeed business` and `clubfeed integrator`, in-process, on real SQLite files and PostgreSQL.

What the CLI issues is tried over real HTTP against a server on the same database;
overlaps are ended by moving their stored deadline into the past, not by waiting.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import httpx
import pytest
from click.testing import Result
from sqlalchemy import Engine, select, update

from clubfeed.auth.credentials import NewBusiness, NewIntegrator
from clubfeed.storage.schema import businesses, integrators
from tests.clikit import assert_clean_error, clubfeed, one_json_line
from tests.factories import Api, Tenant, new_tenant, record

TOKEN = r"[A-Za-z0-9_-]{43}"
UTC_SECOND = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def with_secret(api: Api, shared_secret: str) -> Api:
    """The same business and integrator, reading with another shared secret."""
    business = api.tenant.business
    renewed = NewBusiness(business.id, business.name, shared_secret, business.ingest_key)
    return Api(api.client, Tenant(renewed, api.tenant.integrator))


def test_business_create_json_prints_exactly_one_line(cli_url: str, http: httpx.Client) -> None:
    name = f"Café Ünïcorn {uuid.uuid4().hex[:6]}"
    data = one_json_line(clubfeed(cli_url, "business", "create", name, "--json"))

    assert set(data) == {"id", "name", "shared_secret", "ingest_key"}
    business = NewBusiness(**data)
    assert isinstance(business.id, int) and business.name == name
    assert business.shared_secret.startswith("cfs_") and business.ingest_key.startswith("cfi_")
    listed = clubfeed(cli_url, "business", "list")
    assert f"{business.id}\t{name}" in listed.stdout.splitlines()

    integrator = NewIntegrator(
        **one_json_line(clubfeed(cli_url, "integrator", "create", "Reader", "--json"))
    )
    tenant_api = Api(http, Tenant(business, integrator))
    assert tenant_api.put("locations", "l", record("locations", "l")).status_code == 201
    assert [r["id"] for r in tenant_api.read_all("/v1/locations")] == ["l"]


def test_business_create_without_json_is_readable_text(
    cli_url: str, http: httpx.Client, engine: Engine
) -> None:
    result = clubfeed(cli_url, "business", "create", "Plain Gym")

    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    match = re.fullmatch(r"Business (\d+): Plain Gym", lines[0])
    assert match is not None, result.stdout
    secrets = re.findall(r"\b(cf[si]_[A-Za-z0-9_-]{43})$", result.stdout, re.M)
    assert [s[:4] for s in secrets] == ["cfs_", "cfi_"]
    with pytest.raises(json.JSONDecodeError):
        json.loads(result.stdout)

    business = NewBusiness(int(match[1]), "Plain Gym", *secrets)
    tenant_api = Api(http, Tenant(business, new_tenant(engine).integrator))
    assert tenant_api.put("locations", "l", record("locations", "l")).status_code == 201
    assert tenant_api.get("/v1/locations").status_code == 200


def test_rotate_secret_stops_the_old_secret_at_once(cli_url: str, api: Api) -> None:
    business = api.tenant.business
    assert api.get("/v1/locations").status_code == 200

    rotated = clubfeed(cli_url, "business", "rotate-secret", str(business.id))
    assert rotated.exit_code == 0, rotated.stderr
    match = re.fullmatch(
        rf"New shared secret for business {business.id}: (cfs_{TOKEN})\n"
        "The previous shared secret has stopped working.\n"
        "Store the new one now: only its hash is kept.\n",
        rotated.stdout,
    )
    assert match is not None, rotated.stdout
    old, new = api, with_secret(api, match[1])
    assert old.get("/v1/locations").status_code == 401
    assert new.get("/v1/locations").status_code == 200
    # The ingest key is a separate credential and keeps working.
    assert new.put("locations", "l", record("locations", "l")).status_code == 201

    again = one_json_line(
        clubfeed(cli_url, "business", "rotate-secret", str(business.id), "--json")
    )
    assert set(again) == {"id", "shared_secret", "previous_valid_until"}
    assert again["id"] == business.id and again["previous_valid_until"] is None
    newest = with_secret(api, again["shared_secret"])
    assert new.get("/v1/locations").status_code == 401
    assert [r["id"] for r in newest.read_all("/v1/locations")] == ["l"]


def test_rotate_secret_of_an_unknown_business_fails_clearly(cli_url: str) -> None:
    result = clubfeed(cli_url, "business", "rotate-secret", "987654321")
    assert_clean_error(result, "no business 987654321")
    assert result.stdout == ""


def test_integrator_create_json_key_works_as_x_integrator_key(cli_url: str, api: Api) -> None:
    data = one_json_line(clubfeed(cli_url, "integrator", "create", "Loyalty Ltd", "--json"))

    assert set(data) == {"id", "name", "key", "client_id", "client_secret", "redirect_uris"}
    integrator = NewIntegrator(**data)
    assert isinstance(integrator.id, int) and integrator.name == "Loyalty Ltd"
    assert integrator.key.startswith("cfk_")
    headers = {**api.tenant.read_headers, "X-Integrator-Key": integrator.key}
    assert api.client.get("/v1/locations", headers=headers).status_code == 200
    headers["X-Integrator-Key"] = integrator.key[:-1] + ("A" if integrator.key[-1] != "A" else "B")
    assert api.client.get("/v1/locations", headers=headers).status_code == 401


# integrator set-oauth


def _token_error(http: httpx.Client, client_id: str, client_secret: str) -> tuple[int, str]:
    """Exchange a code nobody issued: 400 invalid_grant once the client authenticated,
    401 invalid_client if its credentials are wrong."""
    response = http.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": "never-issued",
            "redirect_uri": "https://loyalty.example/callback",
            "code_verifier": "v" * 43,
        },
        auth=(client_id, client_secret),
    )
    return response.status_code, response.json()["error"]


def _redirect_uris(engine: Engine, integrator_id: int) -> list[str]:
    with engine.connect() as conn:
        stored: str = conn.execute(
            select(integrators.c.redirect_uris).where(integrators.c.id == integrator_id)
        ).scalar_one()
    uris: list[str] = json.loads(stored)
    return uris


def _set_oauth(cli_url: str, integrator_id: int, *args: str) -> Result:
    return clubfeed(cli_url, "integrator", "set-oauth", str(integrator_id), *args)


def test_set_oauth_issues_a_new_client_secret_and_the_old_one_stops(
    cli_url: str, http: httpx.Client, engine: Engine
) -> None:
    created = NewIntegrator(
        **one_json_line(clubfeed(cli_url, "integrator", "create", "Late OAuth", "--json"))
    )
    assert _token_error(http, created.client_id, created.client_secret) == (400, "invalid_grant")
    uris = ["https://loyalty.example/callback", "http://127.0.0.1:8765/cb"]

    data = one_json_line(
        _set_oauth(
            cli_url,
            created.id,
            "--redirect-uri",
            uris[0],
            "--redirect-uri",
            uris[1],
            "--json",
        )
    )

    assert set(data) == {"id", "client_id", "client_secret", "redirect_uris"}
    assert (data["id"], data["client_id"], data["redirect_uris"]) == (
        created.id,
        created.client_id,
        uris,
    )
    assert data["client_secret"].startswith("cfcs_")
    assert _token_error(http, created.client_id, data["client_secret"]) == (400, "invalid_grant")
    assert _token_error(http, created.client_id, created.client_secret) == (401, "invalid_client")
    assert _redirect_uris(engine, created.id) == uris

    # Without --json: readable lines, and the URIs are replaced, not added to.
    again = _set_oauth(cli_url, created.id, "--redirect-uri", uris[1])
    assert again.exit_code == 0, again.stderr
    found = re.search(r"^  OAuth client_secret: +(cfcs_[A-Za-z0-9_-]{43})$", again.stdout, re.M)
    assert found is not None, again.stdout
    assert f"OAuth client_id:     {created.client_id}" in again.stdout
    assert _token_error(http, created.client_id, found[1]) == (400, "invalid_grant")
    assert _token_error(http, created.client_id, data["client_secret"]) == (401, "invalid_client")
    assert _redirect_uris(engine, created.id) == [uris[1]]


def test_set_oauth_gives_an_integrator_from_before_oauth_a_client_id(
    cli_url: str, api: Api, engine: Engine
) -> None:
    integrator = api.tenant.integrator
    with engine.begin() as conn:  # as registered before the OAuth migration
        conn.execute(
            update(integrators)
            .where(integrators.c.id == integrator.id)
            .values(client_id=None, client_secret_hash=None, redirect_uris="[]")
        )

    data = one_json_line(
        _set_oauth(
            cli_url,
            integrator.id,
            "--redirect-uri",
            "https://loyalty.example/callback",
            "--json",
        )
    )

    assert data["client_id"].startswith("cfid_") and data["client_id"] != integrator.client_id
    assert _token_error(api.client, data["client_id"], data["client_secret"]) == (
        400,
        "invalid_grant",
    )
    # The integrator key is another credential and keeps working.
    assert api.get("/v1/locations").status_code == 200


def test_set_oauth_refuses_a_bad_uri_or_an_unknown_integrator_and_changes_nothing(
    cli_url: str, http: httpx.Client, engine: Engine
) -> None:
    created = NewIntegrator(
        **one_json_line(
            clubfeed(
                cli_url,
                "integrator",
                "create",
                "Careful",
                "--redirect-uri",
                "https://careful.example/cb",
                "--json",
            )
        )
    )

    for uri, reason in [
        ("http://loyalty.example/cb", "must use https"),
        ("https://loyalty.example/cb#top", "has a fragment"),
        ("/cb", "is not an absolute URL"),
    ]:
        bad = _set_oauth(
            cli_url,
            created.id,
            "--redirect-uri",
            "https://ok.example/cb",
            "--redirect-uri",
            uri,
        )
        assert_clean_error(bad, reason)
        assert bad.exit_code == 1 and bad.stdout == ""
    unknown = _set_oauth(cli_url, 987654321, "--redirect-uri", "https://ok.example/cb")
    assert_clean_error(unknown, "no integrator 987654321")
    assert unknown.exit_code == 1 and unknown.stdout == ""
    no_uri = _set_oauth(cli_url, created.id)
    assert no_uri.exit_code == 2 and "Missing option '--redirect-uri'" in no_uri.stderr

    assert _token_error(http, created.client_id, created.client_secret) == (400, "invalid_grant")
    assert _redirect_uris(engine, created.id) == ["https://careful.example/cb"]


# rotation with an overlap


def _end_overlaps(engine: Engine) -> None:
    """Move every overlap's deadline one second into the past, as the clock would."""
    with engine.begin() as conn:
        for table, column in (
            (businesses, "previous_shared_secret_until"),
            (businesses, "previous_ingest_key_until"),
            (integrators, "previous_key_until"),
        ):
            stored = table.c[column]
            conn.execute(update(table).where(stored.is_not(None)).values({column: stored - stored}))


def _stored_deadline(engine: Engine, table: Any, row_id: int, column: str) -> int | None:
    with engine.connect() as conn:
        found: int | None = conn.execute(
            select(table.c[column]).where(table.c.id == row_id)
        ).scalar_one()
    return found


def _as_us(stamp: str) -> int:
    from datetime import datetime

    from clubfeed.timefmt import to_us

    return to_us(datetime.fromisoformat(stamp))


def with_ingest_key(api: Api, key: str) -> Api:
    business = api.tenant.business
    renewed = NewBusiness(business.id, business.name, business.shared_secret, key)
    return Api(api.client, Tenant(renewed, api.tenant.integrator))


def with_integrator_key(api: Api, key: str) -> Api:
    integrator = api.tenant.integrator
    renewed = NewIntegrator(integrator.id, integrator.name, key)
    return Api(api.client, Tenant(api.tenant.business, renewed))


def _write(api: Api, record_id: str) -> int:
    return api.put("locations", record_id, record("locations", record_id)).status_code


def test_rotate_ingest_key_with_an_overlap_keeps_the_old_key_until_it_says(
    cli_url: str, api: Api, engine: Engine
) -> None:
    business = api.tenant.business
    assert _write(api, "before") == 201

    rotated = clubfeed(
        cli_url, "business", "rotate-ingest-key", str(business.id), "--overlap", "1h30m"
    )

    assert rotated.exit_code == 0, rotated.stderr
    match = re.fullmatch(
        rf"New ingest key for business {business.id}: (cfi_{TOKEN})\n"
        rf"The previous ingest key works until ({UTC_SECOND}), then stops.\n"
        "Store the new one now: only its hash is kept.\n",
        rotated.stdout,
    )
    assert match is not None, rotated.stdout
    until = _as_us(match[2])
    assert _stored_deadline(engine, businesses, business.id, "previous_ingest_key_until") == until
    old, new = api, with_ingest_key(api, match[1])
    assert _write(old, "old") == 201 and _write(new, "new") == 201
    # The shared secret is another credential: reads go on.
    assert sorted(r["id"] for r in api.read_all("/v1/locations")) == ["before", "new", "old"]

    _end_overlaps(engine)

    assert _write(old, "late") == 401
    assert _write(new, "later") == 201


def test_rotating_again_during_an_overlap_stops_the_oldest_key_at_once(
    cli_url: str, api: Api
) -> None:
    business = str(api.tenant.business.id)
    first = one_json_line(
        clubfeed(cli_url, "business", "rotate-ingest-key", business, "--overlap", "2d", "--json")
    )
    second = one_json_line(
        clubfeed(cli_url, "business", "rotate-ingest-key", business, "--overlap", "10m", "--json")
    )

    assert set(second) == {"id", "ingest_key", "previous_valid_until"}
    assert _as_us(first["previous_valid_until"]) > _as_us(second["previous_valid_until"])
    assert _write(api, "original") == 401
    assert _write(with_ingest_key(api, first["ingest_key"]), "first") == 201
    assert _write(with_ingest_key(api, second["ingest_key"]), "second") == 201

    third = one_json_line(clubfeed(cli_url, "business", "rotate-ingest-key", business, "--json"))

    assert third["previous_valid_until"] is None
    assert _write(with_ingest_key(api, first["ingest_key"]), "x") == 401
    assert _write(with_ingest_key(api, second["ingest_key"]), "y") == 401
    assert _write(with_ingest_key(api, third["ingest_key"]), "third") == 201


def test_integrator_rotate_key_with_an_overlap_keeps_both_keys_reading(
    cli_url: str, api: Api, engine: Engine
) -> None:
    integrator = api.tenant.integrator
    other_business = Api(api.client, Tenant(new_tenant(engine).business, integrator))

    data = one_json_line(
        clubfeed(
            cli_url, "integrator", "rotate-key", str(integrator.id), "--overlap", "1d", "--json"
        )
    )

    assert set(data) == {"id", "key", "previous_valid_until"} and data["id"] == integrator.id
    assert data["key"].startswith("cfk_")
    until = _as_us(data["previous_valid_until"])
    assert _stored_deadline(engine, integrators, integrator.id, "previous_key_until") == until
    new = with_integrator_key(api, data["key"])
    for reader in (api, new, other_business, with_integrator_key(other_business, data["key"])):
        assert reader.get("/v1/locations").status_code == 200

    _end_overlaps(engine)

    assert api.get("/v1/locations").status_code == 401
    assert other_business.get("/v1/locations").status_code == 401
    assert new.get("/v1/locations").status_code == 200


def test_integrator_rotate_key_without_an_overlap_stops_the_old_key_at_once(
    cli_url: str, api: Api
) -> None:
    rotated = clubfeed(cli_url, "integrator", "rotate-key", str(api.tenant.integrator.id))

    assert rotated.exit_code == 0, rotated.stderr
    found = re.search(rf"^New key for integrator \d+: (cfk_{TOKEN})$", rotated.stdout, re.M)
    assert found is not None, rotated.stdout
    assert "The previous key has stopped working." in rotated.stdout
    assert api.get("/v1/locations").status_code == 401
    assert with_integrator_key(api, found[1]).get("/v1/locations").status_code == 200


def test_rotate_secret_with_an_overlap_keeps_the_old_secret_reading(
    cli_url: str, api: Api, engine: Engine
) -> None:
    business = api.tenant.business
    data = one_json_line(
        clubfeed(
            cli_url, "business", "rotate-secret", str(business.id), "--overlap", "10m", "--json"
        )
    )
    new = with_secret(api, data["shared_secret"])

    assert api.get("/v1/locations").status_code == 200
    assert new.get("/v1/locations").status_code == 200
    until = _stored_deadline(engine, businesses, business.id, "previous_shared_secret_until")
    assert until == _as_us(data["previous_valid_until"])

    _end_overlaps(engine)

    assert api.get("/v1/locations").status_code == 401
    assert new.get("/v1/locations").status_code == 200


@pytest.mark.parametrize(
    ("command", "what"),
    [
        (("business", "rotate-secret"), "business"),
        (("business", "rotate-ingest-key"), "business"),
        (("integrator", "rotate-key"), "integrator"),
    ],
)
def test_rotating_for_an_unknown_id_fails_clearly(
    cli_url: str, command: tuple[str, ...], what: str
) -> None:
    assert_clean_error(clubfeed(cli_url, *command, "987654321"), f"no {what} 987654321")
    assert_clean_error(
        clubfeed(cli_url, *command, "987654321", "--overlap", "1h", "--json"),
        f"no {what} 987654321",
    )


@pytest.mark.parametrize(
    ("overlap", "reason"),
    [
        ("1x", "is not a duration"),
        ("h", "is not a duration"),
        ("-1h", "is not a duration"),
        ("", "is not a duration"),
        ("31d", "longer than the longest overlap, 30d"),
    ],
)
def test_a_bad_overlap_is_a_usage_error_and_rotates_nothing(
    cli_url: str, api: Api, overlap: str, reason: str
) -> None:
    business = str(api.tenant.business.id)
    for command in (
        ("business", "rotate-ingest-key", business),
        ("business", "rotate-secret", business),
        ("integrator", "rotate-key", str(api.tenant.integrator.id)),
    ):
        result = clubfeed(cli_url, *command, "--overlap", overlap)
        assert result.exit_code == 2 and reason in result.stderr, result.stderr
    assert _write(api, "still") == 201
    assert api.get("/v1/locations").status_code == 200


# duplicate names and lists


def test_a_duplicate_business_name_is_refused_unless_allowed(cli_url: str, engine: Engine) -> None:
    name = f"Twin Gym {uuid.uuid4().hex[:6]}"
    first = one_json_line(clubfeed(cli_url, "business", "create", name, "--json"))

    refused = clubfeed(cli_url, "business", "create", name, "--json")

    assert_clean_error(
        refused, f"Business {first['id']} is named '{name}' already.", "--allow-duplicate"
    )
    assert [b["id"] for b in _listed(cli_url, "business") if b["name"] == name] == [first["id"]]
    second = one_json_line(
        clubfeed(cli_url, "business", "create", name, "--allow-duplicate", "--json")
    )
    assert second["id"] != first["id"]
    assert [b["id"] for b in _listed(cli_url, "business") if b["name"] == name] == [
        first["id"],
        second["id"],
    ]
    # Only the exact name is a duplicate.
    assert clubfeed(cli_url, "business", "create", name.upper()).exit_code == 0


def test_a_duplicate_integrator_name_is_refused_unless_allowed(cli_url: str) -> None:
    name = f"Twin Loyalty {uuid.uuid4().hex[:6]}"
    first = one_json_line(clubfeed(cli_url, "integrator", "create", name, "--json"))

    refused = clubfeed(cli_url, "integrator", "create", name)

    assert_clean_error(refused, f"Integrator {first['id']} is named '{name}' already.")
    assert [i["id"] for i in _listed(cli_url, "integrator") if i["name"] == name] == [first["id"]]
    second = one_json_line(
        clubfeed(cli_url, "integrator", "create", name, "--allow-duplicate", "--json")
    )
    assert [i["id"] for i in _listed(cli_url, "integrator") if i["name"] == name] == [
        first["id"],
        second["id"],
    ]


def _listed(cli_url: str, group: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = one_json_line(clubfeed(cli_url, group, "list", "--json"))
    return rows


def test_integrator_list_shows_every_integrator_as_text_and_json(cli_url: str) -> None:
    uri = "https://listed.example/cb"
    made = one_json_line(
        clubfeed(cli_url, "integrator", "create", "Listed Ltd", "--redirect-uri", uri, "--json")
    )

    text_rows = clubfeed(cli_url, "integrator", "list").stdout.splitlines()
    rows = _listed(cli_url, "integrator")

    assert f"{made['id']}\tListed Ltd\t{made['client_id']}" in text_rows
    assert len(text_rows) == len(rows) and [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    (listed,) = [r for r in rows if r["id"] == made["id"]]
    assert re.fullmatch(UTC_SECOND, listed.pop("created_at"))
    assert listed == {
        "id": made["id"],
        "name": "Listed Ltd",
        "client_id": made["client_id"],
        "redirect_uris": [uri],
    }
    assert "key" not in json.dumps(rows) or all("cfk_" not in json.dumps(r) for r in rows)


def test_business_list_json_holds_ids_names_and_creation_times(cli_url: str) -> None:
    made = one_json_line(clubfeed(cli_url, "business", "create", "Listed Gym", "--json"))

    rows = _listed(cli_url, "business")

    (listed,) = [r for r in rows if r["id"] == made["id"]]
    assert set(listed) == {"id", "name", "created_at"} and listed["name"] == "Listed Gym"
    assert re.fullmatch(UTC_SECOND, listed["created_at"])
    text_rows = clubfeed(cli_url, "business", "list").stdout.splitlines()
    assert text_rows == [f"{r['id']}\t{r['name']}" for r in rows]
