"""Sources end to end: a POS database on SQLite, PostgreSQL or MariaDB, read into clubfeed on
SQLite or PostgreSQL while the POS app writes, and clubfeed's complete transfer compared
with the source mapped, record for record.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text

from clubfeed.sources import mapping as mapping_file
from clubfeed.sources import state
from clubfeed.sources.database import Rows, connect
from clubfeed.sources.runner import Runner
from clubfeed.storage.engine import read_connection, write_transaction
from tests.factories import Api
from tests.sourcekit import MARIADB_URL, Pos, SourceDatabase, expected, mapping_yaml, served

RESOURCES = ("locations", "users", "checkins", "sales")


def write_mapping(tmp_path: Path, body: str, name: str = "pos.yaml") -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


@contextmanager
def running(path: Path, store: Engine) -> Iterator[Runner]:
    """`clubfeed source run` in a thread of this process, stopped at the end of the block."""
    loaded = mapping_file.load(path)
    source_db = connect(loaded.source.url)
    runner = Runner(loaded, store, source_db)
    stop = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            runner.run(stop=stop)
        except BaseException as exc:  # surfaced by the test below
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield runner
    finally:
        stop.set()
        thread.join(30)
        source_db.close()
    assert not failure, failure


def transfer(api: Api) -> dict[str, list[dict[str, Any]]]:
    return {name: api.read_all(f"/v1/{name}") for name in RESOURCES}


def converge(
    api: Api, source: SourceDatabase, *, timeout_s: float = 30
) -> dict[str, list[dict[str, Any]]]:
    """Wait until clubfeed's complete transfer equals the source mapped; assert it does."""
    deadline = time.monotonic() + timeout_s
    while True:
        want = expected(source)
        got = transfer(api)
        if all(served(got[name], want[name]) == want[name] for name in RESOURCES):
            return got
        if time.monotonic() > deadline:
            for name in RESOURCES:
                assert served(got[name], want[name]) == want[name], name
        time.sleep(0.25)


def base_time() -> datetime:
    return datetime(2026, 11, 30, 13, 0, tzinfo=UTC)


def seed(pos: Pos, members: int = 21, visits: int = 40) -> None:
    """Two clubs, members (the last with no visits), visits and sales, in one transaction."""
    at = pos.now()
    with pos.transaction() as conn:
        pos.club(conn, 1, "Downtown", "America/New_York", at)
        pos.club(conn, 2, "Rive Gauche", "Europe/Paris", at)
        for i in range(1, members + 1):
            pos.member(
                conn,
                i,
                at,
                minor=i % 5 == 0,
                guardian=1 if i % 5 == 0 else None,
                tier="gold" if i % 2 else None,
            )
        for i in range(1, visits + 1):
            visited = pos.source.stamp(base_time() + timedelta(minutes=i))
            pos.visit(conn, i, (i % (members - 1)) + 1, 1 + i % 2, visited, at)
        for i in range(1, 4):
            pos.sale(conn, i, i, 1, f"{i}.50", at)


