"""Id lookups stay primary-key probes when the planner's statistics are out of date.

Every write looks up its ids (existing rows, references), so a lookup that scans the
business per id makes a new gym's second batch of 10,000 take minutes. That is what the
planner chose for a business it had not seen when the table was last analyzed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, Engine, text

from clubfeed.storage.engine import make_engine
from clubfeed.storage.idlists import _statement, rows_by_id
from clubfeed.storage.migrate import upgrade

TABLE = "stale_checkins"


@pytest.fixture
def stale(pg_url: str) -> Iterator[Connection]:
    """A check-ins table analyzed with one large business, then given a second one."""
    engine: Engine = make_engine(pg_url, pool_size=1)
    try:
        upgrade(engine)  # the shared test database, migrated if no test has yet
        with engine.connect() as conn:
            conn.execute(text(f"CREATE TABLE {TABLE} (LIKE checkins INCLUDING ALL)"))
            columns = (
                "business_id, id, change_seq, created_at, modified_at, body, extra, "
                "checked_in_at, location_id, user_id, sum_hi, sum_lo, id_bucket"
            )
            fill = (
                "SELECT {b}, 'c' || g, g, 0, g, '{{}}', '{{}}', 0, 'l', 'u' || (g % 500), 0, 0, "
                "g % 65536 FROM generate_series(1, {n}) AS g"
            )
            conn.execute(text(f"INSERT INTO {TABLE} ({columns}) {fill.format(b=1, n=50_000)}"))
            conn.execute(text(f"ANALYZE {TABLE}"))
            conn.execute(text(f"INSERT INTO {TABLE} ({columns}) {fill.format(b=2, n=20_000)}"))
            conn.commit()
            yield conn
            conn.rollback()
            conn.execute(text(f"DROP TABLE {TABLE}"))
            conn.commit()
    finally:
        engine.dispose()


def test_a_business_grown_since_the_last_analyze_is_probed_by_primary_key(
    stale: Connection,
) -> None:
    ids = [f"c{i}" for i in range(10_001, 20_001)]
    explain = text(f"EXPLAIN {_statement('postgresql', TABLE, 'id', '').text}")
    plan = "\n".join(stale.execute(explain, {"b": 2, "ids": ids}).scalars())
    assert f"Scan using {TABLE}_pkey" in plan, plan
    assert "Filter" not in plan, plan
    found = rows_by_id(stale, TABLE, "id", 2, [*ids, "c1", "nope"])
    assert sorted(row[0] for row in found) == sorted([*ids, "c1"])
