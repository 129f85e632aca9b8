"""The OpenAPI description equals the behaviour: schemathesis, every check, against a real server.

Each run is seeded and bounded, so it is repeatable and fits `make test`. Two
businesses hold records with the same ids; reads go with a shared secret and with
an OAuth access token, writes with an ingest key. Every schema-valid request must be
accepted, every invalid one refused with a documented status, every response must
match its schema, headers included.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from clubfeed import catalogue
from clubfeed.settings import Settings
from tests.conftest import Server
from tests.factories import Api, Tenant, new_integrator, new_tenant
from tests.oauthkit import connect

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "test-output"
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
SEED = 20261201
MAX_EXAMPLES = int(os.environ.get("CLUBFEED_FUZZ_EXAMPLES", "12"))
# Filters of one kind widen a selection; of two kinds they narrow it.
# HEAD answers as GET does without the body (tests/test_resources.py checks it on every
# kind of GET), so fuzzing it too would double the reads' time for nothing new.
# Reads are fuzzed in two halves, each a test of its own within the per-test timeout:
# lists, records and /v1/me; then lookups (in the URL and by body) and summaries.
NOT_HEAD = ["--exclude-method", "HEAD"]
READS = ["--include-path-regex", "^/v1/", "--exclude-path-regex", "(lookup|summary)$"] + [
    arg for method in ("POST", "PUT", "DELETE", "HEAD") for arg in ("--exclude-method", method)
]
LOOKUPS = ["--include-path-regex", "^/v1/.*/(lookup|summary)$", *NOT_HEAD]
WRITES = [
    "--include-path-regex",
    "^/v1/",
    "--exclude-method",
    "GET",
    "--exclude-method",
    "HEAD",
    "--exclude-path-regex",
    "lookup$",
]
SERVICE = ["--exclude-path-regex", "^/v1/", *NOT_HEAD]
STATEFUL = "coverage,fuzzing,stateful"


def run_schemathesis(
    server: Server,
    headers: dict[str, str],
    selection: list[str],
    fuzzed: Fuzzed,
    phases: str = "coverage,fuzzing",
) -> subprocess.CompletedProcess[str]:
    """One seeded run; the stateful phase (sequences of calls) only where calls change state:
    among reads it found nothing and took most of the time."""
    args = [
        str(SCHEMATHESIS),
        "--config-file",
        str(ROOT / "tests" / "schemathesis.toml"),
        "run",
        f"{server.base_url}/openapi.json",
        "--checks",
        "all",
        "--seed",
        str(SEED),
        "--max-examples",
        str(MAX_EXAMPLES),
        "--workers",
        "1",
        "--phases",
        phases,
        "--generation-deterministic",
        "--no-color",
        *selection,
    ]
    for name, value in headers.items():
        args += ["--header", f"{name}: {value}"]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.fuzzhooks",
        "CLUBFEED_FUZZ_REFS": json.dumps(fuzzed.refs),
        "CLUBFEED_FUZZ_HELD_UNTIL": fuzzed.held_until,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )


def assert_no_failures(result: subprocess.CompletedProcess[str]) -> None:
    """Exit 0; otherwise each failure's operation, check and response, in a few lines each.

    The whole report is kept under test-output/ (failing requests can run to megabytes).
    """
    if result.returncode != 0:
        OUTPUT.mkdir(exist_ok=True)
        report = OUTPUT / f"schemathesis-{os.getpid()}-{time.monotonic_ns()}.txt"
        report.write_text(result.stdout + result.stderr)
        wanted = ("___", "- ST", "[", "    `", "Runtime Error", "Selected", "Tested")
        summary = [line[:300] for line in result.stdout.splitlines() if line.startswith(wanted)]
        raise AssertionError(
            f"schemathesis failed (whole report: {report}):\n" + "\n".join(summary[:200])
        )
    assert "Tested:" in result.stdout, result.stdout[-5_000:]


@pytest.fixture(scope="module")
def server(db: Engine, db_url: str) -> Iterator[Server]:
    """The app, with room for the thousands of deliberately wrong credentials a run sends.

    At the default 300 a minute an address would be refused (429) within the runs, and
    schemathesis rightly wants 401 for a missing credential; the limit has its own tests.
    """
    settings = Settings(database_url=db_url, auth_failure_rate_limit="1000000/minute")
    with Server(settings) as running:
        yield running


@dataclass(frozen=True)
class Fuzzed:
    """The business under test, the ids its references use, and a consistent_until it reached."""

    tenant: Tenant
    refs: dict[str, str]
    held_until: str


@pytest.fixture(scope="module")
def fuzzed(server: Server, db: Engine) -> Fuzzed:
    """A business seeded with one record of every resource, beside another with the same ids."""
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        tenant = new_tenant(db)
        api = Api(client, tenant)
        refs = api.seed()
        twin = Api(client, Tenant(new_tenant(db).business, new_integrator(db)))
        assert twin.seed() == refs
        page = api.get("/v1/locations").raise_for_status().json()
    return Fuzzed(tenant, refs, page["consistent_until"])


def _token_headers(server: Server, db: Engine, fuzzed: Fuzzed) -> dict[str, str]:
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        connected = connect(client, db, fuzzed.tenant.business.id, scope=" ".join(catalogue.NAMES))
    return connected.read_headers()


@pytest.mark.parametrize("selection", [READS, LOOKUPS], ids=["reads", "lookups"])
def test_reads_with_a_shared_secret(server: Server, fuzzed: Fuzzed, selection: list[str]) -> None:
    assert_no_failures(run_schemathesis(server, fuzzed.tenant.read_headers, selection, fuzzed))


@pytest.mark.parametrize("selection", [READS, LOOKUPS], ids=["reads", "lookups"])
def test_reads_with_an_access_token(
    server: Server, db: Engine, fuzzed: Fuzzed, selection: list[str]
) -> None:
    headers = _token_headers(server, db, fuzzed)
    assert_no_failures(run_schemathesis(server, headers, selection, fuzzed))


def test_writes_with_an_ingest_key(server: Server, fuzzed: Fuzzed) -> None:
    headers = fuzzed.tenant.write_headers
    assert_no_failures(run_schemathesis(server, headers, WRITES, fuzzed, STATEFUL))


def test_service_endpoints(server: Server, fuzzed: Fuzzed) -> None:
    assert_no_failures(run_schemathesis(server, {}, SERVICE, fuzzed))
