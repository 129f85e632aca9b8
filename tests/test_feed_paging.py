"""Many rows with one modified_at page exactly, on SQLite and PostgreSQL (DESIGN's feed proof 4).

Pages are keyed by change_seq, not by modified_at, so a page boundary in the
middle of thousands of rows sharing one instant neither drops nor repeats any.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from clubfeed.storage.engine import read_connection
from clubfeed.timefmt import format_us
from tests.factories import Api, Tenant, record
from tests.feedkit import Fetch, Page, direct_fetch, http_fetch, ids, read_pages, us, users, write

ROWS = 25_000
WANTED = [f"u{i:05d}" for i in range(ROWS)]


def _stamps(engine: Engine, business_id: int) -> dict[int, int]:
    """How many rows of the business carry each modified_at."""
    with read_connection(engine) as conn:
        rows = conn.execute(
            text(
                "SELECT modified_at, count(*) AS n FROM users WHERE business_id = :b "
                "GROUP BY modified_at"
            ),
            {"b": business_id},
        ).all()
    return {row.modified_at: row.n for row in rows}


def _counting(fetch: Fetch) -> tuple[Fetch, list[int]]:
    sizes: list[int] = []

    def counted(params: dict[str, str]) -> Page:
        page = fetch(params)
        sizes.append(len(page.records))
        return page

    return counted, sizes


def _read(fetch: Fetch, params: dict[str, str], limit: int) -> tuple[list[str], list[int], str]:
    """The ids a paged query returns, its page sizes, and its consistent_until."""
    counted, sizes = _counting(fetch)
    records, until, _ = read_pages(counted, params, limit)
    return ids(records), sizes, until


def _full_pages(limit: int, total: int = ROWS) -> list[int]:
    return [limit] * (total // limit) + ([total % limit] if total % limit else [])


@pytest.mark.slow
def test_25000_rows_with_one_modified_at_page_exactly_at_every_page_size(
    db: Engine, tenant: Tenant, client: httpx.Client
) -> None:
    """One transaction stamps 25,000 rows with one instant (no batch limit below the API).

    Complete and range reads return exactly those 25,000 rows, in full pages, at
    10,000 and 9,999 (and 10,000 over HTTP, which refuses 10,001); the range also
    page by page, one row at a time. A window ending at, or starting after, that
    instant returns none of them.
    """
    business = tenant.business.id
    changes = write(db, business, users(WANTED))
    instant = changes.modified_us
    assert _stamps(db, business) == {instant: ROWS}

    direct = direct_fetch(db, business)
    over_http = http_fetch(client, tenant.read_headers)
    window = {"modified_since": format_us(instant), "modified_before": format_us(instant + 1)}
    for fetch, limit in ((direct, 10_000), (direct, 9_999), (over_http, 10_000)):
        for params in ({}, window):
            got, sizes, until = _read(fetch, params, limit)
            assert got == WANTED, (limit, params)
            assert sizes == _full_pages(limit)
            assert us(until) == instant + 1

    with read_connection(db) as conn:
        got, sizes, _ = _read(direct_fetch(db, business, conn=conn), window, 1)
    assert got == WANTED
    assert sizes == [1] * ROWS

    assert _read(direct, {"modified_since": format_us(instant + 1)}, 10_000)[0] == []
    assert _read(direct, {"modified_before": format_us(instant)}, 10_000)[0] == []

    too_big = client.get("/v1/users", params={"limit": "10001"}, headers=tenant.read_headers)
    assert too_big.status_code == 400
    assert too_big.headers["content-type"] == "application/problem+json"
    assert too_big.json()["status"] == 400


@pytest.mark.slow
def test_25000_rows_in_three_batches_page_exactly_by_batch_instant(db: Engine, api: Api) -> None:
    """Three API batches (10,000 + 10,000 + 5,000): each batch's rows share the batch's instant.

    A range covering all three returns exactly the 25,000; ranges cut at the
    instants return exactly one batch each, with consistent_until at the cut.
    """
    business = api.tenant.business.id
    batches = [WANTED[:10_000], WANTED[10_000:20_000], WANTED[20_000:]]
    instants: list[int] = []
    for chunk in batches:
        response = api.batch("users", upsert=[record("users", i) for i in chunk])
        assert response.status_code == 200, response.text
        summary: dict[str, Any] = response.json()
        assert summary["created"] == len(chunk)
        instants.append(us(summary["modified_at"]))
    first, second, third = instants
    assert _stamps(db, business) == {first: 10_000, second: 10_000, third: 5_000}

    over_http = http_fetch(api.client, api.tenant.read_headers)
    covering = {"modified_since": format_us(first), "modified_before": format_us(third + 1)}
    got, sizes, until = _read(over_http, covering, 10_000)
    assert got == WANTED and sizes == _full_pages(10_000) and us(until) == third + 1
    got, sizes, _ = _read(direct_fetch(db, business), covering, 9_999)
    assert got == WANTED and sizes == _full_pages(9_999)

    cuts = [
        ({"modified_before": format_us(second)}, batches[0], second),
        (
            {"modified_since": format_us(second), "modified_before": format_us(third)},
            batches[1],
            third,
        ),
        ({"modified_since": format_us(third)}, batches[2], third + 1),
    ]
    for params, expected, expected_until in cuts:
        got, _, until = _read(over_http, params, 10_000)
        assert got == expected, params
        assert us(until) == expected_until
