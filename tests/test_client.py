"""clubfeed.client against a live server over real HTTP: pulls, bookmarks, tombstones,
verification, 410s, retries and OAuth refresh; and that it imports none of the server."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import msgspec
import pytest
from sqlalchemy import Engine

from clubfeed import checksums
from clubfeed.client import (
    RECORD_TYPES,
    AsyncClient,
    AuthError,
    Bookmark,
    Client,
    ClientError,
    HistoryGone,
    Item,
    OAuthGrant,
    Record,
    Retry,
    Tombstone,
)
from tests.brokenkit import INGEST, KEY, SECRET, Broken, serving
from tests.conftest import Server
from tests.factories import Api, Tenant, record, seed_checkins
from tests.oauthkit import connect

SERVER_PARTS = ("fastapi", "starlette", "sqlalchemy", "uvicorn", "jinja2", "authlib", "alembic")


def reader(server: Server, tenant: Tenant, **options: Any) -> Client:
    return Client(
        server.base_url,
        integrator_key=tenant.integrator.key,
        token=tenant.business.shared_secret,
        **options,
    )


def async_reader(server: Server, tenant: Tenant, **options: Any) -> AsyncClient:
    return AsyncClient(
        server.base_url,
        integrator_key=tenant.integrator.key,
        token=tenant.business.shared_secret,
        **options,
    )


def split(items: list[Item]) -> tuple[dict[str, Record], list[Tombstone], list[Bookmark]]:
    records = {i.id: i for i in items if isinstance(i, Record)}
    tombstones = [i for i in items if isinstance(i, Tombstone)]
    bookmarks = [i for i in items if isinstance(i, Bookmark)]
    return records, tombstones, bookmarks


def test_importing_the_client_loads_no_server_code() -> None:
    probe = (
        "import sys, clubfeed.client; "
        f"print(sorted(m for m in {SERVER_PARTS!r} if m in sys.modules))"
    )
    found = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert found.stdout.strip() == "[]", found.stdout


def test_pull_transfers_everything_then_only_changes_and_tombstones(
    api: Api, server: Server, tenant: Tenant
) -> None:
    seed_checkins(api, 25)
    with reader(server, tenant, page_size=10) as client:
        items = list(client.pull("checkins"))
        records, tombstones, bookmarks = split(items)
        assert sorted(records) == [f"C{i:03}" for i in range(25)]
        assert tombstones == [] and len(bookmarks) == 1 and items[-1] is bookmarks[0]
        first = records["C000"]
        assert type(first) is RECORD_TYPES["checkins"]
        assert type(first).__name__ == "Checkin"
        served = api.get("/v1/checkins/C000").json()
        assert first.checked_in_at == datetime.fromisoformat(served["checked_in_at"])
        assert (
            first.checked_in_at.utcoffset()
            == datetime.fromisoformat(served["checked_in_at"]).utcoffset()
        )
        assert first.extra == {"source": "factory", "note": "ünïcødé ✓"}

        changed = record("checkins", "C001", {"locations": "L1", "users": "U1"}, extra={"n": 2})
        new = record("checkins", "C100", {"locations": "L1", "users": "U1"})
        assert api.batch("checkins", [changed, new], delete=["C002"]).status_code == 200
        since = list(client.pull("checkins", since=bookmarks[0]))
        records, tombstones, bookmarks2 = split(since)
        assert sorted(records) == ["C001", "C100"]
        assert records["C001"].extra == {"n": 2}
        assert [t.id for t in tombstones] == ["C002"]
        assert bookmarks2[0].modified_since > bookmarks[0].modified_since

        assert list(client.pull("checkins", since=bookmarks2[0])) == bookmarks2


def test_pages_hands_each_body_to_the_callers_decoder(
    api: Api, server: Server, tenant: Tenant
) -> None:
    seed_checkins(api, 12)
    assert api.batch("checkins", [], delete=["C003"]).status_code == 200
    bodies: list[dict[str, Any]] = []

    def decode(body: bytes) -> tuple[list[str], str | None, str]:
        page = msgspec.json.decode(body)
        bodies.append(page)
        return [r["id"] for r in page["data"]], page["next_cursor"], page["consistent_until"]

    with reader(server, tenant, page_size=5) as client:
        pages = list(client.pages("checkins", None, decode))
    assert pages[:-1] == [
        ["C000", "C001", "C002", "C004", "C005"],
        ["C006", "C007", "C008", "C009", "C010"],
        ["C011"],
    ]
    assert pages[-1] == Bookmark("checkins", bodies[-1]["consistent_until"])
    assert [b["next_cursor"] is None for b in bodies] == [False, False, True]


def test_typed_fields_of_every_kind(api: Api, server: Server, tenant: Tenant) -> None:
    seed_checkins(api, 1)
    sale = record("sales", "S1", {"locations": "L1", "users": "U1"}, pre_tax_price="12.30")
    response = api.batch("sales", [sale])
    assert response.status_code == 200, response.text
    with reader(server, tenant) as client:
        (found, _bookmark) = list(client.pull("sales"))
        assert isinstance(found, RECORD_TYPES["sales"])
        fields = msgspec.structs.asdict(found)
        assert fields["pre_tax_price"] == Decimal("12.30")
        assert fields["sold_at"] == datetime.fromisoformat(
            api.get("/v1/sales/S1").json()["sold_at"]
        )
        assert fields["category_id"] is None
        assert client.get("sales", "S1") == found
        assert client.get("sales", "nope") is None
        odd = record("sales", "S/2?#%", {"locations": "L1", "users": "U1"})
        assert api.batch("sales", [odd]).status_code == 200
        fetched = client.get("sales", "S/2?#%")
        assert fetched is not None and fetched.id == "S/2?#%"
        user = msgspec.structs.asdict(client.get("users", "U1"))
        assert (user["birth_date"], user["is_child"]) == (date(2025, 1, 31), True)


def test_verify_matches_a_whole_copy_and_names_the_bucket_that_differs(
    api: Api, server: Server, tenant: Tenant
) -> None:
    seed_checkins(api, 40)
    with reader(server, tenant) as client:
        copy = {i.id: i for i in client.pull("checkins") if isinstance(i, Record)}
        pairs = [(r.id, r.modified_at) for r in copy.values()]
        whole = client.verify("checkins", pairs)
        assert whole.matches and whole.local.count == 40 and whole.differing_buckets == []
        short = client.verify("checkins", pairs[1:], buckets=256)
        assert not short.matches
        assert short.local.count == 39 and short.server.count == 40
        assert short.differing_buckets == [checksums.bucket_of(pairs[0][0], 256)]


def test_a_bookmark_past_the_servers_history_raises_history_gone(
    api: Api, server: Server, tenant: Tenant
) -> None:
    seed_checkins(api, 3)
    with reader(server, tenant) as client:
        (*_, bookmark) = client.pull("checkins")
        assert isinstance(bookmark, Bookmark)
        later = Bookmark("checkins", "2999-01-01T00:00:00+00:00")
        with pytest.raises(HistoryGone) as gone:
            list(client.pull("checkins", since=later))
        assert gone.value.status == 410
        assert gone.value.problem["type"].endswith("/problems/history-rewound")
        assert "pull('checkins') and no since" in str(gone.value)


def test_wrong_credentials_raise_auth_error(server: Server, tenant: Tenant) -> None:
    with (
        Client(
            server.base_url, integrator_key=tenant.integrator.key, token="not-a-secret"
        ) as client,
        pytest.raises(AuthError) as refused,
    ):
        list(client.pull("checkins"))
    assert refused.value.status == 401


class _Flaky(BaseHTTPRequestHandler):
    """Answers the first requests with the statuses in `script`, then an empty last page."""

    script: ClassVar[list[tuple[int, dict[str, str]]]] = []
    seen: ClassVar[list[float]] = []

    def do_GET(self) -> None:
        type(self).seen.append(time.monotonic())
        if type(self).script:
            status, headers = type(self).script.pop(0)
            if status == 0:  # drop the connection without an answer
                self.close_connection = True
                self.connection.close()
                return
        else:
            status, headers = 200, {}
        body = (
            b'{"data": [], "next_cursor": null, "consistent_until": "2026-01-01T00:00:00.000001+00:00"}'
            if status == 200
            else b'{"type": "about:blank", "title": "busy", "status": %d}' % status
        )
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


@contextmanager
def flaky(script: list[tuple[int, dict[str, str]]]) -> Iterator[str]:
    _Flaky.script, _Flaky.seen = list(script), []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_429_503_and_dropped_connections_are_retried_honouring_retry_after() -> None:
    script = [(429, {"Retry-After": "1"}), (0, {}), (503, {"Retry-After": "1"})]
    with flaky(script) as url, Client(url, integrator_key="k", token="t") as client:
        items = list(client.pull("checkins"))
    assert items == [Bookmark("checkins", "2026-01-01T00:00:00.000001+00:00")]
    seen = _Flaky.seen
    assert len(seen) == 4
    assert seen[1] - seen[0] >= 1.0  # Retry-After: 1 waited out
    assert seen[3] - seen[2] >= 1.0


def test_retries_give_up_with_the_last_answer() -> None:
    script = [(503, {"Retry-After": "0"})] * 3
    retry = Retry(attempts=3, base_s=0.01)
    with (
        flaky(script) as url,
        Client(url, integrator_key="k", token="t", retry=retry) as client,
        pytest.raises(ClientError) as failed,
    ):
        list(client.pull("checkins"))
    assert failed.value.status == 503
    assert len(_Flaky.seen) == 3


def _expired_grant(tokens: dict[str, Any], app: Any, refreshed: list[str]) -> OAuthGrant:
    return OAuthGrant(
        client_id=app.client_id,
        client_secret=app.client_secret,
        refresh_token=tokens["refresh_token"],
        access_token=tokens["access_token"],
        expires_at=time.time() - 1,
        on_refresh=lambda grant: refreshed.append(grant.refresh_token),
    )


def test_threads_sharing_a_client_refresh_an_expired_grant_once(
    client: httpx.Client, server: Server, db: Engine, tenant: Tenant
) -> None:
    granted = connect(client, db, tenant.business.id)
    refreshed: list[str] = []
    grant = _expired_grant(granted.tokens, granted.app, refreshed)
    results: list[int] = []
    with Client(server.base_url, integrator_key=granted.app.key, oauth=grant) as reader_:

        def read() -> None:
            results.append(sum(1 for _ in reader_.pull("checkins")))

        threads = [threading.Thread(target=read) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert results == [1] * 6  # each pulled an empty business: its bookmark
        assert len(refreshed) == 1 and refreshed[0] != granted.tokens["refresh_token"]
        assert reader_.me()["business"]["id"] == tenant.business.id
    assert len(refreshed) == 1


def test_a_refused_token_is_refreshed_once_and_the_request_retried(
    client: httpx.Client, server: Server, db: Engine, tenant: Tenant
) -> None:
    granted = connect(client, db, tenant.business.id)
    refreshed: list[str] = []
    grant = _expired_grant(granted.tokens, granted.app, refreshed)
    grant.access_token, grant.expires_at = "revoked-or-unknown", time.time() + 3600
    with Client(server.base_url, integrator_key=granted.app.key, oauth=grant) as reader_:
        assert reader_.me()["business"]["id"] == tenant.business.id
    assert len(refreshed) == 1


def test_async_tasks_pull_what_the_sync_client_pulls(
    api: Api, server: Server, tenant: Tenant
) -> None:
    seed_checkins(api, 12)
    with reader(server, tenant, page_size=5) as client:
        want = list(client.pull("checkins"))

    async def main() -> list[list[Item]]:
        async with async_reader(server, tenant, page_size=5) as aclient:

            async def one() -> list[Item]:
                return [item async for item in aclient.pull("checkins")]

            return list(await asyncio.gather(one(), one(), one()))

    assert asyncio.run(main()) == [want] * 3


def test_a_pull_closed_after_its_first_page_leaves_the_client_usable(
    api: Api, server: Server, tenant: Tenant
) -> None:
    seed_checkins(api, 12)
    with reader(server, tenant, page_size=5) as client:
        pulled = client.pull("checkins")
        first = [next(pulled) for _ in range(5)]  # the second page is asked for by now
        pulled.close()
        assert [r.id for r in first] == ["C000", "C001", "C002", "C003", "C004"]
        assert len(list(client.pull("checkins"))) == 13

    async def main() -> tuple[list[str], int]:
        async with async_reader(server, tenant, page_size=5) as aclient:
            pages = aclient.pull("checkins")
            ids = [(await anext(pages)).id for _ in range(5)]  # type: ignore[union-attr]
            await pages.aclose()
            return ids, len([item async for item in aclient.pull("checkins")])

    loop_errors: list[dict[str, Any]] = []

    def run() -> tuple[list[str], int]:
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(lambda _loop, context: loop_errors.append(context))
        try:
            return loop.run_until_complete(main())
        finally:
            loop.close()

    assert run() == (["C000", "C001", "C002", "C003", "C004"], 13)
    assert loop_errors == []


def test_async_tasks_refresh_an_expired_grant_once(
    client: httpx.Client, server: Server, db: Engine, tenant: Tenant
) -> None:
    granted = connect(client, db, tenant.business.id)
    refreshed: list[str] = []
    grant = _expired_grant(granted.tokens, granted.app, refreshed)

    async def main() -> list[dict[str, Any]]:
        async with AsyncClient(server.base_url, integrator_key=granted.app.key, oauth=grant) as c:
            return list(await asyncio.gather(*(c.me() for _ in range(5))))

    answers = asyncio.run(main())
    assert [a["business"]["id"] for a in answers] == [tenant.business.id] * 5
    assert len(refreshed) == 1


def test_the_readme_example_runs_as_written(api: Api, server: Server, tenant: Tenant) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("### The Python client\n", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    seed_checkins(api, 30)
    scope: dict[str, Any] = {
        "INTEGRATOR_KEY": tenant.integrator.key,
        "SHARED_SECRET": tenant.business.shared_secret,
    }
    exec(compile(code.replace("http://127.0.0.1:8000", server.base_url), "README", "exec"), scope)
    assert sorted(scope["copy"]) == [f"C{i:03}" for i in range(30)]
    assert isinstance(scope["saved"], Bookmark)
    assert scope["check"].matches


@pytest.mark.parametrize("wrong_links", [False, True], ids=["no-link", "wrong-link"])
def test_pages_follow_the_body_cursor_where_a_link_is_missing_or_disagrees(
    wrong_links: bool,
) -> None:
    # brokenkit's server speaks the contract without Link headers, or with wrong ones.
    with serving(Broken(wrong_links=wrong_links)) as base_url:
        users = [
            {"id": f"u{n:02}", "first_name": "A", "last_name": "B", "is_child": False}
            for n in range(25)
        ]
        written = httpx.post(
            f"{base_url}/v1/users/batch",
            json={"upsert": users},
            headers={"Authorization": f"Bearer {INGEST}"},
        )
        assert written.status_code == 200
        with Client(base_url, integrator_key=KEY, token=SECRET, page_size=10) as client:
            items = list(client.pull("users"))
    records, tombstones, bookmarks = split(items)
    assert sorted(records) == [u["id"] for u in users] and tombstones == []
    assert len(items) == 26 and items[-1] == bookmarks[0]
