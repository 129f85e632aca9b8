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
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from clubfeed import catalogue
from tests.conftest import Server
from tests.factories import Api, Tenant, new_integrator, new_tenant
from tests.oauthkit import connect

ROOT = Path(__file__).resolve().parent.parent
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
SEED = 20261201
MAX_EXAMPLES = int(os.environ.get("CLUBFEED_FUZZ_EXAMPLES", "12"))
# Filters of one kind widen a selection; of two kinds they narrow it.
READS = ["--include-path-regex", "^/v1/"] + [
    arg for method in ("POST", "PUT", "DELETE") for arg in ("--exclude-method", method)
]
LOOKUPS = ["--include-path-regex", "^/v1/.*/lookup$"]
WRITES = [
    "--include-path-regex",
    "^/v1/",
    "--exclude-method",
    "GET",
    "--exclude-path-regex",
    "lookup$",
]
SERVICE = ["--exclude-path-regex", "^/v1/"]


def run_schemathesis(
    server: Server, headers: dict[str, str], selection: list[str], refs: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    args = [
        str(SCHEMATHESIS),
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
        "coverage,fuzzing,stateful",
        "--generation-deterministic",
        "--no-color",
        *selection,
    ]
    for name, value in headers.items():
        args += ["--header", f"{name}: {value}"]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.fuzzhooks",
        "CLUBFEED_FUZZ_REFS": json.dumps(refs),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )


def assert_no_failures(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stdout[-20_000:] + result.stderr[-5_000:]
    assert "No issues found" in result.stdout or " passed" in result.stdout, result.stdout


@pytest.fixture(scope="module")
def fuzzed(server: Server, db: Engine) -> tuple[Tenant, dict[str, str]]:
    """A business seeded with one record of every resource, beside another with the same ids."""
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        tenant = new_tenant(db)
        refs = Api(client, tenant).seed()
        twin = Api(client, Tenant(new_tenant(db).business, new_integrator(db)))
        assert twin.seed() == refs
    return tenant, refs


def test_reads_with_a_shared_secret(server: Server, fuzzed: tuple[Tenant, dict[str, str]]) -> None:
    tenant, refs = fuzzed
    assert_no_failures(run_schemathesis(server, tenant.read_headers, READS, refs))
    assert_no_failures(run_schemathesis(server, tenant.read_headers, LOOKUPS, refs))


def test_reads_with_an_access_token(
    server: Server, db: Engine, fuzzed: tuple[Tenant, dict[str, str]]
) -> None:
    tenant, refs = fuzzed
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        connected = connect(client, db, tenant.business.id, scope=" ".join(catalogue.NAMES))
    headers = connected.read_headers()
    assert_no_failures(run_schemathesis(server, headers, READS, refs))
    assert_no_failures(run_schemathesis(server, headers, LOOKUPS, refs))


def test_writes_with_an_ingest_key(server: Server, fuzzed: tuple[Tenant, dict[str, str]]) -> None:
    tenant, refs = fuzzed
    assert_no_failures(run_schemathesis(server, tenant.write_headers, WRITES, refs))


def test_service_endpoints(server: Server, fuzzed: tuple[Tenant, dict[str, str]]) -> None:
    assert_no_failures(run_schemathesis(server, {}, SERVICE, fuzzed[1]))
