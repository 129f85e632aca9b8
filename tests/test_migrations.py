"""The migrations build exactly the schema the catalogue declares, and fix old data, on both databases."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from clubfeed import catalogue, tenants
from clubfeed.feed import clock, summary
from clubfeed.storage.engine import make_engine, read_connection, write_transaction
from clubfeed.storage.migrate import head_revision, upgrade
from clubfeed.storage.schema import metadata
from clubfeed.timefmt import format_us
from tests.factories import Api, record
from tests.problemkit import changes_since, consistent_until

# Adelaide ran on local mean time, +09:14:20, until 1895.
LMT = "1890-07-15T00:00:00Z"
LMT_IN_UTC = "1890-07-15T00:00:00.000000+00:00"
LMT_AS_STORED = "1890-07-15T09:14:20.000000+09:14:20"


def test_migrated_database_matches_the_declared_schema(db: Engine) -> None:
    with db.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), metadata
        )
    assert diff == []


def test_every_resource_table_is_keyed_by_business(db: Engine) -> None:
    inspector = inspect(db)
    for resource in catalogue.RESOURCES:
        assert inspector.get_pk_constraint(resource.table)["constrained_columns"] == [
            "business_id",
            "id",
        ]
        uniques = [u["column_names"] for u in inspector.get_unique_constraints(resource.table)]
        assert ["business_id", "change_seq"] in uniques


def test_0005_rerenders_seconds_offsets_in_utc_and_restamps_them(api: Api, db: Engine) -> None:
    """Rows main stored as `…+09:14:20` come back in UTC, once, to every poller."""
    refs = api.seed()
    api.put("locations", "adl", record("locations", "adl", timezone="Australia/Adelaide"))
    at = {**refs, "locations": "adl"}
    lmt_note = {"note": "1890-07-15T09:14:20.000000+09:14:20"}  # text, never re-rendered
    written = {
        ("checkins", "c-lmt"): record("checkins", "c-lmt", at, checked_in_at=LMT, extra=lmt_note),
        ("checkins", "c-now"): record("checkins", "c-now", at, extra={"note": "x+09:14:20"}),
        ("class-attendances", "ca-lmt"): record(
            "class-attendances", "ca-lmt", at, class_at=LMT, checked_in_at="2026-01-15T00:00:00Z"
        ),
    }
    stored = {key: api.put(*key, body).json() for key, body in written.items()}
    assert stored["checkins", "c-lmt"]["checked_in_at"] == LMT_IN_UTC
    with write_transaction(db) as conn:  # what the code before 0005 stored
        for table in ("checkins", "class_attendances"):
            conn.execute(
                text(
                    f"UPDATE {table} SET body = replace(body, :utc, :local) "
                    "WHERE business_id = :b AND id LIKE '%-lmt'"
                ),
                {"utc": LMT_IN_UTC, "local": LMT_AS_STORED, "b": api.tenant.business.id},
            )
    assert LMT_AS_STORED in api.get("/v1/checkins/c-lmt").text
    since = consistent_until(api, "checkins")
    head = head_revision()
    try:
        with write_transaction(db) as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '0004'"))
        upgrade(db, "0005")
    finally:
        with write_transaction(db) as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :head"), {"head": head})

    checkins = changes_since(api, "checkins", since)
    attendances = changes_since(api, "class-attendances", since)
    assert [r["id"] for r in checkins + attendances] == ["c-lmt", "ca-lmt"]
    restamped = checkins[0]["modified_at"]
    assert restamped > since and attendances[0]["modified_at"] == restamped
    assert checkins[0] == {**stored["checkins", "c-lmt"], "modified_at": restamped}
    assert attendances[0] == {**stored["class-attendances", "ca-lmt"], "modified_at": restamped}
    assert api.get("/v1/checkins/c-now").json() == stored["checkins", "c-now"]
    back = api.batch("checkins", checkins).json()
    assert (back["unchanged"], back["updated"]) == (1, 0)


def test_an_upgrade_waits_its_turn_behind_a_writer(tmp_path: Path) -> None:
    """`db upgrade` beside a running server: it waits for the server's write, then migrates."""
    engine = make_engine(f"sqlite:///{tmp_path / 'busy.db'}", pool_size=2)
    try:
        upgrade(engine, "0004")
        holder = engine.connect().execution_options(sqlite_begin="IMMEDIATE")
        holder.execute(text("UPDATE alembic_version SET version_num = version_num"))
        release = threading.Timer(0.5, holder.commit)
        release.start()
        try:
            upgrade(engine)
        finally:
            release.join()
            holder.close()
        with engine.connect() as conn:
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        assert version == head_revision()
    finally:
        engine.dispose()


