"""The Singer tap (connectors/singer) against a live server, loading into a real target-postgres.

A full sync, then incremental syncs while a writer creates, updates and deletes, then a last
one: the destination's live rows must equal a complete transfer (every field of every record),
the deleted ones must be marked with `_sdc_deleted_at`, and no change may arrive twice.

The tap runs from the test extras (singer-sdk is pinned there). target-postgres pins
psycopg==3.3.6 below clubfeed's, so it runs from a venv of its own, built once per machine
from connectors/singer/requirements.txt (about 30 s) and rebuilt when that file changes.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import random
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from clubfeed.catalogue import RESOURCES, Kind, Resource
from clubfeed.feed.retention import purge
from clubfeed.storage.engine import write_transaction
from clubfeed.timefmt import parse_aware, to_us
from tests.conftest import Server
from tests.factories import Api, Tenant, record, seed_checkins

ROOT = Path(__file__).resolve().parents[1]
CONNECTOR = ROOT / "connectors" / "singer"
TAP = CONNECTOR / "tap_clubfeed.py"
TARGET_VENV = ROOT / ".venv-connectors" / "singer"
# Small pages, so that the writer's batches span several and the bookmark rule is exercised.
PAGE_SIZE = 7
INCREMENTAL_SYNCS = 4

Delivered = Counter[tuple[str, str, str]]


@pytest.fixture(scope="session")
def target_postgres() -> Path:
    """target-postgres in its own venv, keyed on the pinned requirements and this Python."""
    requirements = CONNECTOR / "requirements.txt"
    key = hashlib.sha256(requirements.read_bytes() + sys.version.encode()).hexdigest()
    stamp = TARGET_VENV / ".requirements-sha256"
    TARGET_VENV.parent.mkdir(exist_ok=True)
    # Kept out of git, and so out of `ruff check .`, without a line in the repo's .gitignore.
    (TARGET_VENV.parent / ".gitignore").write_text("*\n")
    with (TARGET_VENV.parent / "singer.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other test process may be building it too
        if not stamp.exists() or stamp.read_text() != key:
            shutil.rmtree(TARGET_VENV, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(TARGET_VENV)], check=True)
            pip = [str(TARGET_VENV / "bin" / "pip"), "install", "--quiet", "--no-deps"]
            done = subprocess.run(
                [*pip, "-r", str(requirements)], capture_output=True, text=True, timeout=600
            )
            assert done.returncode == 0, done.stderr[-4000:]
            stamp.write_text(key)
    return TARGET_VENV / "bin" / "target-postgres"


@pytest.fixture
def destination(pg_url: str) -> Iterator[tuple[str, str]]:
    """A schema of its own in the run's PostgreSQL database: (SQLAlchemy URL, schema).

    The session's time zone is set, since target-postgres stores instants without one.
    """
    base = make_url(pg_url).set(drivername="postgresql+psycopg")
    url = base.update_query_dict({"options": "-c TimeZone=UTC"}).render_as_string(False)
    schema = f"singer_{uuid.uuid4().hex[:12]}"
    yield url, schema
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def tap_module() -> Any:
    """connectors/singer/tap_clubfeed.py, imported from its file (it is not a package here)."""
    spec = importlib.util.spec_from_file_location("tap_clubfeed", TAP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tap_settings(server: Server, tenant: Tenant) -> dict[str, Any]:
    return {
        "base_url": server.base_url,
        "integrator_key": tenant.integrator.key,
        "token": tenant.business.shared_secret,
        "page_size": PAGE_SIZE,
    }


def tap_config(workdir: Path, server: Server, tenant: Tenant) -> Path:
    path = workdir / "tap.json"
    path.write_text(json.dumps(tap_settings(server, tenant)))
    return path


def run_tap(config: Path, state: dict[str, Any] | None) -> subprocess.CompletedProcess[str]:
    """The tap's own CLI; its stdout is the Singer messages."""
    args = [sys.executable, str(TAP), "--config", str(config)]
    if state is not None:
        state_file = config.with_name("state.json")
        state_file.write_text(json.dumps(state))
        args += ["--state", str(state_file)]
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


