"""connectors/dlt against a live server: dlt's own pipeline runs the `rest_api` source into
DuckDB, a complete transfer and then incremental syncs while a writer creates, updates and
deletes; the copy must equal a complete transfer, and no change may arrive twice.

On SQLite only: the connector sees HTTP, whichever database serves it, and the feed's
own proofs (tests/test_feed_*.py) run on both."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import subprocess
import sys
import threading
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import dlt
import duckdb
import httpx
import pytest
from sqlalchemy import Engine

from clubfeed.catalogue import RESOURCES
from clubfeed.feed.retention import purge
from clubfeed.storage.engine import write_transaction
from clubfeed.timefmt import parse_aware, to_us
from tests.conftest import Server
from tests.factories import Api, Tenant, record, seed_checkins

CONNECTOR = Path(__file__).parents[1] / "connectors" / "dlt" / "clubfeed_pipeline.py"
PAGE = 7
"""Pages this small make every query span several, cutting one write's records in two."""

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

Delivery = tuple[str, str, str]
"""(resource, id, modified_at) of one record or tombstone that dlt passed on to load."""


def load_connector() -> ModuleType:
    """The connector as its users run it: a script beside its README, not a package."""
    if "clubfeed_pipeline" not in sys.modules:  # dlt finds a source's module by name
        spec = importlib.util.spec_from_file_location("clubfeed_pipeline", CONNECTOR)
        assert spec is not None and spec.loader is not None
        sys.modules[spec.name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[spec.name])
    return sys.modules["clubfeed_pipeline"]


class Copy:
    """A dlt pipeline into a DuckDB file under tmp_path, counting every item it loads."""

    def __init__(self, server: Server, tenant: Tenant, tmp_path: Path) -> None:
        self.connector = load_connector()
        self.server, self.tenant = server, tenant
        self.deliveries: Counter[Delivery] = Counter()
        self.pipeline = dlt.pipeline(
            pipeline_name=f"clubfeed_{uuid.uuid4().hex[:8]}",
            destination=dlt.destinations.duckdb(str(tmp_path / "copy.duckdb")),
            dataset_name="clubfeed",
            pipelines_dir=str(tmp_path / "pipelines"),
        )

    def source(self) -> Any:
        source = self.connector.clubfeed(
            base_url=self.server.base_url,
            integrator_key=self.tenant.integrator.key,
            token=self.tenant.business.shared_secret,
            page_size=PAGE,
        )
        for name, resource in source.resources.items():
            # Behind dlt's incremental step (which dlt places last), so what is counted is
            # what dlt passes on to the destination, after its own filtering.
            resource.add_map(self._counter(name), insert_at=len(resource._pipe))
        return source

    def _counter(self, resource: str) -> Any:
        def count(item: dict[str, Any]) -> dict[str, Any]:
            self.deliveries[(resource, item["id"], item["modified_at"])] += 1
            return item

        return count

    def sync(self) -> None:
        self.connector.sync(self.pipeline, self.source)

    def rows(self, resource: str) -> dict[str, datetime]:
        """The copy's id → modified_at (DuckDB hands back aware datetimes)."""
        table = resource.replace("-", "_")
        with self.pipeline.sql_client() as sql:
            return dict(sql.execute_sql(f"SELECT id, modified_at FROM {table}"))

    def bookmark(self, resource: str) -> dict[str, Any]:
        state = self.pipeline.state["sources"]["clubfeed"]["resources"][resource]
        found: dict[str, Any] = state["incremental"][self.connector.SEEN_UNTIL]
        return found


@pytest.fixture(autouse=True)
def telemetry_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """dlt reports anonymous usage unless told not to; nothing here may leave the machine."""
    monkeypatch.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")


def served(api: Api, resource: str) -> dict[str, datetime]:
    """A complete transfer: the server's live records, id → modified_at."""
    pages = api.read_all(f"/v1/{resource}", limit=10_000)
    return {r["id"]: datetime.fromisoformat(r["modified_at"]) for r in pages}


def every_resource(api: Api) -> None:
    """A record of each of the 12 resources, and 40 check-ins of U1 at L1."""
    api.seed()
    seed_checkins(api, 40)


