"""`clubfeed pull` against a live server: a complete copy, then only changes, tombstones
applied, into SQLite and PostgreSQL; --verify, --follow, and a 410 that replaces the copy."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from clubfeed import checksums
from tests.conftest import DEFAULT_PG_URL, Server
from tests.factories import Api, Tenant, record, seed_checkins

CLUBFEED = Path(sys.executable).parent / "clubfeed"


def pull(server: Server, tenant: Tenant, to: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CLUBFEED_INTEGRATOR_KEY": tenant.integrator.key,
        "CLUBFEED_TOKEN": tenant.business.shared_secret,
    }
    return subprocess.run(
        [str(CLUBFEED), "pull", server.base_url, "--to", to, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def results(done: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    assert done.returncode == 0, done.stderr
    return {r["resource"]: r for r in json.loads(done.stdout)["resources"]}


def served(api: Api, resource: str) -> dict[str, str]:
    """The server's live records of a resource: id → modified_at, by a complete transfer."""
    return {r["id"]: r["modified_at"] for r in api.read_all(f"/v1/{resource}", limit=10_000)}


def sqlite_copy(path: Path, table: str) -> dict[str, str]:
    with sqlite3.connect(path) as conn:
        return dict(conn.execute(f"SELECT id, modified_at FROM {table}").fetchall())


def copied_so_far(path: Path) -> dict[str, str]:
    """The copy's check-ins, or none while the pull has not yet made its tables."""
    try:
        return sqlite_copy(path, "checkins") if path.exists() else {}
    except sqlite3.OperationalError:  # the file exists, its tables do not yet
        return {}


@pytest.fixture
def pg_copy() -> Iterator[str]:
    """A database of its own for a PostgreSQL copy, dropped afterwards."""
    base = make_url(os.environ.get("CLUBFEED_TEST_PG_URL") or DEFAULT_PG_URL)
    name = f"clubfeed_copy_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base.set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(drivername="postgresql", database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_pull_copies_everything_then_only_changes_with_tombstones(
    api: Api, server: Server, tenant: Tenant, tmp_path: Path
) -> None:
    seed_checkins(api, 30)
    copy = tmp_path / "copy.db"
    args = ("--resource", "checkins", "--resource", "users", "--verify", "--json")
    first = results(pull(server, tenant, f"sqlite:///{copy}", *args))
    assert set(first) == {"checkins", "users"}
    assert first["checkins"] | {"bookmark": None} == {
        "resource": "checkins",
        "transfer": True,
        "records": 30,
        "tombstones": 0,
        "copy": 30,
        "bookmark": None,
        "verified": True,
        "differing_buckets": [],
        "unverified": False,
    }
    assert sqlite_copy(copy, "checkins") == served(api, "checkins")
    assert sqlite_copy(copy, "users") == served(api, "users")
    with sqlite3.connect(copy) as conn:
        (row,) = conn.execute(
            "SELECT user_id, location_id, checked_in_at, extra FROM checkins WHERE id = 'C000'"
        ).fetchall()
    one = api.get("/v1/checkins/C000").json()
    assert row == (
        one["user_id"],
        one["location_id"],
        one["checked_in_at"],
        json.dumps(one["extra"], ensure_ascii=False, separators=(",", ":")),
    )

    changed = record("checkins", "C001", {"locations": "L1", "users": "U2"})
    assert api.batch("checkins", [changed], delete=["C002", "C003"]).status_code == 200
    second = results(pull(server, tenant, f"sqlite:///{copy}", *args))
    assert (second["checkins"]["transfer"], second["checkins"]["records"]) == (False, 1)
    assert (second["checkins"]["tombstones"], second["checkins"]["copy"]) == (2, 28)
    assert second["checkins"]["verified"] is True
    assert (second["users"]["records"], second["users"]["tombstones"]) == (0, 0)
    assert sqlite_copy(copy, "checkins") == served(api, "checkins")
    with sqlite3.connect(copy) as conn:
        assert conn.execute("SELECT user_id FROM checkins WHERE id = 'C001'").fetchall() == [
            ("U2",)
        ]


