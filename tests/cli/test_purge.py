"""`clubfeed db purge`: API activity and console sessions (tombstones and keys: test_retention.py)."""

from __future__ import annotations

import json
import re
import time
import uuid

from click.testing import Result
from sqlalchemy import Engine, select, update

from clubfeed.auth import admins, sessions
from clubfeed.auth.credentials import token_hash
from clubfeed.auth.passwords import hasher
from clubfeed.cli.db import DAY_US
from clubfeed.settings import Settings
from clubfeed.storage.schema import admin_sessions, api_activity
from tests.clikit import cells, clubfeed, one_json_line
from tests.factories import Api, new_tenant


def _activity_times(engine: Engine, business_id: int) -> list[int]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(api_activity.c.at_us)
                .where(api_activity.c.business_id == business_id)
                .order_by(api_activity.c.id)
            ).scalars()
        )


def _wait_for_activity(engine: Engine, business_id: int, count: int) -> None:
    """The server writes its buffered activity every second."""
    deadline = time.monotonic() + 30
    while len(_activity_times(engine, business_id)) < count:
        assert time.monotonic() < deadline, "the server recorded no activity"
        time.sleep(0.1)


def _purge_row(stderr: str, business_id: int) -> list[str]:
    """The purge table's row of this business: tombstones, idempotency keys, API activity."""
    for line in stderr.splitlines():
        row = cells(line)
        if row and row[0] == str(business_id):
            return row[1:]
    raise AssertionError(f"no row for business {business_id} in:\n{stderr}")


def test_purge_deletes_api_activity_older_than_the_given_days(
    cli_url: str, api: Api, engine: Engine
) -> None:
    other = Api(api.client, new_tenant(engine))
    for reader in (api, other):
        for _ in range(3):
            assert reader.get("/v1/locations").status_code == 200
        _wait_for_activity(engine, reader.tenant.business.id, 3)
        with engine.begin() as conn:  # two of each business's three reads ten days ago
            oldest = (
                select(api_activity.c.id)
                .where(api_activity.c.business_id == reader.tenant.business.id)
                .order_by(api_activity.c.id)
                .limit(2)
                .scalar_subquery()
            )
            conn.execute(
                update(api_activity)
                .where(api_activity.c.id.in_(oldest))
                .values(at_us=api_activity.c.at_us - 10 * DAY_US)
            )
    business = api.tenant.business.id

    def purge(*options: str) -> Result:
        done = clubfeed(cli_url, "db", "purge", "--business", str(business), *options)
        assert done.exit_code == 0, done.stderr
        return done

    kept = purge("--activity-older-than", "11")
    assert _purge_row(kept.stderr, business) == ["0", "0", "0"]
    assert len(_activity_times(engine, business)) == 3

    purged = purge("--activity-older-than", "9")
    assert _purge_row(purged.stderr, business) == ["0", "0", "2"]
    assert len(_activity_times(engine, business)) == 1
    assert len(_activity_times(engine, other.tenant.business.id)) == 3  # not this business
    # A business's purge leaves alone what is purged for all at once.
    assert "sessions" not in purged.stderr and "OAuth" not in purged.stderr

    assert _purge_row(purge().stderr, business) == ["0", "0", "0"]  # kept 90 days by default
    assert _purge_row(purge("--activity-older-than", "0").stderr, business) == ["0", "0", "1"]
    assert _activity_times(engine, business) == []


def test_purge_deletes_expired_console_sessions_but_not_for_one_business(
    cli_url: str, api: Api, engine: Engine
) -> None:
    with engine.begin() as conn:
        admin = admins.create(
            conn,
            hasher(Settings(password_time_cost=1, password_memory_kib=32)),
            business_id=api.tenant.business.id,
            email=f"purge-{uuid.uuid4().hex[:10]}@gym.example",
            password="a long enough passphrase",
        )
        expired = sessions.start(conn, admin, ttl_s=0)
        live = sessions.start(conn, admin, ttl_s=3600)

    def stored(token: str) -> bool:
        with engine.connect() as conn:
            found = select(admin_sessions.c.token_hash).where(
                admin_sessions.c.token_hash == token_hash(token)
            )
            return conn.execute(found).first() is not None

    one = clubfeed(cli_url, "db", "purge", "--business", str(api.tenant.business.id))
    assert one.exit_code == 0, one.stderr
    assert stored(expired)

    everyone = clubfeed(cli_url, "db", "purge")

    assert everyone.exit_code == 0, everyone.stderr
    found = re.search(r"^Expired console sessions deleted: (\d+)$", everyone.stderr, re.M)
    assert found is not None and int(found[1]) >= 1, everyone.stderr
    assert not stored(expired)
    assert stored(live)
    with engine.connect() as conn:
        assert sessions.find(conn, live) is not None


def test_purge_json_reports_each_business_and_the_shared_counts(
    cli_url: str, api: Api, engine: Engine
) -> None:
    assert api.get("/v1/locations").status_code == 200
    _wait_for_activity(engine, api.tenant.business.id, 1)
    business = str(api.tenant.business.id)

    one = one_json_line(
        clubfeed(
            cli_url, "db", "purge", "--business", business, "--activity-older-than", "0", "--json"
        )
    )
    everyone = clubfeed(cli_url, "db", "purge", "--json")

    assert set(one) == {
        "tombstones_before",
        "idempotency_keys_before",
        "api_activity_before",
        "businesses",
        "oauth_deleted",
        "sessions_deleted",
    }
    assert one["businesses"] == [
        {"id": int(business), "tombstones": 0, "idempotency_keys": 0, "api_activity": 1}
    ]
    assert one["oauth_deleted"] is None and one["sessions_deleted"] is None
    for cut in ("tombstones_before", "idempotency_keys_before", "api_activity_before"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", one[cut])
    assert everyone.stderr == ""
    every = json.loads(everyone.stdout)
    assert int(business) in [b["id"] for b in every["businesses"]]
    assert isinstance(every["oauth_deleted"], int) and isinstance(every["sessions_deleted"], int)
