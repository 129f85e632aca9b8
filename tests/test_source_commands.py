"""`clubfeed source check|run|status`: the mapping file's errors, what check shows, bad values,
source trouble, one runner per mapping, and `kill -9` mid-backfill and mid-follow.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from clubfeed.sources import lock
from clubfeed.sources.database import connect, describe_failure
from clubfeed.sources.mapping import MappingError, parse
from clubfeed.storage.engine import read_connection
from tests.clikit import clubfeed, one_json_line
from tests.factories import Api, new_business
from tests.sourcekit import SOURCES, Pos, SourceDatabase, expected, mapping_yaml, served
from tests.test_sources import base_time, converge, seed, write_mapping

GOOD = """\
source:
  url: ${POS_URL}
business:
  id: 3
resources:
  users:
    query: SELECT id, first_name, last_name, updated_at FROM members
    modified: updated_at
"""


def refused(text_: str, environ: dict[str, str] | None = None) -> MappingError:
    with pytest.raises(MappingError) as caught:
        parse(text_, file="pos.yaml", environ={"POS_URL": "sqlite:///x.db", **(environ or {})})
    return caught.value


def test_a_good_file_reads_with_its_defaults() -> None:
    loaded = parse(GOOD, file="pos.yaml", environ={"POS_URL": "sqlite:///x.db"})
    assert loaded.name == "pos"
    assert loaded.source.url == "sqlite:///x.db"
    assert (loaded.source.poll_interval_s, loaded.source.clock_margin_s) == (1.0, 1.0)
    (users,) = loaded.resources
    assert (users.key, users.modified, users.reconcile_s) == ("id", "updated_at", 86400.0)


def test_the_readme_example_reads_as_it_says() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    example = readme.split("# pos.yaml\n", 1)[1].split("```", 1)[0]
    loaded = parse(example, file="pos.yaml", environ={"POS_DATABASE_URL": "sqlite:///x.db"})
    settings = loaded.source
    assert (settings.poll_interval_s, settings.clock_margin_s, settings.fixed_lag_s) == (1, 1, 60)
    assert (settings.batch_size, settings.backfill_workers) == (10_000, 2)
    assert loaded.tenancy.business_id == 3
    assert {m.resource.name: m.reconcile_s for m in loaded.resources} == {
        "locations": 86_400,
        "users": 86_400,
        "checkins": 3_600,
    }


@pytest.mark.parametrize(
    ("change", "line", "phrase"),
    [
        (
            ("    modified: updated_at", "    modifed: updated_at"),
            8,
            "unknown key 'modifed'; did you mean 'modified'?",
        ),
        (("  users:", "  user:"), 6, "'user' is not a resource; did you mean 'users'?"),
        (("  id: 3", "  id: 3\n  column: tenant"), 3, "either id"),
        (
            ("business:\n  id: 3", "business:\n  column: tenant"),
            3,
            "businesses: {tenant: business id}",
        ),
        (
            ("  url: ${POS_URL}", "  url: ${POS_URL}\n  poll_interval: soon"),
            3,
            "'soon' is not a duration",
        ),
        (
            ("  url: ${POS_URL}", "  url: ${NOT_SET_ANYWHERE}"),
            2,
            "${NOT_SET_ANYWHERE} is not set in the environment",
        ),
        (
            (
                "    modified: updated_at",
                "    modified: updated_at\n    naive_datetimes: Mars/Olympus",
            ),
            9,
            "not an IANA time zone",
        ),
        (
            ("    modified: updated_at", "    modified: updated_at\n    naive_datetimes: location"),
            9,
            "location needs a location_id",
        ),
        (
            ("    modified: updated_at", "    modified: updated_at\n    deletes: {}"),
            9,
            "one of the two",
        ),
        (("resources:", "resources: [1"), 6, "not valid YAML"),
    ],
)
def test_a_broken_file_is_refused_with_its_line_and_the_fix(
    change: tuple[str, str], line: int, phrase: str
) -> None:
    problem = refused(GOOD.replace(*change))
    assert problem.line == line, problem
    assert phrase in problem.problem, problem
    assert str(problem).startswith(f"pos.yaml:{line}: ")


def test_check_shows_rows_mapped_and_the_guarantee(
    source: SourceDatabase, db_url: str, db: Engine, tmp_path: Path
) -> None:
    seed(Pos(source))
    business = new_business(db)
    path = write_mapping(
        tmp_path, mapping_yaml(source, business=f"  id: {business.id}", name="chk")
    )
    report = one_json_line(clubfeed(db_url, "source", "check", str(path), "--json"))
    assert report["ok"] is True
    assert report["sees_transactions"] is (source.kind != "sqlite")
    assert report["settings"] == {
        "poll_interval_s": 0.2,
        "clock_margin_s": 0.5,
        "fixed_lag_s": 3.0,
        "batch_size": 10_000,
        "backfill_workers": 2,
    }
    reconciles = {r["resource"]: r["reconcile_s"] for r in report["resources"]}
    assert (reconciles["users"], reconciles["checkins"]) == (86_400, 3_600)
    users = next(r for r in report["resources"] if r["resource"] == "users")
    assert users["fields"] == ["email", "first_name", "last_name", "is_child", "parent_id"]
    assert users["extra"] == ["tier"]
    first = users["sample"][0]
    assert (first["id"], first["first_name"], first["is_child"]) == ("1", "First1", False)
    assert first["extra"] == {"tier": "gold"}
    sales = next(r for r in report["resources"] if r["resource"] == "sales")
    assert sales["sample"][0]["pre_tax_price"] == "1.50"
    shown = clubfeed(db_url, "source", "check", str(path))
    assert shown.exit_code == 0, shown.stderr
    words = " ".join(shown.stdout.split())  # the console wraps long lines
    assert "✓ users: fields email, first_name, last_name, is_child, parent_id" in words
    assert "; into extra: tier; reconciled every 24 h" in words
    assert (
        "Polls every 0.2 s and reads and writes 10,000 rows a batch; a backfill of more than "
        "4 batches is written by 2 worker processes." in words
    )


def test_check_names_a_query_that_cannot_map_and_exits_1(db_url: str, tmp_path: Path) -> None:
    source = SourceDatabase("sqlite", tmp_path)
    body = mapping_yaml(source, business="  id: 1", name="broken").replace(
        "club_name AS name", "club_name"
    )
    result = clubfeed(db_url, "source", "check", str(write_mapping(tmp_path, body)), "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    locations = next(r for r in report["resources"] if r["resource"] == "locations")
    assert locations["ok"] is False
    assert "no column 'name', which every locations record needs" in locations["problem"]


def test_mariadb_without_process_privilege_falls_back_to_a_fixed_lag(
    db_url: str, tmp_path: Path
) -> None:
    source = SourceDatabase("mariadb", tmp_path)
    user = f"cf_ro_{os.getpid()}"
    try:
        with source._admin.connect() as conn:  # type: ignore[union-attr]
            conn.execute(text(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw-not-shown'"))
            conn.execute(text(f"GRANT SELECT ON `{source.name}`.* TO '{user}'@'%'"))
        source.url = source.url.replace("root@", f"{user}:pw-not-shown@")
        path = write_mapping(tmp_path, mapping_yaml(source, business="  id: 1", name="ro"))
        result = clubfeed(db_url, "source", "check", str(path))
        assert result.exit_code == 0, result.stderr
        assert "cannot see other sessions' open transactions" in result.stdout
        assert "GRANT PROCESS ON *.* TO" in result.stdout.replace("\n", " ")
        assert "pw-not-shown" not in result.stdout + result.stderr
    finally:
        with source._admin.connect() as conn:  # type: ignore[union-attr]
            conn.execute(text(f"DROP USER IF EXISTS '{user}'@'%'"))
        source.drop()


def status_of(db_url: str, path: Path) -> dict[str, dict[str, object]]:
    report = one_json_line(clubfeed(db_url, "source", "status", str(path), "--json"))
    return {row["resource"]: row for row in report["resources"]}


def test_a_bad_value_is_skipped_reported_and_retried_when_its_row_changes(
    db_url: str, db: Engine, tmp_path: Path
) -> None:
    source = SourceDatabase("sqlite", tmp_path)
    pos = Pos(source)
    seed(pos)
    with pos.transaction() as conn:
        conn.execute(
            text(
                "UPDATE visits SET visited_at = 'last tuesday', updated_at = :at WHERE visit_id = 7"
            ),
            {"at": pos.now()},
        )
    business = new_business(db)
    path = write_mapping(
        tmp_path,
        mapping_yaml(
            source, business=f"  id: {business.id}", fixed_lag="0.2s", name=f"bad{business.id}"
        ),
    )
    ran = clubfeed(db_url, "source", "run", "--once", "--json", str(path))
    assert ran.exit_code == 0, ran.stderr
    checkins = status_of(db_url, path)["checkins"]
    assert checkins["problems"] == {
        "value": [
            {
                "tenant": None,
                "key": 7,
                "column": "checked_in_at",
                "detail": "checked_in_at 'last tuesday' is not a date and time (ISO 8601)",
            }
        ]
    }
    assert checkins["businesses"][0]["created"] == 39
    with pos.transaction() as conn:
        conn.execute(
            text("UPDATE visits SET visited_at = :v, updated_at = :at WHERE visit_id = 7"),
            {"v": source.stamp(base_time()), "at": pos.now()},
        )
    assert clubfeed(db_url, "source", "run", "--once", str(path)).exit_code == 0
    checkins = status_of(db_url, path)["checkins"]
    assert checkins["problems"] == {}
    assert checkins["businesses"][0]["created"] == 40


def test_a_record_naming_a_row_the_source_lacks_is_held_until_it_comes(
    db_url: str, db: Engine, tmp_path: Path
) -> None:
    source = SourceDatabase("sqlite", tmp_path)
    pos = Pos(source)
    seed(pos)
    with pos.transaction() as conn:
        pos.visit(conn, 900, 900, 1, source.stamp(base_time()), pos.now())  # no member 900 yet
        pos.visit(conn, 901, 901, 1, source.stamp(base_time()), pos.now())  # no member 901 ever
    business = new_business(db)
    body = mapping_yaml(source, business=f"  id: {business.id}", name=f"held{business.id}")
    path = write_mapping(tmp_path, body)
    assert clubfeed(db_url, "source", "run", "--once", str(path)).exit_code == 0
    held = status_of(db_url, path)["checkins"]["problems"]["reference"]
    assert [(p["key"], p["column"]) for p in held] == [(900, "user_id"), (901, "user_id")]
    assert "names users record '900', which neither clubfeed nor the source has yet" in str(held)

    with pos.transaction() as conn:
        pos.member(conn, 900, pos.now())
        conn.execute(text("DELETE FROM visits WHERE visit_id = 901"))
    assert clubfeed(db_url, "source", "run", "--once", str(path)).exit_code == 0
    checkins = status_of(db_url, path)["checkins"]
    assert checkins["problems"] == {}
    assert checkins["businesses"][0]["created"] == 41
    with read_connection(db) as conn:
        user = conn.execute(
            text("SELECT user_id FROM checkins WHERE business_id = :b AND id = '900'"),
            {"b": business.id},
        ).scalar_one()
    assert user == "900"


def test_a_failing_query_shows_in_status_and_the_others_flow(
    db_url: str, db: Engine, tmp_path: Path
) -> None:
    source = SourceDatabase("postgresql", tmp_path)
    try:
        pos = Pos(source)
        seed(pos)
        with source.engine.begin() as conn:
            conn.execute(text("ALTER TABLE visits RENAME COLUMN visited_at TO visit_time"))
        business = new_business(db)
        source.url = source.url.replace("postgres@", "postgres:hunter2-secret@")
        path = write_mapping(
            tmp_path,
            mapping_yaml(source, business=f"  id: {business.id}", name=f"trouble{business.id}"),
        )
        ran = clubfeed(db_url, "source", "run", "--once", str(path))
        assert ran.exit_code == 1, ran.stderr
        assert "checkins failed this pass (the other resources were written)" in ran.stderr
        assert "hunter2" not in ran.stdout + ran.stderr
        status = status_of(db_url, path)
        assert str(status["checkins"]["last_error"]).startswith("the source failed: ")
        assert "visited_at" in str(status["checkins"]["last_error"])
        assert "hunter2" not in json.dumps(status)
        assert status["users"]["businesses"][0]["created"] == 21
        assert status["sales"]["businesses"][0]["created"] == 3
        with source.engine.begin() as conn:
            conn.execute(text("ALTER TABLE visits RENAME COLUMN visit_time TO visited_at"))
        assert clubfeed(db_url, "source", "run", "--once", str(path)).exit_code == 0
        status = status_of(db_url, path)
        assert status["checkins"]["businesses"][0]["created"] == 40
        assert status["checkins"]["phase"] == "follow"
    finally:
        source.drop()


def test_a_failure_names_the_database_that_failed(db: Engine, tmp_path: Path) -> None:
    pos = tmp_path / "pos.db"
    with sqlite3.connect(pos) as conn:
        conn.execute("CREATE TABLE members (id INTEGER PRIMARY KEY)")
    source = connect(f"sqlite:///{pos}")
    try:
        with pytest.raises(SQLAlchemyError) as from_source:
            source.tenant_names("SELECT tenant, name FROM tenants")
    finally:
        source.close()
    with pytest.raises(SQLAlchemyError) as from_store, read_connection(db) as conn:
        conn.execute(text("SELECT no_such_column FROM businesses"))
    assert describe_failure(from_source.value) == "the source failed: no such table: tenants"
    assert describe_failure(from_store.value).startswith("clubfeed's database failed: ")
    assert "no_such_column" in describe_failure(from_store.value)


def test_a_second_runner_of_the_same_mapping_refuses(db: Engine) -> None:
    with lock.hold(db, "only-one"):
        with (
            pytest.raises(lock.AlreadyRunning, match="one runner per mapping"),
            lock.hold(db, "only-one"),
        ):
            pass
        with lock.hold(db, "another-mapping"):
            pass
    with lock.hold(db, "only-one"):
        pass


_RUNNERS: list[subprocess.Popen[bytes]] = []


@pytest.fixture(autouse=True)
def _no_runner_outlives_its_test() -> Iterator[None]:
    """A test that fails mid-way leaves no `source run` polling (and using a core) behind."""
    yield
    while _RUNNERS:
        process = _RUNNERS.pop()
        if process.poll() is None:
            process.kill()
            process.wait(30)


def _runner(db_url: str, path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CLUBFEED_DATABASE_URL": db_url}
    command = [str(Path(sys.executable).parent / "clubfeed"), "source", "run", "--json", str(path)]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _RUNNERS.append(process)
    return process


def _wait(check: object, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.parametrize("kind", SOURCES)
def test_kill_9_mid_backfill_and_mid_follow_loses_nothing(
    kind: str, db_url: str, db: Engine, client: object, tmp_path: Path
) -> None:
    from tests.factories import Tenant, new_integrator

    source = SourceDatabase(kind, tmp_path)
    try:
        pos = Pos(source)
        seed(pos, members=201, visits=6000)
        tenant = Tenant(new_business(db), new_integrator(db))
        api = Api(client, tenant)  # type: ignore[arg-type]
        name = f"kill{tenant.business.id}"
        path = write_mapping(
            tmp_path,
            mapping_yaml(
                source,
                business=f"  id: {tenant.business.id}",
                fixed_lag="1s",
                batch_size=500,
                name=name,
            ),
        )

        def backfilled_some() -> bool:
            with db.connect() as conn:
                after = conn.execute(
                    text(
                        "SELECT backfill_after FROM source_cursors WHERE mapping = :m AND resource = 'checkins'"
                    ),
                    {"m": name},
                ).scalar()
            return after is not None

        first = _runner(db_url, path)
        _wait(backfilled_some)
        first.send_signal(signal.SIGKILL)
        first.wait()
        second = _runner(db_url, path)
        converge(api, source, timeout_s=90)
        for i in range(30):
            with pos.transaction() as conn:
                pos.visit(conn, 10_000 + i, 1 + i, 1, source.stamp(base_time()), pos.now())
            if i == 15:
                second.send_signal(signal.SIGKILL)
                second.wait()
        third = _runner(db_url, path)
        try:
            final = converge(api, source, timeout_s=60)
        finally:
            third.send_signal(signal.SIGTERM)
            third.wait(30)
        want = expected(source)["checkins"]
        assert len(want) == 6030
        assert served(final["checkins"], want) == want
    finally:
        source.drop()
