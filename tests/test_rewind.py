"""A server that went back in time: pollers ahead of its history get 410, never an empty page.

The restore is real: `pg_dump` / `pg_restore` of a database of its own on the shared
PostgreSQL, and SQLite's backup API in both directions, under a running API server.
"""

from __future__ import annotations

import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from clubfeed.settings import Settings
from clubfeed.storage.engine import make_engine
from clubfeed.storage.migrate import upgrade
from clubfeed.timefmt import format_us
from tests.conftest import BACKENDS, Server
from tests.factories import Api, new_tenant, record
from tests.problemkit import assert_problem

FRESH_UNTIL = format_us(1)


class Restorable:
    """A database of its own served by a running API; `backup()` and `restore()` are real ones."""

    def __init__(self, url: str, backup_path: Path) -> None:
        self.url = url
        self.backup_path = backup_path
        self.engine = make_engine(url)
        upgrade(self.engine)

    def backup(self) -> None:
        if self.engine.dialect.name == "sqlite":
            with _sqlite(self.url) as live, sqlite3.connect(self.backup_path) as copy:
                live.backup(copy)
        else:
            _run("pg_dump", "--format=custom", f"--file={self.backup_path}", self._libpq())

    def restore(self) -> None:
        if self.engine.dialect.name == "sqlite":
            with sqlite3.connect(self.backup_path) as copy, _sqlite(self.url) as live:
                copy.backup(live)
        else:
            _run(
                "pg_restore",
                "--clean",
                "--if-exists",
                "--single-transaction",
                "--no-owner",
                f"--dbname={self._libpq()}",
                str(self.backup_path),
            )

    def _libpq(self) -> str:
        return make_url(self.url).set(drivername="postgresql").render_as_string(False)


def _sqlite(url: str) -> sqlite3.Connection:
    database = make_url(url).database
    assert database is not None
    return sqlite3.connect(database)


