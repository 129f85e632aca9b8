"""The Airbyte manifest (connectors/airbyte) against a live clubfeed, run by the CDK's own
`source-declarative-manifest`: a full sync, incremental syncs while a writer creates,
updates and deletes, and a destination that ends equal to a complete transfer; and a business
that has purged its old deletes, where every sync without a bookmark must be a complete
transfer (a range from the epoch is refused there).

There is no Airbyte platform here, so `Destination` does what its dedup destinations do
with the source's messages (see its docstring), and the test carries each stream's STATE
from one `read` to the next as the platform does.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import Engine

from clubfeed.catalogue import RESOURCES, Kind
from clubfeed.feed.retention import purge
from clubfeed.storage.engine import write_transaction
from clubfeed.timefmt import parse_aware, to_us
from tests.conftest import Server
from tests.factories import Api, Tenant, record, seed_checkins

ROOT = Path(__file__).resolve().parents[1]
CONNECTOR = ROOT / "connectors" / "airbyte"
MANIFEST = CONNECTOR / "manifest.yaml"
VENVS = ROOT / ".venv-connectors"
VENV = VENVS / "airbyte"
STREAMS = [r.name for r in RESOURCES]
EPOCH = "1970-01-01T00:00:00.000000+00:00"
"""The manifest's start_datetime: the window of a stream without a bookmark starts there."""