class Pipeline:
    """The tap piped into the target, as `meltano run tap-clubfeed target-postgres` does, with
    the target's last state handed to the next run, and every RECORD counted."""

    def __init__(self, tap: Path, target: Path, destination: tuple[str, str]) -> None:
        self.tap, self.target = tap, target
        self.target_config = tap.with_name("target.json")
        self.target_config.write_text(
            json.dumps({"sqlalchemy_url": destination[0], "default_target_schema": destination[1]})
        )
        self.state: dict[str, Any] | None = None
        self.delivered: Delivered = Counter()

    def sync(self) -> None:
        tap = run_tap(self.tap, self.state)
        assert tap.returncode == 0, tap.stderr[-4000:]
        for line in tap.stdout.splitlines():
            message = json.loads(line)
            if message["type"] == "RECORD":
                row = message["record"]
                self.delivered[message["stream"], row["id"], row["modified_at"]] += 1
        target = subprocess.run(
            [str(self.target), "--config", str(self.target_config)],
            input=tap.stdout,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert target.returncode == 0, target.stderr[-4000:]
        self.state = json.loads(target.stdout.splitlines()[-1])


class Writer(threading.Thread):
    """The POS at work: new, changed and deleted check-ins and users, until stopped."""

    def __init__(self, server: Server, tenant: Tenant) -> None:
        super().__init__(daemon=True)
        self.server, self.tenant = server, tenant
        self.stop = threading.Event()
        self.deleted: dict[str, set[str]] = {"checkins": set(), "users": set()}
        self.batches = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with httpx.Client(base_url=self.server.base_url, timeout=60) as http:
                self._work(Api(http, self.tenant))
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc

    def _work(self, api: Api) -> None:
        rng = random.Random(20261204)
        live = [f"C{i:03}" for i in range(40)]
        refs = {"locations": "L1", "users": "U1"}
        n = 0
        while not self.stop.is_set():
            new = [f"W{n}-{i}" for i in range(10)]  # one write of 10, spanning pages
            changed = rng.sample(live, 3)
            gone = rng.choice([c for c in live if c not in changed])
            rows = [record("checkins", c, refs) for c in new]
            rows += [record("checkins", c, refs, extra={"edit": n}) for c in changed]
            done = api.batch("checkins", rows, delete=[gone])
            assert done.status_code == 200, done.text
            live = [c for c in live if c != gone] + new
            self.deleted["checkins"].add(gone)
            user = f"WU{n}"
            assert api.batch("users", [record("users", user)]).status_code == 200
            if n % 2:  # every other user is deleted again, before or after a sync saw it
                assert api.batch("users", delete=[f"WU{n - 1}", user]).status_code == 200
                self.deleted["users"] |= {f"WU{n - 1}", user}
            self.batches, n = self.batches + 1, n + 1
            time.sleep(0.05)


def instants(resource: Resource) -> set[str]:
    """The fields served as RFC 3339 datetimes."""
    return {f.name for f in resource.fields if f.kind is Kind.DATETIME} | {
        "created_at",
        "modified_at",
    }


def utc(value: str) -> datetime:
    """A served instant as target-postgres holds it: `timestamp without time zone`, in UTC."""
    return datetime.fromisoformat(value).astimezone(UTC).replace(tzinfo=None)


def as_compared(resource: Resource, body: dict[str, Any]) -> dict[str, Any]:
    """A served record with its instants as the destination holds them."""
    times = instants(resource)
    return {f: utc(v) if f in times and v else v for f, v in body.items()}


def row_as_compared(row: Any, fields: Iterable[str]) -> dict[str, Any]:
    """A destination row's `fields`, dates back in the API's text form."""
    return {
        f: row[f].isoformat()
        if isinstance(row[f], date) and not isinstance(row[f], datetime)
        else row[f]
        for f in fields
    }


@pytest.mark.slow
# On PostgreSQL only: the destination needs it anyway, and the tap sees only HTTP (the feed's
# guarantee is proven on both backends by tests/test_feed_*.py).
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_singer_full_then_incremental_syncs_equal_a_complete_transfer(
    api: Api,
    server: Server,
    tenant: Tenant,
    target_postgres: Path,
    destination: tuple[str, str],
    tmp_path: Path,
) -> None:
    api.seed()  # one record of each of the 12 resources
    seed_checkins(api, 40)
    pipeline = Pipeline(tap_config(tmp_path, server, tenant), target_postgres, destination)
    pipeline.sync()  # the full sync: complete transfers, no state
    assert {stream for stream, _, _ in pipeline.delivered} == {r.table for r in RESOURCES}

    writer = Writer(server, tenant)
    writer.start()
    try:
        for _ in range(INCREMENTAL_SYNCS):
            pipeline.sync()
    finally:
        writer.stop.set()
        writer.join(30)
    assert writer.error is None, writer.error
    assert writer.batches >= INCREMENTAL_SYNCS
    pipeline.sync()  # the last one, after the writer stopped

    served = {
        r.name: {x["id"]: x for x in api.read_all(f"/v1/{r.name}", limit=10_000)} for r in RESOURCES
    }
    engine = create_engine(destination[0])
    try:
        with engine.connect() as conn:
            copied = {
                r.name: {
                    row["id"]: row
                    for row in conn.execute(
                        text(f'SELECT * FROM "{destination[1]}"."{r.table}"')
                    ).mappings()
                }
                for r in RESOURCES
            }
    finally:
        engine.dispose()
    live = {
        n: {i: r for i, r in rows.items() if r["_sdc_deleted_at"] is None}
        for n, rows in copied.items()
    }
    marked = {n: rows.keys() - live[n].keys() for n, rows in copied.items()}

    stamps = {
        n: {i: utc(r["modified_at"]) for i, r in records.items()} for n, records in served.items()
    }
    found = {
        "missing": sum(len(stamps[n].keys() - live[n].keys()) for n in stamps),
        "stale": sum(
            1
            for n in stamps
            for i, r in live[n].items()
            if i in stamps[n] and r["modified_at"] < stamps[n][i]
        ),
        "not deleted": sum(len(live[n].keys() - stamps[n].keys()) for n in stamps),
        "repeated": sum(1 for times in pipeline.delivered.values() if times > 1),
    }
    assert found == {"missing": 0, "stale": 0, "not deleted": 0, "repeated": 0}
    for resource in RESOURCES:
        name = resource.name
        assert {i: r["modified_at"] for i, r in live[name].items()} == stamps[name]
        for record_id, body in served[name].items():  # every field of every record
            assert row_as_compared(live[name][record_id], body) == as_compared(resource, body)
        # Every delete is marked, including those of records created since the last sync.
        assert marked[name] == writer.deleted.get(name, set())
        for record_id in marked[name]:
            row = copied[name][record_id]
            assert row["_sdc_deleted_at"] == row["modified_at"]
    assert writer.deleted["checkins"] and writer.deleted["users"]


def test_the_bookmark_moves_only_once_a_query_is_done(
    api: Api,
    server: Server,
    tenant: Tenant,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A STATE in mid-stream must not bookmark into a write: the records of one write share one
    `modified_at` and span pages, so resuming after it would skip the rest of that write."""
    seed_checkins(api, 10)  # one write of 10 check-ins: two pages of 7
    refs = {"locations": "L1", "users": "U1"}
    assert (
        api.batch("checkins", [record("checkins", f"D{i}", refs) for i in range(10)]).status_code
        == 200
    )
    module = tap_module()
    monkeypatch.setattr(module.ResourceStream, "STATE_MSG_FREQUENCY", 5)  # the SDK's is 10,000
    module.TapClubfeed(config=tap_settings(server, tenant), state={}).sync_all()

    messages = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    records = [
        i for i, m in enumerate(messages) if m["type"] == "RECORD" and m["stream"] == "checkins"
    ]
    states = [
        m["value"]["bookmarks"].get("checkins", {})
        for m in messages[: records[-1]]
        if m["type"] == "STATE"
    ]
    assert len(records) == 20 and len(states) >= 3  # a STATE every 5 check-ins
    assert [s.get("replication_key_value") for s in states] == [None] * len(states)
    final = messages[-1]["value"]["bookmarks"]["checkins"]["replication_key_value"]
    assert final == max(messages[i]["record"]["modified_at"] for i in records)


def test_a_410_stops_the_tap_and_says_what_to_do(
    api: Api, server: Server, tenant: Tenant, tmp_path: Path
) -> None:
    seed_checkins(api, 2)
    late = {"replication_key": "modified_at", "replication_key_value": "2999-01-01T00:00:00+00:00"}
    done = run_tap(tap_config(tmp_path, server, tenant), {"bookmarks": {"checkins": late}})
    assert done.returncode != 0
    assert "clear the stream's state and its destination table" in done.stderr


def synced(config: Path, state: dict[str, Any] | None) -> tuple[list[str], dict[str, Any]]:
    """One run of the tap: the ids of its check-in records, and its last state."""
    done = run_tap(config, state)
    assert done.returncode == 0, done.stderr[-4000:]
    messages = [json.loads(line) for line in done.stdout.splitlines()]
    ids = [
        m["record"]["id"] for m in messages if m["type"] == "RECORD" and m["stream"] == "checkins"
    ]
    return ids, [m["value"] for m in messages if m["type"] == "STATE"][-1]


def test_a_transfer_after_a_purge_bookmarks_past_the_purged_deletes(
    api: Api, db: Engine, server: Server, tenant: Tenant, tmp_path: Path
) -> None:
    """The copy's first sync comes after a delete newer than every live check-in was purged:
    the next sync must not be refused (410), and must bring what is written later, once."""
    seed_checkins(api, 3)
    assert api.batch("checkins", delete=["C000"]).status_code == 200
    with write_transaction(db) as conn:
        purge(conn, tenant.business.id, to_us(parse_aware("2999-01-01T00:00:00+00:00")))
    config = tap_config(tmp_path, server, tenant)

    first, state = synced(config, None)
    assert sorted(first) == ["C001", "C002"]
    again, state = synced(config, state)
    assert again == []
    refs = {"locations": "L1", "users": "U1"}
    assert api.batch("checkins", [record("checkins", "C003", refs)]).status_code == 200
    later, state = synced(config, state)
    assert later == ["C003"]
    assert synced(config, state)[0] == []


def test_the_meltano_snippet_names_the_taps_settings() -> None:
    """The snippet declares exactly the tap's own settings (the SDK adds its built-in ones)."""
    config = yaml.safe_load((CONNECTOR / "meltano.yml").read_text())
    (tap,) = config["plugins"]["extractors"]
    about = subprocess.run(
        [sys.executable, str(TAP), "--about", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    own = tap_module().TapClubfeed.config_jsonschema["properties"]
    assert {s["name"] for s in tap["settings"]} == set(own)
    assert set(tap["capabilities"]) <= set(json.loads(about.stdout)["capabilities"])
