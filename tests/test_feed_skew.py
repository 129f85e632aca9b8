"""Two `clubfeed serve` processes on one database, one an hour behind (DESIGN's feed proof 5).

The skewed process runs under libfaketime (Debian package `faketime`, which
`make test` installs). On PostgreSQL every stamp comes from the database's
clock; on SQLite from the writing process's clock, which the change clock never
lets go backwards. Either way the two processes answer alike and a poller
moving between them misses and repeats nothing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from clubfeed.storage.engine import is_sqlite
from clubfeed.timefmt import format_us, now_us
from tests.conftest import _free_port
from tests.factories import Tenant, new_tenant, record
from tests.feedkit import EPOCH, Fetch, Page, Poller, http_fetch, ids, live_records, us

HOUR_US = 3_600_000_000


class ServeProcess:
    """`clubfeed serve` as a separate process on a loopback port, optionally an hour behind."""

    def __init__(self, database_url: str, log: Path, *, skewed: bool) -> None:
        self.port = _free_port()
        command = [
            str(Path(sys.executable).with_name("clubfeed")),
            "--database-url",
            database_url,
            "serve",
            "--port",
            str(self.port),
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLUBFEED_")}
        if skewed:
            faketime = shutil.which("faketime")
            if faketime is None:
                pytest.fail("faketime is missing: apt-get install faketime (`make test` does)")
            command = [faketime, "-f", "-1h", *command]
            env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
        self.log = log
        with log.open("wb") as out:
            # Its own process group: `faketime` runs the server as a child, and
            # stopping the group stops both.
            self.process = subprocess.Popen(
                command, env=env, stdout=out, stderr=out, start_new_session=True
            )
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"clubfeed serve exited: {self.log.read_text()}")
            try:
                if self.client.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"clubfeed serve did not start: {self.log.read_text()}")

    def stop(self) -> None:
        self.client.close()
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


@pytest.fixture(scope="module")
def processes(
    db: Engine, db_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServeProcess, ServeProcess]]:
    """(on time, an hour behind), both serving the migrated test database."""
    logs = tmp_path_factory.mktemp("serve")
    started: list[ServeProcess] = []
    try:
        for name, skewed in (("on-time", False), ("behind", True)):
            started.append(ServeProcess(db_url, logs / f"{name}.log", skewed=skewed))
        for process in started:
            process.wait_ready()
        yield started[0], started[1]
    finally:
        for process in started:
            process.stop()


def _alternating(*fetches: Fetch) -> Fetch:
    """Each request to the next process in turn: cursors cross between processes."""
    calls = 0

    def fetch(params: dict[str, str]) -> Page:
        nonlocal calls
        calls += 1
        return fetches[calls % len(fetches)](params)

    return fetch


def _stamp(response: httpx.Response) -> int:
    assert response.status_code in (200, 201), response.text
    return us(response.json()["modified_at"])


def test_skewed_api_processes_stamp_forward_and_answer_alike(
    db: Engine, processes: tuple[ServeProcess, ServeProcess]
) -> None:
    """Writes alternate between the processes; stamps only go forward (on SQLite too, where
    the lagging process's first stamp is an hour back); pollers on either process or
    alternating between them, page by page, all end equal to the table; and the same
    query gets the same bytes from both.
    """
    on_time, behind = processes
    tenant: Tenant = new_tenant(db)
    business = tenant.business.id
    writers = [on_time.client, behind.client]
    on_time_fetch = http_fetch(on_time.client, tenant.read_headers)
    behind_fetch = http_fetch(behind.client, tenant.read_headers)
    pollers = [
        Poller(on_time_fetch),
        Poller(behind_fetch),
        Poller(_alternating(on_time_fetch, behind_fetch)),
    ]

    def put(via: httpx.Client, record_id: str, first_name: str | None = None) -> int:
        body = record("users", record_id)
        if first_name is not None:
            body["first_name"] = first_name
        return _stamp(via.put(f"/v1/users/{record_id}", json=body, headers=tenant.write_headers))

    first = put(behind.client, "u00")
    if is_sqlite(db):
        assert first < now_us() - HOUR_US + 60_000_000, "the lagging process is not an hour behind"
    else:
        assert abs(first - now_us()) < 60_000_000, "PostgreSQL did not stamp with its own clock"

    stamps = [first]
    for i in range(1, 13):
        via = writers[i % 2]
        stamps.append(put(via, f"u{i:02d}"))
        stamps.append(put(via, f"u{i - 1:02d}", first_name=f"edit {i}"))
        if i % 3 == 0:
            deleted = via.delete(f"/v1/users/u{i - 2:02d}", headers=tenant.write_headers)
            stamps.append(_stamp(deleted))
        for poller in pollers:
            poller.poll(limit=2)
    assert stamps == sorted(set(stamps)), "a stamp went backwards or repeated"

    final = live_records(db, business)
    for poller in pollers:
        poller.poll(limit=3)
        assert poller.copy == final
    transfer = Poller(_alternating(behind_fetch, on_time_fetch))
    transfer.transfer(limit=2)
    assert transfer.copy == final

    for params in (
        {},
        {"modified_since": EPOCH},
        {"modified_since": format_us(stamps[3]), "modified_before": format_us(stamps[20])},
        {"modified_before": format_us(stamps[-1] + HOUR_US)},
    ):
        answers = [
            process.client.get("/v1/users", params=params, headers=tenant.read_headers)
            for process in processes
        ]
        assert answers[0].status_code == 200, answers[0].text
        assert answers[0].content == answers[1].content, params
    assert ids(pollers[2].poll()) == []
