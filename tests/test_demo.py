"""`clubfeed demo` through the real command on real databases.

The demo is loaded once per database and read back three ways: straight from
the tables, through the HTTP API with the credentials the command printed, and
with the curl commands it printed, exactly as a person would paste them.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from clubfeed import catalogue, tenants
from clubfeed.demo import DEMO_BUSINESS_NAME
from clubfeed.demo.load import LOADING_NAME
from clubfeed.settings import Settings
from clubfeed.storage.engine import make_engine, read_connection, write_transaction
from tests.conftest import Server
from tests.consolekit import log_in, logged_in

CLUBFEED = shutil.which("clubfeed", path=str(Path(sys.executable).parent)) or "clubfeed"
PRINTED_BASE_URL = "http://127.0.0.1:8000"

# What a year of a three-site chain with about 2,000 members comes to.
EXPECTED_COUNTS = {
    "locations": (3, 3),
    "users": (1_900, 2_100),
    "memberships": (1_500, 3_000),
    "checkins": (90_000, 115_000),
    "referrals": (200, 500),
    "sales-categories": (4, 12),
    "sales-subcategories": (10, 30),
    "sales": (15_000, 40_000),
    "classes": (12, 40),
    "class-attendances": (10_000, 25_000),
    "appointment-categories": (4, 12),
    "appointments": (1_000, 5_000),
}
NON_LATIN_SCRIPTS = {"CJK", "CYRILLIC", "GREEK", "HANGUL", "ARABIC", "HIRAGANA", "KATAKANA"}


@dataclass(frozen=True)
class Printed:
    """What one `clubfeed demo` run printed."""

    output: str
    business_id: int
    shared_secret: str
    ingest_key: str
    integrator_key: str
    admin_password: str
    client_id: str
    client_secret: str
    read_curl: str
    write_curl: str
    pull_command: str

    @property
    def read_headers(self) -> dict[str, str]:
        return {
            "X-Integrator-Key": self.integrator_key,
            "Authorization": f"Bearer {self.shared_secret}",
        }


@dataclass(frozen=True)
class Snapshot:
    """The demo business as stored: its records (server times removed) and its change clock."""

    records: dict[str, list[dict[str, Any]]]
    clock_seq: int
    demo_businesses: int

    @property
    def counts(self) -> dict[str, int]:
        return {name: len(records) for name, records in self.records.items()}

    @property
    def digest(self) -> str:
        return hashlib.sha256(
            json.dumps(self.records, sort_keys=True, ensure_ascii=False).encode()
        ).hexdigest()


def _cli(url: str, *args: str) -> str:
    env = {**os.environ, "CLUBFEED_DATABASE_URL": url}
    done = subprocess.run(
        [CLUBFEED, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def _field(output: str, label: str, pattern: str) -> str:
    match = re.search(rf"^\s*{label}\s+({pattern})(?:\s|$)", output, re.MULTILINE)
    assert match, f"{label!r} not printed in:\n{output}"
    return match.group(1)


def _demo(url: str) -> Printed:
    output = _cli(url, "demo")
    curls = [line for line in output.splitlines() if line.startswith("curl ")]
    assert len(curls) == 2, output
    return Printed(
        output=output,
        business_id=int(_field(output, "business id", r"\d+")),
        shared_secret=_field(output, "shared secret", r"cfs_[\w-]+"),
        ingest_key=_field(output, "ingest key", r"cfi_[\w-]+"),
        integrator_key=_field(output, "integrator key", r"cfk_[\w-]+"),
        admin_password=re.findall(r"/console\s+owner@harbour-and-pine\.example / (\S+)", output)[0],
        client_id=_field(output, "client_id", r"cfid_[\w-]+"),
        client_secret=_field(output, "client_secret", r"cfcs_[\w-]+"),
        read_curl=next(c for c in curls if "-X PUT" not in c),
        write_curl=next(c for c in curls if "-X PUT" in c),
        pull_command=next(
            line for line in output.splitlines() if line.startswith("clubfeed pull ")
        ),
    )


def _snapshot(url: str, business_id: int) -> Snapshot:
    engine = make_engine(url, pool_size=1)
    try:
        with read_connection(engine) as conn:
            records = {}
            for resource in catalogue.RESOURCES:
                bodies = conn.execute(
                    text(
                        f"SELECT body FROM {resource.table} "
                        "WHERE business_id = :b AND deleted_at IS NULL ORDER BY id"
                    ),
                    {"b": business_id},
                ).scalars()
                records[resource.name] = [_content(body) for body in bodies]
            seq = conn.execute(
                text("SELECT seq FROM change_clock WHERE business_id = :b"), {"b": business_id}
            ).scalar_one()
            named = conn.execute(
                text("SELECT count(*) FROM businesses WHERE name = :n"), {"n": DEMO_BUSINESS_NAME}
            ).scalar_one()
    finally:
        engine.dispose()
    return Snapshot(records, seq, named)


def _content(body: str) -> dict[str, Any]:
    """A record without the server's own times, which differ between loads."""
    record: dict[str, Any] = json.loads(body)
    record.pop("created_at")
    record.pop("modified_at")
    return record


