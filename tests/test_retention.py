"""Tombstone retention: purged deletes never go missing silently, they turn windows into 410."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
from sqlalchemy import Engine

from clubfeed.feed.retention import purge
from clubfeed.storage.engine import write_transaction
from clubfeed.timefmt import parse_aware, to_us
from tests.factories import Api, record

LONG_AGO = "2000-01-01T00:00:00+00:00"


def _purge(db: Engine, api: Api, before: str) -> dict[str, int]:
    with write_transaction(db) as conn:
        return purge(conn, api.tenant.business.id, to_us(parse_aware(before)))


def _assert_gone(response: httpx.Response) -> None:
    assert response.status_code == 410, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "/problems/history-purged"
    assert "complete transfer" in problem["detail"]


def _write_and_delete_twice(api: Api) -> tuple[str, dict[str, object]]:
    """Three check-ins; r1 deleted, then a window boundary, then r2 deleted.

    Returns the boundary (a consistent_until after r1's delete) and r2's tombstone.
    """
    refs = api.seed()
    for name in ("r1", "r2", "r3"):
        assert api.put("checkins", name, record("checkins", name, refs)).status_code == 201
    assert api.delete("checkins", "r1").status_code == 200
    boundary = api.get("/v1/checkins", params={"modified_since": LONG_AGO}).json()
    second = api.delete("checkins", "r2")
    assert second.status_code == 200
    return boundary["consistent_until"], second.json()


def test_purge_keeps_newer_tombstones_and_refuses_windows_before_it(db: Engine, api: Api) -> None:
    boundary, tombstone = _write_and_delete_twice(api)

    counts = _purge(db, api, boundary)
    assert counts["checkins"] == 1 and sum(counts.values()) == 1

    after = api.get("/v1/checkins", params={"modified_since": boundary})
    assert after.status_code == 200
    assert after.json()["data"] == [tombstone]
    _assert_gone(api.get("/v1/checkins", params={"modified_since": LONG_AGO}))
    _assert_gone(api.get("/v1/checkins", params={"modified_before": boundary}))
    assert [r["id"] for r in api.read_all("/v1/checkins")] == ["che-1", "r3"]
    lookup = api.get("/v1/checkins", params={"ids": "r1,r2"}).json()
    assert lookup == {"data": [tombstone], "missing": ["r1"]}


def test_a_purge_refuses_ranges_of_its_resource_only(db: Engine, api: Api) -> None:
    boundary, _ = _write_and_delete_twice(api)
    _purge(db, api, boundary)

    _assert_gone(api.get("/v1/checkins", params={"modified_since": LONG_AGO}))
    # Users, whose tombstones were not purged, still answer a range from long ago, and a
    # bookmark at their newest record (as Singer, Airbyte and dlt keep) goes on working.
    users = api.get("/v1/users", params={"modified_since": LONG_AGO})
    assert users.status_code == 200, users.text
    newest = max(r["modified_at"] for r in users.json()["data"])
    assert api.get("/v1/users", params={"modified_after": newest}).json()["data"] == []


def test_a_cursor_reaching_back_before_a_purge_gets_410(db: Engine, api: Api) -> None:
    boundary, _ = _write_and_delete_twice(api)
    first = api.get("/v1/checkins", params={"modified_since": LONG_AGO, "limit": 1})
    assert first.status_code == 200 and first.json()["next_cursor"] is not None

    _purge(db, api, boundary)

    cursor = first.json()["next_cursor"]
    _assert_gone(api.get("/v1/checkins", params={"modified_since": LONG_AGO, "cursor": cursor}))


def test_purge_touches_one_business_only(db: Engine, api: Api, other_api: Api) -> None:
    boundary, _ = _write_and_delete_twice(api)
    _write_and_delete_twice(other_api)

    _purge(db, api, boundary)

    others = other_api.get("/v1/checkins", params={"modified_since": LONG_AGO})
    assert others.status_code == 200
    assert sorted(r["id"] for r in others.json()["data"] if r.get("deleted")) == ["r1", "r2"]


def test_cli_purges_tombstones_and_idempotency_keys_older_than_the_given_days(
    db_url: str, api: Api
) -> None:
    _write_and_delete_twice(api)
    body = record("checkins", "kept-key", {"locations": "loc-1", "users": "use-1"})
    keyed = {**api.tenant.write_headers, "Idempotency-Key": "k-1"}
    first = api.client.put("/v1/checkins/kept-key", json=body, headers=keyed)
    assert first.status_code == 201
    business = str(api.tenant.business.id)

    def purge_cli(*options: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(Path(sys.executable).parent / "clubfeed"), "db", "purge", *options],
            env={**os.environ, "CLUBFEED_DATABASE_URL": db_url},
            capture_output=True,
            text=True,
        )

    kept = purge_cli("--tombstones-older-than", "1", "--business", business)
    assert kept.returncode == 0 and re.search(rf"\b{business}\b\W+0\W+0\W", kept.stderr), (
        kept.stderr
    )
    assert api.get("/v1/checkins", params={"modified_since": LONG_AGO}).status_code == 200

    purged = purge_cli(
        "--tombstones-older-than", "0", "--idempotency-keys-older-than", "0", "--business", business
    )
    assert purged.returncode == 0 and re.search(rf"\b{business}\b\W+2\W+1\W", purged.stderr)
    _assert_gone(api.get("/v1/checkins", params={"modified_since": LONG_AGO}))
    assert api.get("/v1/checkins", params={"ids": "r1,r2"}).json()["missing"] == ["r1", "r2"]
    # The key is forgotten: the same key with another body is now a new request.
    changed = {**body, "extra": {"v": 2}}
    other = api.client.put("/v1/checkins/kept-key", json=changed, headers=keyed)
    assert other.status_code == 200

    unknown = purge_cli("--business", "999999")
    assert unknown.returncode == 1 and "no business 999999" in unknown.stderr


def test_a_window_from_before_1970_is_fine_until_something_is_purged(api: Api) -> None:
    """Clients send minimum dates such as 0001-01-02; nothing purged means nothing missing."""
    _write_and_delete_twice(api)
    response = api.get("/v1/checkins", params={"modified_since": "1900-01-01T00:00:00Z"})
    assert response.status_code == 200
    assert sorted(r["id"] for r in response.json()["data"] if r.get("deleted")) == ["r1", "r2"]