def test_pull_into_postgresql_with_every_resource(
    api: Api, server: Server, tenant: Tenant, pg_copy: str
) -> None:
    seed_checkins(api, 12)
    found = results(pull(server, tenant, pg_copy, "--verify", "--json"))
    assert len(found) == 12 and all(r["verified"] for r in found.values())
    assert found["sales-categories"]["copy"] == 0
    with psycopg.connect(pg_copy) as conn:
        rows = conn.execute("SELECT id, checked_in_at FROM checkins ORDER BY id").fetchall()
        tables = {
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
    assert [r[0] for r in rows] == [f"C{i:03}" for i in range(12)]
    assert rows[0][1].utcoffset() is not None
    assert {"sales_categories", "class_attendances", "clubfeed_bookmarks"} <= tables


def test_a_410_turns_into_a_complete_transfer_that_replaces_the_copy(
    api: Api, server: Server, tenant: Tenant, tmp_path: Path
) -> None:
    seed_checkins(api, 5)
    copy = tmp_path / "copy.db"
    results(pull(server, tenant, f"sqlite:///{copy}", "--resource", "checkins", "--json"))
    with sqlite3.connect(copy) as conn:
        conn.execute(
            "INSERT INTO checkins (id, created_at, modified_at, checked_in_at, location_id, user_id, extra) "
            "VALUES ('stray', 'x', 'x', 'x', 'L1', 'U1', '{}')"
        )
        conn.execute("UPDATE clubfeed_bookmarks SET modified_since = '2999-01-01T00:00:00+00:00'")
    again = results(pull(server, tenant, f"sqlite:///{copy}", "--resource", "checkins", "--json"))
    assert (again["checkins"]["transfer"], again["checkins"]["copy"]) == (True, 5)
    assert sqlite_copy(copy, "checkins") == served(api, "checkins")


def test_follow_applies_changes_until_stopped(
    api: Api, server: Server, tenant: Tenant, tmp_path: Path
) -> None:
    seed_checkins(api, 3)
    copy = tmp_path / "copy.db"
    env = {
        **os.environ,
        "CLUBFEED_INTEGRATOR_KEY": tenant.integrator.key,
        "CLUBFEED_TOKEN": tenant.business.shared_secret,
    }
    command = [str(CLUBFEED), "pull", server.base_url, "--to", f"sqlite:///{copy}"]
    follower = subprocess.Popen(
        [*command, "--resource", "checkins", "--follow", "--interval", "0.2", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while len(copied_so_far(copy)) < 3:
            assert time.monotonic() < deadline and follower.poll() is None
            time.sleep(0.1)
        new = record("checkins", "C900", {"locations": "L1", "users": "U1"})
        assert api.batch("checkins", [new], delete=["C000"]).status_code == 200
        while copied_so_far(copy) != served(api, "checkins"):
            assert time.monotonic() < deadline and follower.poll() is None
            time.sleep(0.1)
        follower.send_signal(signal.SIGTERM)
        out, err = follower.communicate(timeout=30)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert follower.returncode == 0, err
    polls = [json.loads(line)["resources"][0] for line in out.splitlines()]
    assert polls[0]["transfer"] and polls[0]["copy"] == 3
    assert sum(p["records"] for p in polls[1:]) == 1
    assert sum(p["tombstones"] for p in polls[1:]) == 1


def test_bad_destination_and_missing_credentials_are_refused(
    server: Server, tenant: Tenant
) -> None:
    done = pull(server, tenant, "mysql://nope")
    assert done.returncode == 2
    assert "sqlite:///" in done.stderr and "Traceback" not in done.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLUBFEED_")}
    missing = subprocess.run(
        [str(CLUBFEED), "pull", server.base_url, "--to", "sqlite:///x.db"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "--integrator-key" in missing.stderr


def test_verify_finds_a_copy_that_drifted_and_exits_1(
    api: Api, server: Server, tenant: Tenant, tmp_path: Path
) -> None:
    seed_checkins(api, 8)
    copy = tmp_path / "copy.db"
    args = ("--resource", "checkins", "--verify", "--json")
    assert results(pull(server, tenant, f"sqlite:///{copy}", *args))["checkins"]["verified"]
    with sqlite3.connect(copy) as conn:
        conn.execute("DELETE FROM checkins WHERE id = 'C004'")
    drifted = pull(server, tenant, f"sqlite:///{copy}", *args)
    assert drifted.returncode == 1, drifted.stderr
    (found,) = json.loads(drifted.stdout)["resources"]
    assert (found["verified"], found["copy"], found["records"]) == (False, 7, 0)
    assert found["differing_buckets"] == [checksums.bucket_of("C004", 1024)]


def test_a_server_url_without_scheme_and_an_unopenable_copy_are_refused_at_once(
    server: Server, tenant: Tenant, tmp_path: Path
) -> None:
    started = time.monotonic()
    bare = subprocess.run(
        [str(CLUBFEED), "pull", server.base_url.removeprefix("http://"), "--to", "sqlite:///x.db"],
        env={**os.environ, "CLUBFEED_INTEGRATOR_KEY": "k", "CLUBFEED_TOKEN": "t"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bare.returncode == 2 and "http://" in bare.stderr, bare.stderr
    assert time.monotonic() - started < 30  # refused, not retried
    nowhere = pull(server, tenant, f"sqlite:///{tmp_path}/no/such/dir/copy.db")
    assert nowhere.returncode == 1, nowhere.stderr
    assert "cannot open the copy" in nowhere.stderr and "Traceback" not in nowhere.stderr


def test_a_copy_made_before_a_field_existed_gets_its_column(
    api: Api, server: Server, tenant: Tenant, tmp_path: Path
) -> None:
    seed_checkins(api, 2)
    copy = tmp_path / "old.db"
    with sqlite3.connect(copy) as conn:
        conn.execute(
            "CREATE TABLE checkins (id text PRIMARY KEY, created_at text NOT NULL, "
            "modified_at text NOT NULL, checked_in_at text, location_id text, user_id text, "
            "extra text NOT NULL)"
        )
    found = results(pull(server, tenant, f"sqlite:///{copy}", "--resource", "checkins", "--json"))
    assert found["checkins"]["copy"] == 2
    with sqlite3.connect(copy) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(checkins)")}
    assert "membership_id" in columns
