"""`clubfeed conform` passes clubfeed, and fails two broken servers with the right findings."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from clubfeed.conform import IDS
from clubfeed.feed import retention
from clubfeed.settings import Settings
from clubfeed.storage.engine import write_transaction
from clubfeed.timefmt import now_us
from tests.brokenkit import INGEST, KEY, SECRET, Broken, serving
from tests.conftest import Server
from tests.factories import Api, Tenant, seed_checkins
from tests.servekit import free_port, lagging

CLUBFEED = Path(sys.executable).parent / "clubfeed"


def conform(
    base_url: str, key: str, token: str, *args: str, ingest: str | None = None, timeout: float = 240
) -> tuple[int, dict[str, dict[str, Any]], str]:
    """The exit code, the findings by check id, and what went to stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLUBFEED_")}
    env |= {"CLUBFEED_INTEGRATOR_KEY": key, "CLUBFEED_TOKEN": token}
    if ingest is not None:
        env["CLUBFEED_INGEST_KEY"] = ingest
    done = subprocess.run(
        [str(CLUBFEED), "conform", base_url, "--json", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.stdout, done.stderr
    report = json.loads(done.stdout)
    assert report["passed"] is (done.returncode == 0)
    return done.returncode, {c["id"]: c for c in report["checks"]}, done.stderr


def test_clubfeed_meets_every_requirement(
    db: Engine, db_url: str, tenant: Tenant, server: Server
) -> None:
    # A server of its own: the rate-limit check empties its read bucket (made small here
    # so that it is quick), and the credential check spends the address's failure budget.
    settings = Settings(database_url=db_url, read_rate_limit="900/minute")
    with Server(settings) as own:
        code, found, err = conform(
            own.base_url,
            tenant.integrator.key,
            tenant.business.shared_secret,
            "--seconds",
            "3",
            ingest=tenant.business.ingest_key,
        )
    assert {i: c["result"] for i, c in found.items()} == dict.fromkeys(IDS, "pass"), found
    assert code == 0, err
    assert (
        "0 missed, 0 repeated, consistent_until moved back 0 times"
        in (found["concurrent-commits"]["evidence"])
    )
    assert found["page-size"]["evidence"].startswith("users: a first page of 10,000 of 10,0")
    assert re.fullmatch(
        r"429 within [0-9,]+ requests in [0-9.]+ s, Retry-After: [0-9]+; "
        r"200 again after waiting it",
        found["rate-limit"]["evidence"],
    ), found["rate-limit"]
    # Read through the shared server: the run spent its own server's read bucket.
    with httpx.Client(base_url=server.base_url, headers=tenant.read_headers) as reader:
        left = [
            r["id"]
            for resource in ("users", "locations", "checkins")
            for r in reader.get(f"/v1/{resource}", params={"limit": 10_000}).json()["data"]
            if r["id"].startswith("cf-conform-")
        ]
    assert left == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_rate_limit_check_outruns_the_refill_of_a_distant_server(
    db_url: str, tenant: Tenant
) -> None:
    """150 ms away, one read at a time is 6 a second, below this bucket's refill of 10: the
    check must send enough at once to empty it, as it must across a real network."""
    settings = Settings(database_url=db_url, read_rate_limit="600/minute")
    with Server(settings) as own, lagging(own.port, 0.15) as port:
        code, found, err = conform(
            f"http://127.0.0.1:{port}",
            tenant.integrator.key,
            tenant.business.shared_secret,
            "--check",
            "rate-limit",
            timeout=60,  # it takes about 5 s; one read at a time would never end
        )
    assert found["rate-limit"]["result"] == "pass", found
    assert code == 0, err


def test_without_an_ingest_key_the_writing_checks_are_skipped(
    server: Server, tenant: Tenant
) -> None:
    only = ("credentials", "stable-order", "tombstones", "concurrent-commits", "page-size")
    code, found, _ = conform(
        server.base_url,
        tenant.integrator.key,
        tenant.business.shared_secret,
        *(arg for check in only for arg in ("--check", check)),
    )
    assert code == 0
    assert {i: c["result"] for i, c in found.items()} == {
        "credentials": "pass",
        "page-size": "skip",
        "stable-order": "skip",
        "tombstones": "skip",
        "concurrent-commits": "skip",
    }
    assert (
        found["tombstones"]["evidence"] == "needs an ingest key (--ingest-key) to delete a record"
    )
    assert found["credentials"]["evidence"] == (
        "180 requests with a credential missing or wrong: all 401 or 403"
    )


def test_a_server_paging_by_offset_with_naive_times_fails(tmp_path: Path) -> None:
    checks = ("credentials", "lookup", "stable-order", "offsets", "history-gone")
    with serving(Broken(offset_paging=True, naive_times=True)) as base_url:
        code, found, _ = conform(
            base_url,
            KEY,
            SECRET,
            *(arg for check in checks for arg in ("--check", check)),
            ingest=INGEST,
        )
    assert code == 1
    results = {i: c["result"] for i, c in found.items()}
    assert results == {
        "credentials": "pass",
        "lookup": "pass",
        "stable-order": "fail",
        "offsets": "fail",
        "history-gone": "pass",
    }
    paging = found["stable-order"]["evidence"]
    assert "10 missed" in paging and "3 repeated" in paging, paging
    assert "times without an offset" in found["offsets"]["evidence"]


def test_a_server_stamping_before_commit_misses_slow_batches(tmp_path: Path) -> None:
    checks = ("stable-order", "offsets", "tombstones", "concurrent-commits")
    with serving(Broken(early_stamps=True)) as base_url:
        code, found, _ = conform(
            base_url,
            KEY,
            SECRET,
            "--seconds",
            "3",
            *(arg for check in checks for arg in ("--check", check)),
            ingest=INGEST,
        )
    assert code == 1
    assert {i: c["result"] for i, c in found.items()} == {
        "stable-order": "pass",
        "offsets": "pass",
        "tombstones": "pass",
        "concurrent-commits": "fail",
    }
    evidence = found["concurrent-commits"]["evidence"]
    assert " 0 missed" not in evidence and " missed" in evidence, evidence
    assert "0 repeated" in evidence


def test_an_unreachable_server_or_refused_credentials_stop_at_once(
    server: Server, tenant: Tenant
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLUBFEED_")}

    def run(*args: str, key: str = "k", token: str = "t") -> tuple[int, str, str]:
        """The exit code, stdout and stderr (its lines joined) of a conform run."""
        done = subprocess.run(
            [str(CLUBFEED), "conform", "--integrator-key", key, "--token", token, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return done.returncode, done.stdout, " ".join(done.stderr.split())

    code, out, err = run(server.base_url)
    assert (code, out) == (1, "")
    assert "refused the reader's credentials (401): check --integrator-key and --token" in err
    code, _, err = run(f"http://127.0.0.1:{free_port()}")
    assert code == 1 and "cannot reach the server: GET /v1/locations: ConnectError" in err
    keys = {"key": tenant.integrator.key, "token": tenant.business.shared_secret}
    code, _, err = run(f"{server.base_url}/v1", **keys)
    assert code == 1 and "the server's address (without /v1)?" in err
    code, _, err = run("ftp://x")
    assert code == 2 and "must start with http:// or https://" in err


def test_an_ingest_key_the_server_refuses_is_reported_and_nothing_is_left(
    server: Server, tenant: Tenant
) -> None:
    code, found, err = conform(
        server.base_url,
        tenant.integrator.key,
        tenant.business.shared_secret,
        "--check",
        "utf8",
        ingest="cfi_not-a-key",
    )
    assert (code, found) == (1, {})
    assert "Could not write the run's own records: POST /v1/locations/batch: 401, not 200" in (
        " ".join(err.split())
    )


def test_ranges_into_purged_history_count_as_answered_correctly(
    server: Server, tenant: Tenant, api: Api, db: Engine
) -> None:
    seed_checkins(api, 4)
    assert api.batch("checkins", [], delete=["C000"]).status_code == 200
    with write_transaction(db) as conn:
        retention.purge(conn, tenant.business.id, now_us())
    code, found, err = conform(
        server.base_url,
        tenant.integrator.key,
        tenant.business.shared_secret,
        "--check",
        "transfer",
        "--check",
        "ranges",
    )
    assert code == 0, err
    assert found["ranges"]["result"] == "pass"
    evidence = found["ranges"]["evidence"]
    assert evidence.startswith("from the epoch on 11 of 12 resources; ")
    assert evidence.endswith(
        "; reaching into purged history, 1 from the epoch and 2 cuts refused (410), as they should be"
    )