@dataclass(frozen=True)
class Demo:
    url: str
    first: Printed
    second: Printed
    loaded: Snapshot
    reloaded: Snapshot


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """The demo run twice on a fresh SQLite file, with the data as each run left it."""
    url = f"sqlite:///{tmp_path_factory.mktemp('demo') / 'demo.db'}"
    _cli(url, "db", "upgrade")
    first = _demo(url)
    loaded = _snapshot(url, first.business_id)
    second = _demo(url)
    return Demo(url, first, second, loaded, _snapshot(url, second.business_id))


@pytest.fixture(scope="module")
def records(demo: Demo) -> dict[str, list[dict[str, Any]]]:
    return demo.loaded.records


def test_every_resource_is_loaded_in_realistic_numbers(demo: Demo) -> None:
    counts = demo.loaded.counts
    assert set(counts) == set(EXPECTED_COUNTS) == set(catalogue.BY_NAME)
    for name, (low, high) in EXPECTED_COUNTS.items():
        assert low <= counts[name] <= high, (name, counts[name])
        assert f"{counts[name]:,}" in demo.first.output, f"{name} count not printed"
    assert re.search(r"Loaded [\d,]+ demo records in [\d.]+ s", demo.first.output)


def test_a_second_run_loads_nothing_and_issues_new_credentials(demo: Demo) -> None:
    assert demo.second.business_id == demo.first.business_id
    assert "already loaded" in demo.second.output and "Loaded" not in demo.second.output
    # Not one write: the change clock hands out a seq to every record a load offers.
    assert demo.reloaded.clock_seq == demo.loaded.clock_seq
    assert demo.reloaded.counts == demo.loaded.counts
    assert demo.reloaded.digest == demo.loaded.digest
    assert demo.loaded.demo_businesses == demo.reloaded.demo_businesses == 1
    for kind in ("shared_secret", "ingest_key", "integrator_key"):
        assert getattr(demo.first, kind) != getattr(demo.second, kind), kind
    assert "stopped working" in demo.second.output