def test_every_commit_arrives_even_late_ones_and_deletes_become_tombstones(
    source: SourceDatabase, api: Api, db: Engine, tmp_path: Path
) -> None:
    pos = Pos(source)
    seed(pos)
    business = f"  id: {api.tenant.business.id}"
    name = f"pos{api.tenant.business.id}"
    path = write_mapping(
        tmp_path, mapping_yaml(source, business=business, reconcile="1s", name=name)
    )
    with running(path, db):
        first = converge(api, source)
        untouched = {r["id"]: r["modified_at"] for r in first["users"] if 5 < int(r["id"]) < 21}

        # A transaction that stamps its rows, then stays open for several polls while
        # others commit later stamps: the runner must not pass it.
        stamped = threading.Event()

        def held() -> None:
            at = pos.now()
            with pos.transaction(hold_s=1.5) as conn:
                pos.member(conn, 200, at)
                pos.visit(conn, 200, 200, 1, source.stamp(base_time()), at)
                # Nothing references these two, and their resources are not reconciled
                # during the test: only the watermark rule can keep them.
                pos.member(conn, 201, at)
                pos.sale(conn, 500, None, 1, "9.99", at)
                stamped.set()  # written, not committed: held open for 1.5 s from here

        slow = threading.Thread(target=held)
        slow.start()
        stamped.wait(10)
        # Fifty rows in one burst sharing one whole-second stamp.
        burst = pos.now(whole_second=True)
        with pos.transaction() as conn:
            for i in range(100, 150):
                pos.member(conn, i, burst)
        # A visit committed just before the member it names, in the same instant.
        same = pos.now()
        with pos.transaction() as conn:
            pos.visit(conn, 300, 300, 2, source.stamp(base_time()), same)
        with pos.transaction() as conn:
            pos.member(conn, 300, same)
        for i in range(20):
            with pos.transaction() as conn:
                pos.sale(conn, 100 + i, None if i % 3 else 1, 2, f"{i}.05", pos.now())
        # Updates, a soft delete and a hard delete.
        with pos.transaction() as conn:
            conn.execute(
                text("UPDATE members SET email = 'new@example.com', updated_at = :at WHERE id = 1"),
                {"at": pos.now()},
            )
            conn.execute(
                text("UPDATE visits SET visited_at = :v, updated_at = :at WHERE visit_id = 1"),
                {"v": source.stamp(base_time() + timedelta(hours=5)), "at": pos.now()},
            )
            conn.execute(
                text("UPDATE members SET deleted_at = :at, updated_at = :at WHERE id = 21"),
                {"at": pos.now()},
            )
            conn.execute(text("DELETE FROM visits WHERE visit_id = 3"))
        slow.join()
        final = converge(api, source)

    assert "21" not in {r["id"] for r in final["users"]}
    assert {"200", "300"} <= {r["id"] for r in final["checkins"]}
    assert {"200", "201", "300"} <= {r["id"] for r in final["users"]}
    assert "500" in {r["id"] for r in final["sales"]}
    # Rows read again were unchanged: they never re-entered the feed.
    again = {r["id"]: r["modified_at"] for r in final["users"] if r["id"] in untouched}
    assert again == untouched
    changes = api.read_all("/v1/users", modified_after="2000-01-01T00:00:00Z")
    deleted = [r for r in changes if r.get("deleted")]
    assert [r["id"] for r in deleted] == ["21"]
    with read_connection(db) as conn:
        status = {row["resource"]: row for row in state.report(conn, name)}
    assert status["checkins"]["guarantee"] == (
        "fixed lag" if source.kind == "sqlite" else "transactions"
    )
    assert status["checkins"]["reconcile_deleted"] is not None


def test_multi_tenant_rows_never_cross(source: SourceDatabase, db: Engine, tmp_path: Path) -> None:
    """Pages of two rows make users and check-ins a backfill by two worker processes: the
    runner creates the new tenant's business once, and the workers use it."""
    from clubfeed import tenants
    from tests.factories import new_business

    acme = new_business(db, "Acme")
    with read_connection(db) as conn:
        zens_before = len(tenants.named(conn, ["Zen Studio"]))
    for name, tenant in (("Acme Gyms", "acme"), ("Zen Studio", "zen")):
        with source.engine.begin() as conn:
            conn.execute(text("INSERT INTO tenants VALUES (:t, :n)"), {"t": tenant, "n": name})
        pos = Pos(source, tenant)
        at = pos.now()
        with pos.transaction() as conn:
            base = 100 if tenant == "zen" else 0
            for i in range(1, 6):
                pos.club(conn, base + i, f"{name} club {i}", "UTC", at)
                pos.member(conn, base + i, at)
                pos.visit(conn, base + i, base + i, base + i, source.stamp(base_time()), at)
    business = (
        "  column: tenant_id\n"
        f"  businesses: {{acme: {acme.id}}}\n"
        '  create_missing: {name_query: "SELECT tenant_id, display_name FROM tenants"}'
    )
    path = write_mapping(
        tmp_path, mapping_yaml(source, business=business, name=f"mt{acme.id}", batch_size=2)
    )
    loaded = mapping_file.load(path)
    source_db = connect(loaded.source.url)
    events: list[dict[str, Any]] = []
    try:
        Runner(loaded, db, source_db, on_event=events.append).run(once=True)
    finally:
        source_db.close()
    workers = {e["resource"]: e["workers"] for e in events if e["event"] == "backfilled"}
    assert workers == {"locations": 2, "users": 2, "checkins": 2, "sales": 1}
    with read_connection(db) as conn:
        zens = tenants.named(conn, ["Zen Studio"])
        assert len(zens) == zens_before + 1
        zen = zens[-1]
        assert state.tenant_businesses(conn, f"mt{acme.id}") == {"zen": zen.id}
        for business_id, first in ((acme.id, 1), (zen.id, 101)):
            rows = (
                conn.execute(
                    text(
                        "SELECT id FROM users WHERE business_id = :b AND deleted_at IS NULL ORDER BY id"
                    ),
                    {"b": business_id},
                )
                .scalars()
                .all()
            )
            assert sorted(rows, key=int) == [str(first + i) for i in range(5)]
            visits = conn.execute(
                text("SELECT user_id, location_id FROM checkins WHERE business_id = :b"),
                {"b": business_id},
            ).all()
            assert sorted(loc for _, loc in visits) == sorted(str(first + i) for i in range(5))