def test_0009_and_0010_sum_rows_already_stored_into_summary_buckets(tmp_path: Path) -> None:
    """Rows written before 0009 are summed (0009) and bucketed (0010) as the README's client would sum them."""
    engine = make_engine(f"sqlite:///{tmp_path / 'before-0009.db'}")
    try:
        upgrade(engine, "0008")
        with write_transaction(engine) as conn:
            business = tenants.create_business(conn, "Old Gym").id
            columns = inspect(conn).get_columns("users")
            stamps = {"u1": 1_700_000_000_000_001, "u2": 1_700_000_000_500_000, "u3": 42}
            for seq, (record_id, modified) in enumerate(stamps.items(), start=1):
                row: dict[str, object] = {
                    c["name"]: "x"
                    if "CHAR" in str(c["type"]).upper() or "TEXT" in str(c["type"]).upper()
                    else 0
                    for c in columns
                    if not c["nullable"]
                }
                row.update(
                    business_id=business,
                    id=record_id,
                    change_seq=seq,
                    modified_at=modified,
                    created_at=modified,
                    body="{}",
                    extra="{}",
                    deleted_at=modified if record_id == "u3" else None,
                )
                names = ", ".join(row)
                conn.execute(
                    text(f"INSERT INTO users ({names}) VALUES ({', '.join(':' + n for n in row)})"),
                    row,
                )
        upgrade(engine)
        with read_connection(engine) as conn:
            found = summary.summarize(
                conn, business_id=business, resource=catalogue.get("users"), buckets=2
            )
    finally:
        engine.dispose()
    live = {"u1": stamps["u1"], "u2": stamps["u2"]}
    hashes = {
        i: int.from_bytes(hashlib.sha256(f"{i}\n{format_us(m)}".encode()).digest()[:8], "big")
        for i, m in live.items()
    }
    assert found.whole == summary.Part(2, sum(hashes.values()) % 2**64)
    halves = [0, 0]
    for record_id, value in hashes.items():
        halves[hashlib.sha256(record_id.encode()).digest()[0] >> 7] += value
    assert [p.checksum for p in found.buckets or []] == [h % 2**64 for h in halves]


def test_0012_keeps_a_business_purge_point_for_every_resource(tmp_path: Path) -> None:
    """What was refused before 0012 stays refused: the old point becomes each resource's."""
    engine = make_engine(f"sqlite:///{tmp_path / 'before-0012.db'}")
    try:
        upgrade(engine, "0011")
        with write_transaction(engine) as conn:
            purged = tenants.create_business(conn, "Purged Gym").id
            quiet = tenants.create_business(conn, "Quiet Gym").id
            conn.execute(
                text("UPDATE change_clock SET purged_until_us = 12345 WHERE business_id = :b"),
                {"b": purged},
            )
        upgrade(engine)
        with read_connection(engine) as conn:
            points = {
                (business, name): clock.read(conn, business, name).purged_until_us
                for business in (purged, quiet)
                for name in catalogue.NAMES
            }
    finally:
        engine.dispose()
    assert points == {
        **{(purged, name): 12345 for name in catalogue.NAMES},
        **{(quiet, name): 0 for name in catalogue.NAMES},
    }