def test_printed_credentials_read_the_demo_and_earlier_ones_are_refused(demo: Demo) -> None:
    new, old = demo.second, demo.first
    with (
        Server(Settings(database_url=demo.url)) as server,
        httpx.Client(base_url=server.base_url, timeout=60) as http,
    ):
        for name, expected in demo.loaded.counts.items():
            read = 0
            params: dict[str, Any] = {"limit": 10_000}
            while True:
                page = http.get(f"/v1/{name}", params=params, headers=new.read_headers)
                assert page.status_code == 200, page.text
                body = page.json()
                read += len(body["data"])
                if body["next_cursor"] is None:
                    break
                params = {"limit": 10_000, "cursor": body["next_cursor"]}
            assert read == expected, name

        stale_secret = {**new.read_headers, "Authorization": f"Bearer {old.shared_secret}"}
        stale_integrator = {**new.read_headers, "X-Integrator-Key": old.integrator_key}
        for headers in (stale_secret, stale_integrator, old.read_headers):
            assert http.get("/v1/checkins", headers=headers).status_code == 401
        stale_write = http.put(
            "/v1/locations/loc-bk",
            json={"name": "x", "timezone": "UTC"},
            headers={"Authorization": f"Bearer {old.ingest_key}"},
        )
        assert stale_write.status_code == 401


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs the curl command")
def test_the_printed_curl_commands_work_as_pasted(demo: Demo) -> None:
    printed = demo.second
    with Server(Settings(database_url=demo.url)) as server:

        def paste(command: str) -> tuple[int, Any]:
            assert PRINTED_BASE_URL in command
            args = shlex.split(command.replace(PRINTED_BASE_URL, server.base_url))
            done = subprocess.run(
                [*args, "-w", "\n%{http_code}"], capture_output=True, text=True, timeout=60
            )
            body, _, status = done.stdout.rpartition("\n")
            return int(status), json.loads(body)

        status, page = paste(printed.read_curl)
        assert status == 200 and len(page["data"]) == 3
        assert all(r["id"].startswith("ci-") for r in page["data"])

        status, written = paste(printed.write_curl)
        assert status in (200, 201) and written["id"] == "ci-curl-1"
        with httpx.Client(base_url=server.base_url) as http:
            read_back = http.get("/v1/checkins/ci-curl-1", headers=printed.read_headers)
            assert read_back.status_code == 200 and read_back.json() == written
            # Leave the demo as loaded for the other tests (a complete transfer skips tombstones).
            ingest = {"Authorization": f"Bearer {printed.ingest_key}"}
            assert http.delete("/v1/checkins/ci-curl-1", headers=ingest).status_code == 200