class Writer(threading.Thread):
    """Creates, updates and deletes check-ins and users through the ingest API until stopped."""

    def __init__(self, server: Server, tenant: Tenant) -> None:
        super().__init__(daemon=True)
        self.api = Api(httpx.Client(base_url=server.base_url, timeout=60), tenant)
        self.stop = threading.Event()
        self.deleted: set[tuple[str, str]] = set()
        self.batches = 0
        self.failure: BaseException | None = None

    def run(self) -> None:
        rng = random.Random(20261205)
        # Check-ins refer to U1 and U2 only, so that deleting a W user breaks no reference.
        live: dict[str, list[str]] = {"checkins": [f"C{i:03}" for i in range(39)], "users": []}
        try:
            while not self.stop.is_set() and self.batches < 400:
                n = self.batches
                users = [record("users", u) for u in [f"W{n}", *live["users"][-1:]]]
                gone = live["users"][:1] if n % 3 == 2 else []  # never the one updated
                self._write("users", users, gone, live)
                live["users"].append(f"W{n}")
                made = [f"N{n}-{i}" for i in range(3)]
                touched = rng.sample(live["checkins"], 3)
                refs = {"locations": "L1", "users": rng.choice(["U1", "U2"])}
                rows = [record("checkins", i, refs, extra={"round": n}) for i in made + touched]
                gone = rng.sample([c for c in live["checkins"] if c not in touched], 2)
                self._write("checkins", rows, gone, live)
                live["checkins"] += made
                self.batches += 1
                self.stop.wait(0.05)
        except BaseException as error:  # reported by the test thread
            self.failure = error
        finally:
            self.api.client.close()

    def _write(
        self, resource: str, upsert: list[dict[str, Any]], delete: list[str], live: Any
    ) -> None:
        response = self.api.batch(resource, upsert, delete=delete)
        assert response.status_code == 200, response.text
        for gone in delete:
            live[resource].remove(gone)
            self.deleted.add((resource, gone))


def test_the_copy_equals_a_complete_transfer_after_syncs_during_writes(
    api: Api, server: Server, tenant: Tenant, tmp_path: Path
) -> None:
    every_resource(api)
    assert api.batch("checkins", delete=["C039"]).status_code == 200  # before any sync
    copy = Copy(server, tenant, tmp_path)
    assert set(copy.connector.RESOURCES) == {r.name for r in RESOURCES}

    copy.sync()
    first = Counter(resource for resource, _, _ in copy.deliveries)
    assert first == {r.name: 1 for r in RESOURCES} | {"locations": 2, "users": 3, "checkins": 40}
    bookmarks = {r.name: copy.bookmark(r.name)["last_value"] for r in RESOURCES}

    writer = Writer(server, tenant)
    writer.start()
    try:
        for _ in range(5):
            copy.sync()
    finally:
        writer.stop.set()
        writer.join(60)
    assert writer.failure is None, writer.failure
    assert writer.batches >= 3
    copy.sync()
    delivered = copy.deliveries.total()
    copy.sync()  # quiet: the server wrote nothing since, so nothing comes again
    assert copy.deliveries.total() == delivered

    repeated = {d: n for d, n in copy.deliveries.items() if n > 1}
    assert repeated == {}
    # The full sync's bookmark lies past C039's delete (it is the transfer's
    # consistent_until), so no tombstone comes for a row the copy never had.
    assert [d for d in copy.deliveries if d[:2] == ("checkins", "C039")] == []
    deleted = writer.deleted
    for resource in RESOURCES:
        name = resource.name
        assert copy.rows(name) == served(api, name), name
        # Every last change since the full sync arrived, each delete as its tombstone.
        since = api.read_all(f"/v1/{name}", limit=10_000, modified_after=bookmarks[name])
        assert {(name, r["id"], r["modified_at"]) for r in since} <= set(copy.deliveries)
        tombstones = {(name, r["id"]) for r in since if r.get("deleted")}
        assert tombstones == {d for d in deleted if d[0] == name}
        state = copy.bookmark(name)
        # Past every change delivered, and where the server has nothing newer to send.
        assert state["last_value"] >= max(m for r, _, m in copy.deliveries if r == name)
        assert api.read_all(f"/v1/{name}", modified_after=state["last_value"]) == []
        assert state["unique_hashes"] == []  # an open range keeps no per-id hashes
        assert_same_bodies(copy, name, api.read_all(f"/v1/{name}", limit=10_000))
    with copy.pipeline.sql_client() as sql:
        assert sql.execute_sql("SELECT count(*) FROM checkins WHERE deleted") == [(0,)]