def test_a_backfill_worker_places_a_tenant_its_runner_named_after_it_started(
    db: Engine, tmp_path: Path
) -> None:
    """A worker knows the businesses stored when it started; one its runner creates later
    arrives with the page, or the page's rows would wait as unknown tenants."""
    from clubfeed import tenants
    from clubfeed.sources.parallel import Job, Workers
    from tests.factories import new_business

    source = SourceDatabase("sqlite", tmp_path)
    acme = new_business(db, "Acme")
    for tenant in ("acme", "zen"):
        pos = Pos(source, tenant)
        with pos.transaction() as conn:
            base = 100 if tenant == "zen" else 0
            for i in range(1, 4):
                pos.member(conn, base + i, pos.now())
    business = f"  column: tenant_id\n  businesses: {{acme: {acme.id}}}"
    name = f"learn{acme.id}"
    loaded = mapping_file.load(
        write_mapping(tmp_path, mapping_yaml(source, business=business, name=name))
    )
    users = loaded.for_resource("users")
    assert users is not None
    source_db = connect(loaded.source.url)
    try:
        read = source_db.read_by_key(users, after=None, limit=100)
    finally:
        source_db.close()
    column = read.columns.index("tenant_id")

    def page(tenant: str) -> Rows:
        return Rows(read.columns, [r for r in read.rows if r[column] == tenant], read.flags)

    with Workers(loaded, db, 1) as workers:
        workers.send(Job(1, "users", page("acme"), {"acme": acme.id}))
        assert workers.collect() == [1]  # the worker has started, knowing only acme
        with write_transaction(db) as conn:
            zen = tenants.create_business(conn, "Zen Studio")
            state.remember_tenant(conn, name, "zen", zen.id)
        workers.send(Job(2, "users", page("zen"), {"zen": zen.id}))
        assert workers.collect() == [2]
    with read_connection(db) as conn:
        assert state.problem_keys(conn, name, "users") == []
        for business_id, first in ((acme.id, 1), (zen.id, 101)):
            ids = conn.execute(
                text("SELECT id FROM users WHERE business_id = :b"), {"b": business_id}
            ).scalars()
            assert sorted(ids, key=int) == [str(first + i) for i in range(3)]


def test_mariadb_datetimes_read_exactly_as_pymysql_reads_them() -> None:
    """The source engine's faster DATETIME parser agrees with PyMySQL's own, to the
    microsecond, and leaves a zero date to PyMySQL (as the string, a bad value)."""
    sql = """SELECT CAST('2026-06-01 06:00:00.123456' AS DATETIME(6)),
                    CAST('2026-06-01 06:00:00.5' AS DATETIME(3)),
                    CAST('2026-06-01 06:07:08' AS DATETIME),
                    CAST('1000-01-01 00:00:00' AS DATETIME),
                    CAST('9999-12-31 23:59:59.999999' AS DATETIME(6)),
                    FROM_UNIXTIME(1780000000.25),
                    CAST(NULL AS DATETIME)"""
    plain = create_engine(f"{MARIADB_URL}/mysql")
    source = connect(f"{MARIADB_URL}/mysql")
    try:
        with plain.connect() as conn:
            want = conn.exec_driver_sql(sql).one()
            conn.exec_driver_sql("SET SESSION sql_mode = ''")
            zero = conn.exec_driver_sql("SELECT CAST('0000-00-00 00:00:00' AS DATETIME)").one()
        with source.engine.connect() as conn:
            got = conn.exec_driver_sql(sql).one()
            conn.exec_driver_sql("SET SESSION sql_mode = ''")
            got_zero = conn.exec_driver_sql("SELECT CAST('0000-00-00 00:00:00' AS DATETIME)").one()
    finally:
        plain.dispose()
        source.close()
    assert want[0] == datetime(2026, 6, 1, 6, 0, 0, 123456)
    assert want[1] == datetime(2026, 6, 1, 6, 0, 0, 500000)
    assert list(got) == list(want)
    assert [type(v) for v in got] == [type(v) for v in want]
    assert list(got_zero) == list(zero) == ["0000-00-00 00:00:00"]