def test_the_printed_pull_command_copies_the_whole_demo(demo: Demo, tmp_path: Path) -> None:
    printed = demo.second
    with Server(Settings(database_url=demo.url)) as server:
        args = shlex.split(printed.pull_command.replace(PRINTED_BASE_URL, server.base_url))
        assert args[:2] == ["clubfeed", "pull"]
        done = subprocess.run(
            [CLUBFEED, *args[1:], "--json"],
            cwd=tmp_path,
            env={k: v for k, v in os.environ.items() if not k.startswith("CLUBFEED_")},
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert done.returncode == 0, done.stderr
    pulled = {r["resource"]: r for r in json.loads(done.stdout)["resources"]}
    assert {name: r["copy"] for name, r in pulled.items()} == demo.reloaded.counts
    assert all(r["verified"] for r in pulled.values())
    assert (tmp_path / "demo-copy.db").exists()


def test_another_fresh_database_gets_the_same_demo(demo: Demo, pg_url: str) -> None:
    """Seeded, not random: a fresh PostgreSQL database gets exactly what SQLite got.

    The business is left as a load interrupted before its first batch leaves it,
    so this also shows the next run finishing that load rather than skipping it.
    """
    _cli(pg_url, "db", "upgrade")
    engine = make_engine(pg_url, pool_size=1)
    try:
        with write_transaction(engine) as conn:
            interrupted = tenants.create_business(conn, LOADING_NAME)
    finally:
        engine.dispose()

    printed = _demo(pg_url)
    assert printed.business_id == interrupted.id
    other = _snapshot(pg_url, printed.business_id)
    assert other.demo_businesses == 1
    assert other.counts == demo.loaded.counts
    assert other.digest == demo.loaded.digest


def test_checkins_follow_local_opening_hours_in_three_zones(
    records: dict[str, list[dict[str, Any]]],
) -> None:
    times = [datetime.fromisoformat(r["checked_in_at"]) for r in records["checkins"]]
    offsets = {t.utcoffset() for t in times}
    assert len(offsets) >= 3
    assert any(o is not None and o.seconds % 3600 == 1800 for o in offsets), offsets
    hours = collections.Counter(t.hour for t in times)
    assert min(hours) >= 5 and max(hours) <= 22, hours
    # After-work and early-morning peaks, quiet mid-afternoons, in each site's own clock.
    assert hours[18] > 1.5 * hours[15] and hours[6] > 1.5 * hours[8], hours
    by_location = collections.Counter(r["location_id"] for r in records["checkins"])
    assert len(by_location) == 3
    first, last = min(times), max(times)
    assert first.year == 2025 and first.month == 12 and last.year == 2026 and last.month == 11


def test_members_look_like_a_real_chain(records: dict[str, list[dict[str, Any]]]) -> None:
    users = {u["id"]: u for u in records["users"]}
    scripts = {
        unicodedata.name(ch).split()[0]
        for u in users.values()
        for ch in u["first_name"] + u["last_name"]
        if ch.isalpha()
    }
    assert len(scripts & NON_LATIN_SCRIPTS) >= 3, scripts
    assert len({u["email"] for u in users.values() if u["email"]}) > 1_500
    children = [u for u in users.values() if u["is_child"]]
    assert len(children) >= 50
    for child in children:
        parent = users[child["parent_id"]]
        assert not parent["is_child"] and parent["birth_date"] < child["birth_date"]
    assert all(u["parent_id"] is None for u in users.values() if not u["is_child"])

    memberships = records["memberships"]
    assert {"active", "frozen", "cancelled", "expired"} <= {m["status"] for m in memberships}
    assert len({m["membership_type"] for m in memberships}) >= 4
    for membership in memberships:
        cancelled = membership["cancellation_date"]
        assert (cancelled is not None) == (membership["status"] == "cancelled")
        assert cancelled is None or cancelled > membership["join_date"]


def test_sales_bookings_and_referrals_hang_together(
    records: dict[str, list[dict[str, Any]]],
) -> None:
    lines_per_sale = collections.Counter(s["sale_id"] for s in records["sales"])
    assert sum(1 for n in lines_per_sale.values() if n > 1) > 500
    for line in records["sales"]:
        assert re.fullmatch(r"-?\d+\.\d\d", line["pre_tax_price"]), line
    assert len({s["payment_type"] for s in records["sales"]}) >= 4
    assert sum(Decimal(s["pre_tax_price"]) for s in records["sales"]) > 0
    subcategories = {s["id"]: s for s in records["sales-subcategories"]}
    for line in records["sales"]:
        if line["subcategory_id"] is not None:
            assert subcategories[line["subcategory_id"]]["category_id"] == line["category_id"]

    for booking in records["class-attendances"] + records["appointments"]:
        assert (booking["checked_in_at"] is not None) == booking["attended"], booking
    assert {b["attended"] for b in records["class-attendances"]} == {True, False}

    referrals = records["referrals"]
    assert any(r["referee_user_id"] for r in referrals)
    assert any(r["referee_user_id"] is None and r["referee_email"] for r in referrals)


def test_the_printed_console_login_and_oauth_client_work_and_earlier_ones_do_not(
    demo: Demo,
) -> None:
    new, old = demo.second, demo.first
    email = "owner@harbour-and-pine.example"
    with Server(Settings(database_url=demo.url)) as server:
        with logged_in(server.base_url, email, new.admin_password) as owner:
            overview = owner.get("/console")
            assert overview.status_code == 200 and "Harbour &amp; Pine Fitness" in overview.text
        with httpx.Client(base_url=server.base_url, timeout=60) as http:
            assert log_in(http, email, old.admin_password).status_code == 401

            def token_error(client_id: str, client_secret: str) -> tuple[int, str]:
                form = {
                    "grant_type": "authorization_code",
                    "code": "cfac_not-a-code",
                    "redirect_uri": "http://127.0.0.1:8400/callback",
                    "code_verifier": "v" * 43,
                }
                answer = http.post("/oauth/token", data=form, auth=(client_id, client_secret))
                return answer.status_code, answer.json()["error"]

            # The client authenticates (the code is what's wrong); the old secret does not.
            assert token_error(new.client_id, new.client_secret) == (400, "invalid_grant")
            assert token_error(new.client_id, old.client_secret) == (401, "invalid_client")
            assert new.client_id == old.client_id