def assert_same_bodies(copy: Copy, resource: str, records: list[dict[str, Any]]) -> None:
    """The copy holds every field as served: times as the same instant, `extra` as JSON.

    A field null in every record so far has no column yet (dlt adds it with its first value).
    """
    table = resource.replace("-", "_")
    with copy.pipeline.sql_client() as sql, sql.execute_query(f"SELECT * FROM {table}") as cursor:
        names = [c[0] for c in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    by_id = {row["id"]: row for row in rows}
    for served_record in records:
        row = by_id[served_record["id"]]
        for field, value in served_record.items():
            if field == "extra":
                assert json.loads(row[field]) == value
            elif isinstance(value, str) and "T" in value and value[-6] in "+-":
                assert row[field] == datetime.fromisoformat(value), (resource, field)
            else:
                assert row.get(field) == value, (resource, field)


def test_a_410_replaces_the_copy_with_a_complete_transfer(
    api: Api, db: Engine, server: Server, tenant: Tenant, tmp_path: Path
) -> None:
    seed_checkins(api, 5)
    copy = Copy(server, tenant, tmp_path)
    copy.sync()
    assert api.batch("checkins", delete=["C000"]).status_code == 200
    with write_transaction(db) as conn:  # the tombstone is purged before the copy saw it
        purge(conn, tenant.business.id, to_us(parse_aware("2999-01-01T00:00:00+00:00")))
    gone = api.get(
        "/v1/checkins", params={"modified_after": copy.bookmark("checkins")["last_value"]}
    )
    assert gone.status_code == 410

    copy.sync()
    assert copy.rows("checkins") == served(api, "checkins")
    assert set(copy.rows("checkins")) == {f"C{i:03}" for i in range(1, 5)}
    # The complete transfer after the 410 brings the four live check-ins once more: the
    # only re-delivery, and the one the contract asks for.
    checkins = {(i, m): n for (r, i, m), n in copy.deliveries.items() if r == "checkins"}
    assert sorted(checkins.values()) == [1, 2, 2, 2, 2]


def test_a_transfer_after_a_purge_is_followed_by_changes_not_by_a_410(
    api: Api, db: Engine, server: Server, tenant: Tenant, tmp_path: Path
) -> None:
    """The first sync comes after a delete newer than every live check-in was purged: its
    bookmark must lie past that delete, or every later sync is a 410 and a new transfer."""
    seed_checkins(api, 3)
    assert api.batch("checkins", delete=["C000"]).status_code == 200
    with write_transaction(db) as conn:
        purge(conn, tenant.business.id, to_us(parse_aware("2999-01-01T00:00:00+00:00")))
    copy = Copy(server, tenant, tmp_path)
    copy.sync()
    refs = {"locations": "L1", "users": "U1"}
    assert api.batch("checkins", [record("checkins", "C003", refs)]).status_code == 200
    copy.sync()
    copy.sync()

    checkins = sorted((i, n) for (r, i, _), n in copy.deliveries.items() if r == "checkins")
    assert checkins == [("C001", 1), ("C002", 1), ("C003", 1)]
    assert set(copy.rows("checkins")) == {"C001", "C002", "C003"}


def test_the_script_runs_as_the_readme_says(api: Api, server: Server, tmp_path: Path) -> None:
    """`python clubfeed_pipeline.py` with the credentials in dlt's environment variables."""
    seed_checkins(api, 3)
    env = {
        **os.environ,
        "SOURCES__CLUBFEED__BASE_URL": server.base_url,
        "SOURCES__CLUBFEED__INTEGRATOR_KEY": api.tenant.integrator.key,
        "SOURCES__CLUBFEED__TOKEN": api.tenant.business.shared_secret,
        "DLT_DATA_DIR": str(tmp_path / "dlt"),  # pipeline state, instead of ~/.dlt
    }
    done = subprocess.run(
        [sys.executable, str(CONNECTOR)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "1 load package(s) were loaded" in done.stdout, done.stdout
    with duckdb.connect(str(tmp_path / "clubfeed_copy.duckdb"), read_only=True) as conn:
        found = conn.execute("SELECT id FROM clubfeed.checkins ORDER BY id").fetchall()
    assert found == [("C000",), ("C001",), ("C002",)]