def _run(*command: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.fixture(params=BACKENDS)
def restorable(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Restorable]:
    """A fresh database on this backend: the PostgreSQL one sits beside the run's test database."""
    if request.param == "sqlite":
        yield Restorable(f"sqlite:///{tmp_path / 'restored.db'}", tmp_path / "backup.db")
        return
    run_db = make_url(request.getfixturevalue("pg_url"))
    name = f"{run_db.database}_restore_{uuid.uuid4().hex[:6]}"
    admin = create_engine(run_db, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    restorable = Restorable(run_db.set(database=name).render_as_string(False), tmp_path / "dump")
    try:
        yield restorable
    finally:
        restorable.engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def served(restorable: Restorable) -> Iterator[Api]:
    """A tenant of the restorable database, reading and writing through a running server."""
    with (
        Server(Settings(database_url=restorable.url)) as server,
        httpx.Client(base_url=server.base_url, timeout=60) as client,
    ):
        yield Api(client, new_tenant(restorable.engine))


def _page(api: Api, **params: Any) -> dict[str, Any]:
    response = api.get("/v1/users", params=params)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


def _assert_rewound(response: httpx.Response) -> str:
    body = assert_problem(response, 410, "history-rewound")
    assert body["title"] == "Changes no longer held by the server"
    assert "restored" in body["detail"] and "complete transfer" in body["detail"]
    detail: str = body["detail"]
    return detail


def _put(api: Api, record_id: str, **overrides: Any) -> None:
    response = api.put("users", record_id, record("users", record_id, **overrides))
    assert response.status_code in (200, 201), response.text


def test_after_a_restore_pollers_ahead_of_it_get_410_then_a_complete_transfer_works(
    restorable: Restorable, served: Api
) -> None:
    api = served
    for record_id in ("u1", "u2", "u3"):
        _put(api, record_id)
    backed_up = _page(api)["consistent_until"]
    restorable.backup()

    _put(api, "u2", first_name="Changed")
    _put(api, "u4")
    assert api.delete("users", "u3").status_code == 200
    poll = _page(api, modified_since=backed_up)
    assert [r["id"] for r in poll["data"]] == ["u2", "u4", "u3"]
    ahead = poll["consistent_until"]
    range_cursor = _page(api, modified_since=backed_up, limit=1)["next_cursor"]
    # Its next page would still find u2 and u3 in the restored rows: only the bound tells.
    complete = _page(api, limit=1)
    assert [r["id"] for r in complete["data"]] == ["u1"]
    assert range_cursor is not None and complete["next_cursor"] is not None

    restorable.restore()

    detail = _assert_rewound(api.get("/v1/users", params={"modified_since": ahead}))
    assert f"consistent_until {backed_up}" in detail
    _assert_rewound(api.get("/v1/users", params={"cursor": range_cursor}))
    _assert_rewound(api.get("/v1/users", params={"cursor": complete["next_cursor"]}))

    # The restored server's own boundary is an ordinary quiet poll.
    assert _page(api, modified_since=backed_up) == {
        "data": [],
        "next_cursor": None,
        "consistent_until": backed_up,
    }
    # A write moves the clock's time past every old position; its seq stays behind the cursors'.
    _put(api, "u5")
    _assert_rewound(api.get("/v1/users", params={"cursor": range_cursor}))
    _assert_rewound(api.get("/v1/users", params={"cursor": complete["next_cursor"]}))

    transfer = api.read_all("/v1/users", limit=1)
    assert [(r["id"], r["first_name"]) for r in transfer] == [
        (i, f"first_name of {i}") for i in ("u1", "u2", "u3", "u5")
    ]
    restarted = _page(api)["consistent_until"]
    _put(api, "u6")
    assert api.delete("users", "u2").status_code == 200
    after = _page(api, modified_since=restarted)
    assert [(r["id"], r.get("deleted", False)) for r in after["data"]] == [
        ("u6", False),
        ("u2", True),
    ]
    assert _page(api, modified_since=after["consistent_until"])["data"] == []


def test_a_bounded_window_cursor_past_the_restored_clock_gets_410(
    restorable: Restorable, served: Api
) -> None:
    """Its seq bound is inside the restored rows, but its window ends after their last change.

    Served on, its next pages would hold b as it was before the lost update.
    """
    api = served
    for record_id in ("a", "b", "c"):
        _put(api, record_id)
    restorable.backup()
    changed = api.put("users", "b", record("users", "b", first_name="Changed"))
    assert changed.status_code == 200
    window = {"modified_since": format_us(0), "modified_before": changed.json()["modified_at"]}
    first = _page(api, **window, limit=1)
    assert [r["id"] for r in first["data"]] == ["a"]

    restorable.restore()

    _assert_rewound(api.get("/v1/users", params={"cursor": first["next_cursor"]}))


def test_a_modified_since_past_the_last_change_is_410_and_its_boundary_is_200(api: Api) -> None:
    """A fresh business's consistent_until is the epoch; a time from the client's own clock is past it."""
    assert _page(api) == {"data": [], "next_cursor": None, "consistent_until": FRESH_UNTIL}
    assert _page(api, modified_since=FRESH_UNTIL)["data"] == []
    detail = _assert_rewound(api.get("/v1/users", params={"modified_since": format_us(2)}))
    assert "did not come from this API" in detail

    _put(api, "u1")
    until = _page(api)["consistent_until"]
    assert _page(api, modified_since=until) == {
        "data": [],
        "next_cursor": None,
        "consistent_until": until,
    }
    ahead = {"modified_since": "2999-01-01T00:00:00Z", "modified_before": "3000-01-01T00:00:00Z"}
    _assert_rewound(api.get("/v1/users", params=ahead))


def test_a_complete_transfer_page_emptied_by_changes_is_an_empty_last_page(api: Api) -> None:
    """A cursor page whose rows all moved past its bound is not a rewound server."""
    _put(api, "u1")
    _put(api, "u2")
    first = _page(api, limit=1)
    assert [r["id"] for r in first["data"]] == ["u1"]
    assert api.delete("users", "u2").status_code == 200
    assert _page(api, cursor=first["next_cursor"]) == {
        "data": [],
        "next_cursor": None,
        "consistent_until": first["consistent_until"],
    }