# One backend: the feed's guarantees are proven on both by tests/test_feed_*.py, and what
# these tests check is the manifest's mapping of them onto Airbyte's conventions.
on_sqlite = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture(scope="session")
def source_command() -> Path:
    """`source-declarative-manifest` from a venv of its own, built once per requirements file.

    airbyte-cdk pins pyrate-limiter<3.2 and schemathesis needs >=4, so the CDK cannot live in
    clubfeed's test venv. It is rebuilt when requirements.txt or the Python changes; a lock keeps
    two test processes from building it at once.
    """
    requirements = CONNECTOR / "requirements.txt"
    key = hashlib.sha256(requirements.read_bytes() + sys.version.encode()).hexdigest()
    marker = VENV / ".requirements-sha256"
    VENVS.mkdir(exist_ok=True)
    (VENVS / ".gitignore").write_text("*\n")
    with (VENVS / "airbyte.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (marker.exists() and marker.read_text() == key):
            shutil.rmtree(VENV, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
            pip = [str(VENV / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check"]
            subprocess.run([*pip, "-r", str(requirements)], check=True)
            marker.write_text(key)
    return VENV / "bin" / "source-declarative-manifest"


class Destination:
    """A SQLite copy kept the way Airbyte's dedup destinations keep one (append_dedup).

    Every RECORD is appended to a raw table, committed when a STATE message arrives (a
    destination checkpoints at states, so records after a sync's last state are dropped); a
    stream's final table is, per primary key, the record with the greatest cursor (the later
    one on a tie), left out when it carries `_ab_cdc_deleted_at`, with a column for each
    property of the stream's schema (null where the record has no such field: the CDK leaves
    null fields out of its messages).
    """

    def __init__(self, path: Path, catalog: list[dict[str, Any]]) -> None:
        self.columns = {s["name"]: list(s["json_schema"]["properties"]) for s in catalog}
        self.db = sqlite3.connect(path)
        self.db.execute(
            "CREATE TABLE raw (seq INTEGER PRIMARY KEY, stream TEXT, id TEXT, modified_at TEXT,"
            " deleted_at TEXT, data TEXT)"
        )
        self.db.commit()
        self.states: dict[str, dict[str, Any]] = {}

    def apply(self, messages: list[dict[str, Any]]) -> int:
        """Apply one sync's messages; returns how many records it delivered."""
        delivered = 0
        bookmarked: set[str] = set()
        for message in messages:
            if message["type"] == "RECORD":
                delivered += 1
                stream, data = message["record"]["stream"], message["record"]["data"]
                # A stream's bookmark comes once its query is done, never between its pages.
                assert stream not in bookmarked, stream
                self.db.execute(
                    "INSERT INTO raw (stream, id, modified_at, deleted_at, data)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (
                        stream,
                        data["id"],
                        data["modified_at"],
                        data.get("_ab_cdc_deleted_at"),
                        json.dumps(data),
                    ),
                )
            elif message["type"] == "STATE":
                self.db.commit()
                state = message["state"]
                bookmarked.add(state["stream"]["stream_descriptor"]["name"])
                self.states[state["stream"]["stream_descriptor"]["name"]] = state
        self.db.rollback()
        return delivered

    def final(self, stream: str) -> dict[str, dict[str, Any]]:
        rows = self.db.execute(
            "SELECT data, deleted_at FROM (SELECT data, deleted_at, ROW_NUMBER() OVER"
            " (PARTITION BY id ORDER BY modified_at DESC, seq DESC) AS n FROM raw WHERE stream = ?)"
            " WHERE n = 1",
            (stream,),
        )
        live = (json.loads(data) for data, deleted in rows if not deleted)
        return {r["id"]: self.row(stream, r) for r in live}

    def row(self, stream: str, data: dict[str, Any]) -> dict[str, Any]:
        """A record as the final table holds it: one value per column."""
        return {column: data.get(column) for column in self.columns[stream]}

    def deliveries(self) -> Counter[tuple[str, str, str]]:
        """How many times each change (stream, id, modified_at) arrived, over every sync."""
        rows = self.db.execute("SELECT stream, id, modified_at FROM raw")
        return Counter(rows)

    def tombstones(self, stream: str) -> dict[str, dict[str, Any]]:
        rows = self.db.execute(
            "SELECT data FROM raw WHERE stream = ? AND deleted_at IS NOT NULL", (stream,)
        )
        return {r["id"]: r for r in (json.loads(data) for (data,) in rows)}

    def clear(self, stream: str) -> None:
        """Airbyte's "clear data" of a stream: its rows go, and so does its state."""
        self.db.execute("DELETE FROM raw WHERE stream = ?", (stream,))
        self.db.commit()
        self.states.pop(stream, None)

    def bookmark(self, stream: str) -> str:
        modified_at: str = self.states[stream]["stream"]["stream_state"]["modified_at"]
        return modified_at


class Airbyte:
    """The source's `discover` and `read`, as the platform calls them, with files in `tmp`."""

    def __init__(self, command: Path, tmp: Path, config: dict[str, Any]) -> None:
        self.command = command
        self.tmp = tmp
        (tmp / "config.json").write_text(json.dumps(config))

    def run(self, *args: str, check: bool = True, debug: bool = False) -> list[dict[str, Any]]:
        """The command's messages; with `check`, it must have succeeded without an error trace.

        With `debug`, they include the CDK's log of each request it made (see `requested`).
        """
        files = ("--config", str(self.tmp / "config.json"), "--manifest-path", str(MANIFEST))
        done = subprocess.run(
            [str(self.command), *args, *files, *(["--debug"] if debug else [])],
            capture_output=True,
            text=True,
            timeout=120,
        )
        messages = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        if check:
            failed = errors(messages)
            assert done.returncode == 0 and not failed, (failed, done.stderr[-2000:])
        return messages

    def catalog(self) -> list[dict[str, Any]]:
        (found,) = [m["catalog"] for m in self.run("discover") if m["type"] == "CATALOG"]
        streams: list[dict[str, Any]] = found["streams"]
        return streams

    def check(self) -> dict[str, Any]:
        """The connection check the platform runs when a connection is set up."""
        messages = self.run("check")
        (status,) = [m["connectionStatus"] for m in messages if m["type"] == "CONNECTION_STATUS"]
        return dict(status)

    def read(
        self,
        catalog: list[dict[str, Any]],
        state: list[dict[str, Any]],
        check: bool = True,
        debug: bool = False,
    ) -> list[dict[str, Any]]:
        """One sync of every stream, incremental and deduplicated on `id`."""
        configured = {
            "streams": [
                {
                    "stream": stream,
                    "sync_mode": "incremental",
                    "destination_sync_mode": "append_dedup",
                    "cursor_field": stream["default_cursor_field"],
                    "primary_key": stream["source_defined_primary_key"],
                }
                for stream in catalog
            ]
        }
        (self.tmp / "catalog.json").write_text(json.dumps(configured))
        (self.tmp / "state.json").write_text(json.dumps(state))
        catalog_args = ("--catalog", str(self.tmp / "catalog.json"))
        state_args = ("--state", str(self.tmp / "state.json"))
        return self.run("read", *catalog_args, *state_args, check=check, debug=debug)


@pytest.fixture
def airbyte(source_command: Path, server: Server, tenant: Tenant, tmp_path: Path) -> Airbyte:
    """The source configured for the tenant, with pages of 7 so that syncs page while writes land."""
    config = {
        "base_url": server.base_url,
        "integrator_key": tenant.integrator.key,
        "token": tenant.business.shared_secret,
        "page_size": 7,
    }
    return Airbyte(source_command, tmp_path, config)


class Writer(threading.Thread):
    """Creates, updates and deletes check-ins and users through the ingest API until stopped."""

    def __init__(self, server: Server, tenant: Tenant) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.tenant = tenant
        self.stop = threading.Event()
        self.deleted: dict[str, set[str]] = {"checkins": set(), "users": set()}
        self.batches = 0
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            with httpx.Client(base_url=self.server.base_url, timeout=60) as http:
                self.write(Api(http, self.tenant))
        except BaseException as failure:
            self.failure = failure

    def write(self, api: Api) -> None:
        i = 0
        while not self.stop.wait(0.05):
            refs = {"locations": "L1", "users": "U1"}
            new = [record("checkins", f"W{i:03}-{k}", refs) for k in range(3)]
            changed = [record("checkins", f"C{i % 40:03}", {**refs, "users": "U2"}, extra={"i": i})]
            gone = [f"W{i - 2:03}-0"] if i >= 2 else []
            assert api.batch("checkins", new + changed, delete=gone).status_code == 200
            self.deleted["checkins"].update(gone)
            gone_user = [f"WU{i - 1:03}"] if i >= 1 else []
            users = [record("users", f"WU{i:03}"), record("users", "U2", phone=str(i))]
            assert api.batch("users", users, delete=gone_user).status_code == 200
            self.deleted["users"].update(gone_user)
            i += 1
            self.batches = i


@pytest.fixture
def writer(server: Server, tenant: Tenant) -> Iterator[Writer]:
    running = Writer(server, tenant)
    try:
        yield running
    finally:
        running.stop.set()
        if running.ident is not None:  # started
            running.join(30)


def errors(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The error traces among a command's messages."""
    return [
        m["trace"]["error"]
        for m in messages
        if m["type"] == "TRACE" and m["trace"]["type"] == "ERROR"
    ]


def served(api: Api, stream: str) -> dict[str, dict[str, Any]]:
    """The server's live records of a stream, by a complete transfer."""
    return {r["id"]: r for r in api.read_all(f"/v1/{stream}", limit=10_000)}


def next_state(destination: Destination) -> list[dict[str, Any]]:
    """The platform's input state for the next sync: each stream's last STATE."""
    return [{"type": "STREAM", "stream": state["stream"]} for state in destination.states.values()]


def requested(messages: list[dict[str, Any]]) -> list[tuple[str, dict[str, list[str]]]]:
    """(stream, query parameters) of each request a `--debug` command made."""
    urls = [
        urlsplit(m["data"]["url"])
        for m in messages
        if m["type"] == "DEBUG" and m["message"] == "Making outbound API request"
    ]
    return [(url.path.removeprefix("/v1/"), parse_qs(url.query)) for url in urls]


def ranges(query: dict[str, list[str]]) -> dict[str, list[str]]:
    """A request's modified_* parameters: none in a complete transfer."""
    return {name: value for name, value in query.items() if name.startswith("modified_")}


def assert_equal_to_the_server(destination: Destination, api: Api) -> None:
    """Each stream's final table equals a complete transfer, every field of every record."""
    for stream in STREAMS:
        copy = destination.final(stream)
        live = {i: destination.row(stream, r) for i, r in served(api, stream).items()}
        missing = set(live) - set(copy)
        extra = set(copy) - set(live)
        stale = {
            i for i in set(copy) & set(live) if copy[i]["modified_at"] < live[i]["modified_at"]
        }
        assert (missing, stale, extra) == (set(), set(), set()), stream
        assert copy == live, stream  # every field of every record, as served


def assert_bookmarks_are_the_last_change_delivered(destination: Destination) -> None:
    """Each bookmark is the greatest modified_at delivered, exactly as served (the start when none)."""
    for stream in STREAMS:
        delivered = [m for (s, _, m) in destination.deliveries() if s == stream]
        assert destination.bookmark(stream) == max(delivered, default=EPOCH), stream


def purge_every_tombstone(db: Engine, tenant: Tenant) -> None:
    """What `clubfeed db purge` does once the business's deletes are past retention."""
    with write_transaction(db) as conn:
        purge(conn, tenant.business.id, to_us(parse_aware("2999-01-01T00:00:00+00:00")))


def test_discover_declares_every_resource_with_its_catalogue_fields(
    source_command: Path, tmp_path: Path
) -> None:
    unused = {"integrator_key": "not-a-key", "token": "not-a-secret"}  # discover reads nothing
    airbyte = Airbyte(source_command, tmp_path, {"base_url": "http://127.0.0.1:9", **unused})
    found = {s["name"]: s for s in airbyte.catalog()}
    assert list(found) == STREAMS
    json_type = {Kind.DATE: "date", Kind.DATETIME: "date-time", Kind.BOOL: "boolean"}
    for resource in RESOURCES:
        stream = found[resource.name]
        assert stream["source_defined_primary_key"] == [["id"]]
        assert stream["default_cursor_field"] == ["modified_at"]
        assert stream["supported_sync_modes"] == ["full_refresh", "incremental"]
        properties = stream["json_schema"]["properties"]
        common = {"id", "created_at", "modified_at", "extra", "deleted", "_ab_cdc_deleted_at"}
        assert set(properties) == common | {f.name for f in resource.fields}
        for field in resource.fields:
            declared = properties[field.name]
            assert "null" in declared["type"]  # a tombstone has none of them
            if field.kind is Kind.BOOL:
                assert declared["type"] == ["boolean", "null"]
            else:
                assert declared["type"] == ["string", "null"]
                assert declared.get("format", "string") == json_type.get(field.kind, "string")


@on_sqlite
def test_syncs_while_writing_end_equal_to_a_complete_transfer_each_change_once(
    airbyte: Airbyte, api: Api, writer: Writer, tmp_path: Path
) -> None:
    seed_checkins(api, 40)
    api.seed()  # one record of every resource, so that all 12 streams carry data
    # Deleted before the first sync, a complete transfer: it never reaches the copy.
    assert api.batch("checkins", delete=["C039"]).status_code == 200
    catalog = airbyte.catalog()
    destination = Destination(tmp_path / "destination.db", catalog)

    destination.apply(airbyte.read(catalog, []))
    live = {s: served(api, s) for s in STREAMS}
    for stream, records in live.items():  # the schemas declare every field served
        assert all(set(r) <= set(destination.columns[stream]) for r in records.values())
    as_rows = {
        s: {i: destination.row(s, r) for i, r in records.items()} for s, records in live.items()
    }
    assert {s: destination.final(s) for s in STREAMS} == as_rows
    assert destination.tombstones("checkins") == {}  # a complete transfer holds none

    writer.start()
    while_writing = [
        destination.apply(airbyte.read(catalog, next_state(destination))) for _ in range(3)
    ]
    writer.stop.set()
    writer.join(30)
    assert writer.failure is None and writer.batches >= 3, writer.failure
    destination.apply(airbyte.read(catalog, next_state(destination)))
    assert sum(while_writing) > 0  # the syncs during the writes did carry changes

    assert_equal_to_the_server(destination, api)
    repeated = {change: n for change, n in destination.deliveries().items() if n > 1}
    assert repeated == {}
    for stream, ids in writer.deleted.items():
        tombstones = destination.tombstones(stream)
        assert ids and ids <= set(tombstones)
        assert all(tombstones[i]["_ab_cdc_deleted_at"] == tombstones[i]["modified_at"] for i in ids)
    assert_bookmarks_are_the_last_change_delivered(destination)


@on_sqlite
def test_a_410_fails_the_sync_as_a_config_error_that_asks_for_a_refresh(
    airbyte: Airbyte, api: Api
) -> None:
    seed_checkins(api, 1)
    (users,) = [s for s in airbyte.catalog() if s["name"] == "users"]
    # A bookmark past the business's last change, as a copy made before a restore holds.
    # (One past the present the CDK never sends: it reads no window that starts later.)
    last = datetime.fromisoformat(api.read_all("/v1/checkins")[0]["modified_at"])
    ahead = (last + timedelta(microseconds=1)).isoformat(timespec="microseconds")
    lost = {"type": "STREAM", "stream": {"stream_descriptor": {"name": "users"}}}
    lost["stream"]["stream_state"] = {"modified_at": ahead}
    failed = errors(airbyte.read([users], [lost], check=False))
    assert {e["failure_type"] for e in failed} == {"config_error"}  # the sync fails, not retried
    assert failed[0]["message"].startswith("clubfeed answered 410 Gone")
    assert "clear this stream's data" in failed[0]["message"]


@on_sqlite
def test_a_business_that_has_purged_gets_complete_transfers_and_recovers_from_a_410(
    airbyte: Airbyte, api: Api, db: Engine, tenant: Tenant, tmp_path: Path
) -> None:
    seed_checkins(api, 6)  # 3 of the 12 streams hold records: locations, users, checkins
    assert api.batch("checkins", delete=["C000"]).status_code == 200
    purge_every_tombstone(db, tenant)  # before the first sync
    assert api.get("/v1/checkins", params={"modified_after": EPOCH}).status_code == 410
    catalog = airbyte.catalog()
    destination = Destination(tmp_path / "destination.db", catalog)

    # The first sync: no state, so no modified_* at all, a complete transfer of each stream.
    first = airbyte.read(catalog, [], debug=True)
    destination.apply(first)
    assert {stream for stream, _ in requested(first)} == set(STREAMS)
    assert [query for _, query in requested(first) if ranges(query)] == []
    assert_equal_to_the_server(destination, api)
    assert destination.tombstones("checkins") == {}
    assert_bookmarks_are_the_last_change_delivered(destination)
    assert airbyte.check()["status"] == "SUCCEEDED"  # it reads locations the same way

    # The copy holds C001, whose delete is purged before the copy sees it: the next sync is
    # refused. The business keeps writing meanwhile, to every stream that holds records.
    assert api.batch("checkins", delete=["C001"]).status_code == 200
    purge_every_tombstone(db, tenant)
    new_checkin = record("checkins", "C006", {"locations": "L1", "users": "U1"})
    assert api.batch("checkins", [new_checkin]).status_code == 200
    assert api.batch("users", [record("users", "U1", phone="555-0101")]).status_code == 200
    moved = record("locations", "L1", timezone="America/Chicago", city="Evanston")
    assert api.batch("locations", [moved]).status_code == 200
    bookmarks = {stream: destination.bookmark(stream) for stream in STREAMS}
    refused = airbyte.read(catalog, next_state(destination), check=False, debug=True)
    destination.apply(refused)
    # With state, exactly modified_after=<bookmark>; with the CDK's bookmark of a stream that
    # has delivered nothing (the start), a complete transfer again, which the server answers.
    for stream, query in requested(refused):
        expected = {} if bookmarks[stream] == EPOCH else {"modified_after": [bookmarks[stream]]}
        assert ranges(query) == expected, stream
    by_stream = [e for e in errors(refused) if e.get("stream_descriptor")]
    failed = {e["stream_descriptor"]["name"]: e for e in by_stream}
    # Only checkins' bookmark is before its purge point: purge points are per resource, so
    # locations and users, whose tombstones were not purged, sync on.
    assert set(failed) == {"checkins"}
    assert {e["failure_type"] for e in failed.values()} == {"config_error"}
    assert all("clear this stream's data" in e["message"] for e in failed.values())

    # What the message advises: clear the stream's data and sync it again.
    for stream in failed:
        destination.clear(stream)
    refreshed = airbyte.read(catalog, next_state(destination), debug=True)
    destination.apply(refreshed)
    # The cleared stream transfers completely; the others go on from their bookmarks.
    assert [
        query for stream, query in requested(refreshed) if stream in failed and ranges(query)
    ] == []
    assert_equal_to_the_server(destination, api)
    assert "C001" not in destination.final("checkins")
    assert_bookmarks_are_the_last_change_delivered(destination)

    # And incremental syncs go on from there. (They can because each of these streams was
    # written after the purge: a stream whose newest record predates its own purge point
    # bookmarks that record, and is refused again; connectors/airbyte/README.md.)
    assert api.batch("checkins", delete=["C002"]).status_code == 200
    destination.apply(airbyte.read(catalog, next_state(destination)))
    tombstone = destination.tombstones("checkins")["C002"]
    assert tombstone["_ab_cdc_deleted_at"] == tombstone["modified_at"]
    assert_equal_to_the_server(destination, api)
    assert {change: n for change, n in destination.deliveries().items() if n > 1} == {}
    assert_bookmarks_are_the_last_change_delivered(destination)
