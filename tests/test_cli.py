"""The installed `clubfeed` command, run as a subprocess against real SQLite and PostgreSQL.

Each backend gets databases of its own that only the CLI migrates; what the CLI
writes is read back through a real HTTP server on the same database.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, create_engine, inspect, select, text, update

from clubfeed.auth import admins, sessions
from clubfeed.auth.credentials import NewBusiness, NewIntegrator, token_hash
from clubfeed.auth.passwords import hasher
from clubfeed.cli import DAY_US
from clubfeed.settings import Settings
from clubfeed.storage.engine import make_engine
from clubfeed.storage.schema import admin_sessions, api_activity, integrators
from tests.conftest import BACKENDS, Server, _free_port
from tests.factories import Api, Tenant, new_tenant, record

CLUBFEED = Path(sys.executable).parent / "clubfeed"
SUMMARY_COLUMNS = ("lines", "created", "updated", "unchanged", "deleted", "failed batches")


def clubfeed(url: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the installed command with CLUBFEED_DATABASE_URL=url; never raises on its exit code."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLUBFEED_")}
    env.pop("FORCE_COLOR", None)
    env.update(CLUBFEED_DATABASE_URL=url, NO_COLOR="1")
    return subprocess.run(
        [str(CLUBFEED), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in re.split(r"[│┃|]", line) if cell.strip()]


def summary(stderr: str) -> dict[str, int]:
    """The import's summary table as {column: number}."""
    lines = stderr.splitlines()
    for at, line in enumerate(lines):
        header = _cells(line)
        if header and header[0] == "lines" and "created" in header:
            for row in lines[at + 1 :]:
                values = [cell.replace(",", "") for cell in _cells(row)]
                if values and all(value.isdigit() for value in values):
                    return dict(zip(header, map(int, values), strict=True))
    raise AssertionError(f"no summary table in:\n{stderr}")


def failures(stderr: str) -> list[tuple[int, str]]:
    """The `line N: problem` reports, in order."""
    return [(int(n), detail) for n, detail in re.findall(r"^line (\d+): (.*)$", stderr, re.M)]


def counts(**nonzero: int) -> dict[str, int]:
    """A full summary row: the given counts (`failed_batches=` for the last), zero elsewhere."""
    row = dict.fromkeys(SUMMARY_COLUMNS, 0)
    for name, value in nonzero.items():
        row[name.replace("_", " ")] = value
    return row


def write_ndjson(path: Path, lines: Sequence[dict[str, Any] | str]) -> Path:
    """One line per item: dicts as JSON, strings written as they are (blank or broken lines)."""
    path.write_text(
        "".join((json.dumps(item) if isinstance(item, dict) else item) + "\n" for item in lines),
        encoding="utf-8",
    )
    return path


def one_json_line(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The command succeeded and printed exactly one line, a JSON object."""
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("\n") and result.stdout.count("\n") == 1, result.stdout
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


def assert_clean_error(result: subprocess.CompletedProcess[str], *phrases: str) -> None:
    """A non-zero exit with a message containing `phrases`, and no traceback."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("Error: ") or "\nError: " in result.stderr, result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr


class Databases:
    """Empty databases for the CLI to build its schema in; PostgreSQL ones are dropped at the end."""

    def __init__(self, request: pytest.FixtureRequest, folder: Path) -> None:
        self.request = request
        self.folder = folder
        self.pg_names: list[str] = []
        self._admin: Engine | None = None

    @property
    def admin(self) -> Engine:
        if self._admin is None:
            pg_url: str = self.request.getfixturevalue("pg_url")
            self._admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
        return self._admin

    def new(self, backend: str) -> str:
        name = f"clubfeed_cli_{uuid.uuid4().hex[:12]}"
        if backend == "sqlite":
            return f"sqlite:///{self.folder / name}.db"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self.pg_names.append(name)
        return self.admin.url.set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        if self._admin is None:
            return
        with self._admin.connect() as conn:
            for name in self.pg_names:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self._admin.dispose()


@pytest.fixture(scope="module")
def databases(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Databases]:
    made = Databases(request, tmp_path_factory.mktemp("cli-db"))
    yield made
    made.drop_all()


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, databases: Databases) -> str:
    """A database with no schema yet."""
    return databases.new(request.param)


@pytest.fixture(scope="module", params=BACKENDS)
def cli_url(
    request: pytest.FixtureRequest, databases: Databases, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """A database migrated by `clubfeed db upgrade`, shared by this module's tests."""
    url = databases.new(request.param)
    result = clubfeed(url, "db", "upgrade", cwd=tmp_path_factory.mktemp("cli-cwd"))
    assert result.returncode == 0, result.stderr
    return url


@pytest.fixture(scope="module")
def engine(cli_url: str) -> Iterator[Engine]:
    made = make_engine(cli_url, pool_size=2)
    yield made
    made.dispose()


@pytest.fixture(scope="module")
def http(cli_url: str) -> Iterator[httpx.Client]:
    """A client of the API served on the CLI's database."""
    with (
        Server(Settings(database_url=cli_url)) as server,
        httpx.Client(base_url=server.base_url, timeout=60) as client,
    ):
        yield client


@pytest.fixture
def api(http: httpx.Client, engine: Engine) -> Api:
    """A fresh business (and integrator) on the CLI's database, so a test sees only its records."""
    return Api(http, new_tenant(engine))


def run_import(
    api: Api, cli_url: str, resource: str, path: Path, *options: str
) -> subprocess.CompletedProcess[str]:
    return clubfeed(
        cli_url,
        "import",
        resource,
        str(path),
        "--business",
        str(api.tenant.business.id),
        *options,
        cwd=path.parent,
    )


def seed_places(api: Api) -> dict[str, str]:
    """A location and a user over HTTP, for check-ins to reference."""
    assert api.put("locations", "loc", record("locations", "loc")).status_code == 201
    assert api.put("users", "u", record("users", "u")).status_code == 201
    return {"locations": "loc", "users": "u"}


def with_secret(api: Api, shared_secret: str) -> Api:
    """The same business and integrator, reading with another shared secret."""
    business = api.tenant.business
    renewed = NewBusiness(business.id, business.name, shared_secret, business.ingest_key)
    return Api(api.client, Tenant(renewed, api.tenant.integrator))


def ids(api: Api, resource: str) -> list[str]:
    return sorted(r["id"] for r in api.read_all(f"/v1/{resource}"))


# db upgrade


def test_db_upgrade_creates_the_schema_and_is_idempotent(empty_url: str, tmp_path: Path) -> None:
    first = clubfeed(empty_url, "db", "upgrade", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "up to date" in first.stderr
    engine = make_engine(empty_url, pool_size=1)
    try:
        tables = set(inspect(engine).get_table_names())
        assert {"businesses", "integrators", "change_clock", "checkins", "locations"} <= tables
        with engine.connect() as conn:
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()

        second = clubfeed(empty_url, "db", "upgrade", cwd=tmp_path)
        assert second.returncode == 0, second.stderr
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).all() == [
                (version,)
            ]
    finally:
        engine.dispose()
    assert list(tmp_path.iterdir()) == []


def test_commands_on_an_unmigrated_database_say_to_upgrade(empty_url: str, tmp_path: Path) -> None:
    assert_clean_error(clubfeed(empty_url, "business", "list", cwd=tmp_path), "clubfeed db upgrade")


# business and integrator


def test_business_create_json_prints_exactly_one_line(
    cli_url: str, http: httpx.Client, tmp_path: Path
) -> None:
    name = f"Café Ünïcorn {uuid.uuid4().hex[:6]}"
    data = one_json_line(clubfeed(cli_url, "business", "create", name, "--json", cwd=tmp_path))

    assert set(data) == {"id", "name", "shared_secret", "ingest_key"}
    business = NewBusiness(**data)
    assert isinstance(business.id, int) and business.name == name
    assert business.shared_secret.startswith("cfs_") and business.ingest_key.startswith("cfi_")
    listed = clubfeed(cli_url, "business", "list", cwd=tmp_path)
    assert f"{business.id}\t{name}" in listed.stdout.splitlines()

    integrator = NewIntegrator(
        **one_json_line(clubfeed(cli_url, "integrator", "create", "Reader", "--json", cwd=tmp_path))
    )
    tenant_api = Api(http, Tenant(business, integrator))
    assert tenant_api.put("locations", "l", record("locations", "l")).status_code == 201
    assert [r["id"] for r in tenant_api.read_all("/v1/locations")] == ["l"]


def test_business_create_without_json_is_readable_text(
    cli_url: str, http: httpx.Client, engine: Engine, tmp_path: Path
) -> None:
    result = clubfeed(cli_url, "business", "create", "Plain Gym", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    match = re.fullmatch(r"Business (\d+): Plain Gym", lines[0])
    assert match is not None, result.stdout
    secrets = re.findall(r"\b(cf[si]_[A-Za-z0-9_-]{43})$", result.stdout, re.M)
    assert [s[:4] for s in secrets] == ["cfs_", "cfi_"]
    with pytest.raises(json.JSONDecodeError):
        json.loads(result.stdout)

    business = NewBusiness(int(match[1]), "Plain Gym", *secrets)
    tenant_api = Api(http, Tenant(business, new_tenant(engine).integrator))
    assert tenant_api.put("locations", "l", record("locations", "l")).status_code == 201
    assert tenant_api.get("/v1/locations").status_code == 200


def test_rotate_secret_stops_the_old_secret_at_once(cli_url: str, api: Api, tmp_path: Path) -> None:
    business = api.tenant.business
    assert api.get("/v1/locations").status_code == 200

    rotated = clubfeed(cli_url, "business", "rotate-secret", str(business.id), cwd=tmp_path)
    assert rotated.returncode == 0, rotated.stderr
    match = re.fullmatch(
        rf"New shared secret for business {business.id}: (cfs_[A-Za-z0-9_-]{{43}})\n",
        rotated.stdout,
    )
    assert match is not None, rotated.stdout
    old, new = api, with_secret(api, match[1])
    assert old.get("/v1/locations").status_code == 401
    assert new.get("/v1/locations").status_code == 200
    # The ingest key is a separate credential and keeps working.
    assert new.put("locations", "l", record("locations", "l")).status_code == 201

    again = one_json_line(
        clubfeed(cli_url, "business", "rotate-secret", str(business.id), "--json", cwd=tmp_path)
    )
    assert set(again) == {"id", "shared_secret"} and again["id"] == business.id
    newest = with_secret(api, again["shared_secret"])
    assert new.get("/v1/locations").status_code == 401
    assert [r["id"] for r in newest.read_all("/v1/locations")] == ["l"]


def test_rotate_secret_of_an_unknown_business_fails_clearly(cli_url: str, tmp_path: Path) -> None:
    result = clubfeed(cli_url, "business", "rotate-secret", "987654321", cwd=tmp_path)
    assert_clean_error(result, "no business 987654321")
    assert result.stdout == ""


def test_integrator_create_json_key_works_as_x_integrator_key(
    cli_url: str, api: Api, tmp_path: Path
) -> None:
    data = one_json_line(
        clubfeed(cli_url, "integrator", "create", "Loyalty Ltd", "--json", cwd=tmp_path)
    )

    assert set(data) == {"id", "name", "key", "client_id", "client_secret", "redirect_uris"}
    integrator = NewIntegrator(**data)
    assert isinstance(integrator.id, int) and integrator.name == "Loyalty Ltd"
    assert integrator.key.startswith("cfk_")
    headers = {**api.tenant.read_headers, "X-Integrator-Key": integrator.key}
    assert api.client.get("/v1/locations", headers=headers).status_code == 200
    headers["X-Integrator-Key"] = integrator.key[:-1] + ("A" if integrator.key[-1] != "A" else "B")
    assert api.client.get("/v1/locations", headers=headers).status_code == 401


# import


def test_import_loads_every_batch_and_summarises(cli_url: str, api: Api, tmp_path: Path) -> None:
    write_ndjson(
        tmp_path / "locations.ndjson",
        [record("locations", "tokyo", timezone="Asia/Tokyo"), record("locations", "ny")],
    )
    write_ndjson(tmp_path / "users.ndjson", [record("users", f"u{i}") for i in range(3)])
    checkins = [
        record(
            "checkins",
            f"c{i}",
            {"locations": "tokyo" if i % 2 else "ny", "users": f"u{i % 3}"},
            checked_in_at="2026-01-15T00:00:00Z",
        )
        for i in range(7)
    ]
    write_ndjson(tmp_path / "checkins.ndjson", checkins)

    for resource, created in (("locations", 2), ("users", 3)):
        result = run_import(api, cli_url, resource, tmp_path / f"{resource}.ndjson")
        assert result.returncode == 0, result.stderr
        assert summary(result.stderr) == counts(lines=created, created=created)
    result = run_import(api, cli_url, "checkins", tmp_path / "checkins.ndjson", "--batch-size", "3")

    assert result.returncode == 0, result.stderr
    assert "importing checkins" in result.stderr
    assert summary(result.stderr) == counts(lines=7, created=7)
    assert failures(result.stderr) == []
    stored = {r["id"]: r for r in api.read_all("/v1/checkins")}
    assert sorted(stored) == [f"c{i}" for i in range(7)]
    assert stored["c1"]["location_id"] == "tokyo" and stored["c1"]["user_id"] == "u1"
    # Event times come back in the location's own offset.
    instant = datetime(2026, 1, 15, tzinfo=UTC)
    for checkin, hours in (("c1", 9), ("c2", -5)):
        local = datetime.fromisoformat(stored[checkin]["checked_in_at"])
        assert local == instant and local.utcoffset() == timedelta(hours=hours)
    assert stored["c2"]["extra"] == checkins[2]["extra"]


def test_a_bad_line_fails_only_its_own_batch(cli_url: str, api: Api, tmp_path: Path) -> None:
    refs = seed_places(api)
    lines: list[dict[str, Any] | str] = [record("checkins", f"c{n}", refs) for n in range(1, 9)]
    lines[4] = record("checkins", "c5", refs, checked_in_at="yesterday")
    path = write_ndjson(tmp_path / "checkins.ndjson", lines)

    result = run_import(api, cli_url, "checkins", path, "--batch-size", "3")

    assert result.returncode == 1
    assert [line for line, _ in failures(result.stderr)] == [5]
    assert "checked_in_at" in failures(result.stderr)[0][1]
    assert summary(result.stderr) == counts(lines=8, created=5, failed_batches=1)
    assert ids(api, "checkins") == ["c1", "c2", "c3", "c7", "c8"]


def test_default_batches_hold_10000_lines(cli_url: str, api: Api, tmp_path: Path) -> None:
    lines: list[dict[str, Any] | str] = [
        {"id": f"l{n}", "name": "x", "timezone": "UTC"} for n in range(1, 10_003)
    ]
    lines[10_000] = {"id": "l10001", "name": "x", "timezone": "Mars/Olympus_Mons"}
    path = write_ndjson(tmp_path / "locations.ndjson", lines)

    result = run_import(api, cli_url, "locations", path)

    assert result.returncode == 1
    assert [line for line, _ in failures(result.stderr)] == [10_001]
    assert summary(result.stderr) == counts(lines=10_002, created=10_000, failed_batches=1)
    assert len(ids(api, "locations")) == 10_000
    for too_big in ("0", "10001"):
        rejected = run_import(api, cli_url, "locations", path, "--batch-size", too_big)
        assert rejected.returncode == 2 and "--batch-size" in rejected.stderr


def test_missing_references_are_reported_by_line(cli_url: str, api: Api, tmp_path: Path) -> None:
    refs = seed_places(api)
    path = write_ndjson(
        tmp_path / "checkins.ndjson",
        [
            record("checkins", "c1", refs),
            record("checkins", "c2", {**refs, "users": "ghost"}),
            record("checkins", "c3", refs),
            record("checkins", "c4", {**refs, "locations": "nowhere"}),
        ],
    )

    result = run_import(api, cli_url, "checkins", path)

    assert result.returncode == 1
    reported = failures(result.stderr)
    assert [line for line, _ in reported] == [2, 4]
    assert "'ghost'" in reported[0][1] and "'nowhere'" in reported[1][1]
    assert summary(result.stderr) == counts(lines=4, failed_batches=1)
    assert ids(api, "checkins") == []


def test_blank_lines_are_skipped_and_lines_keep_their_numbers(
    cli_url: str, api: Api, tmp_path: Path
) -> None:
    a, b, c = (json.dumps(record("locations", name)) for name in "abc")
    path = tmp_path / "locations.ndjson"
    # A byte-order mark, blank and whitespace-only lines, CRLF endings, no final newline.
    path.write_bytes(f"\ufeff{a}\n\n   \n{b}\r\n\t\r\n{c}".encode())

    result = run_import(api, cli_url, "locations", path)

    assert result.returncode == 0, result.stderr
    assert summary(result.stderr) == counts(lines=3, created=3)
    assert ids(api, "locations") == ["a", "b", "c"]

    broken = write_ndjson(tmp_path / "broken.ndjson", [record("locations", "d"), "", "  ", "{"])
    result = run_import(api, cli_url, "locations", broken)
    assert result.returncode == 1
    assert [line for line, _ in failures(result.stderr)] == [4]


def test_invalid_json_lines_are_reported_by_number(cli_url: str, api: Api, tmp_path: Path) -> None:
    path = write_ndjson(
        tmp_path / "locations.ndjson",
        [record("locations", "a"), '{"id": "b", "name": ', record("locations", "c"), "[1, 2]"],
    )

    result = run_import(api, cli_url, "locations", path)

    assert result.returncode == 1
    reported = failures(result.stderr)
    assert [line for line, _ in reported] == [2, 4]
    assert "not valid JSON" in reported[0][1]
    assert summary(result.stderr) == counts(lines=4, failed_batches=1)
    assert ids(api, "locations") == []


def test_tombstone_lines_delete(cli_url: str, api: Api, tmp_path: Path) -> None:
    """Deleting an id never sent is a no-op; a bad line fails its batch only."""
    write_ndjson(tmp_path / "live.ndjson", [record("locations", name) for name in "abc"])
    assert run_import(api, cli_url, "locations", tmp_path / "live.ndjson").returncode == 0
    path = write_ndjson(
        tmp_path / "deletes.ndjson",
        [
            {"id": "b", "deleted": True},
            {"id": "never-sent", "deleted": True},
            # Error details quote the file's data; markup-like text must not break the output.
            record("locations", "d", timezone="[/x] never"),
        ],
    )

    result = run_import(api, cli_url, "locations", path, "--batch-size", "1")

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    [(line, detail)] = failures(result.stderr)
    assert line == 3 and detail.startswith("'[/x] never' is not an IANA time zone")
    assert summary(result.stderr) == counts(lines=3, deleted=1, unchanged=1, failed_batches=1)
    assert ids(api, "locations") == ["a", "c"]
    assert api.get("/v1/locations/b").status_code == 404
    (tombstone,) = api.get("/v1/locations", params={"ids": "b"}).json()["data"]
    assert tombstone["id"] == "b" and tombstone["deleted"] is True


def test_reimporting_the_same_file_changes_nothing(cli_url: str, api: Api, tmp_path: Path) -> None:
    path = write_ndjson(
        tmp_path / "locations.ndjson", [record("locations", f"l{i}") for i in range(5)]
    )
    assert run_import(api, cli_url, "locations", path).returncode == 0
    before = api.read_all("/v1/locations")

    again = run_import(api, cli_url, "locations", path, "--batch-size", "2")

    assert again.returncode == 0, again.stderr
    assert summary(again.stderr) == counts(lines=5, unchanged=5)
    assert api.read_all("/v1/locations") == before
    changed = write_ndjson(
        tmp_path / "changed.ndjson",
        [
            record("locations", f"l{i}", name="Renamed" if i == 3 else f"name of l{i}")
            for i in range(5)
        ],
    )
    result = run_import(api, cli_url, "locations", changed)
    assert summary(result.stderr) == counts(lines=5, updated=1, unchanged=4)


def test_unknown_resource_or_business_fails_clearly(cli_url: str, api: Api, tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "locations.ndjson", [record("locations", "a")])

    unknown_resource = run_import(api, cli_url, "gyms", path)
    assert_clean_error(unknown_resource, "Unknown resource 'gyms'", "checkins", "locations")
    unknown_business = clubfeed(
        cli_url, "import", "locations", str(path), "--business", "987654321", cwd=tmp_path
    )
    assert_clean_error(unknown_business, "no business 987654321", "`clubfeed business create`")
    missing_file = run_import(api, cli_url, "locations", tmp_path / "nope.ndjson")
    assert missing_file.returncode == 2 and "does not exist" in missing_file.stderr
    assert ids(api, "locations") == []


# integrator set-oauth


def _token_error(http: httpx.Client, client_id: str, client_secret: str) -> tuple[int, str]:
    """Exchange a code nobody issued: 400 invalid_grant once the client authenticated,
    401 invalid_client if its credentials are wrong."""
    response = http.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": "never-issued",
            "redirect_uri": "https://loyalty.example/callback",
            "code_verifier": "v" * 43,
        },
        auth=(client_id, client_secret),
    )
    return response.status_code, response.json()["error"]


def _redirect_uris(engine: Engine, integrator_id: int) -> list[str]:
    with engine.connect() as conn:
        stored: str = conn.execute(
            select(integrators.c.redirect_uris).where(integrators.c.id == integrator_id)
        ).scalar_one()
    uris: list[str] = json.loads(stored)
    return uris


def _set_oauth(
    cli_url: str, integrator_id: int, *args: str, cwd: Path
) -> subprocess.CompletedProcess[str]:
    return clubfeed(cli_url, "integrator", "set-oauth", str(integrator_id), *args, cwd=cwd)


def test_set_oauth_issues_a_new_client_secret_and_the_old_one_stops(
    cli_url: str, http: httpx.Client, engine: Engine, tmp_path: Path
) -> None:
    created = NewIntegrator(
        **one_json_line(
            clubfeed(cli_url, "integrator", "create", "Late OAuth", "--json", cwd=tmp_path)
        )
    )
    assert _token_error(http, created.client_id, created.client_secret) == (400, "invalid_grant")
    uris = ["https://loyalty.example/callback", "http://127.0.0.1:8765/cb"]

    data = one_json_line(
        _set_oauth(
            cli_url,
            created.id,
            "--redirect-uri",
            uris[0],
            "--redirect-uri",
            uris[1],
            "--json",
            cwd=tmp_path,
        )
    )

    assert set(data) == {"id", "client_id", "client_secret", "redirect_uris"}
    assert (data["id"], data["client_id"], data["redirect_uris"]) == (
        created.id,
        created.client_id,
        uris,
    )
    assert data["client_secret"].startswith("cfcs_")
    assert _token_error(http, created.client_id, data["client_secret"]) == (400, "invalid_grant")
    assert _token_error(http, created.client_id, created.client_secret) == (401, "invalid_client")
    assert _redirect_uris(engine, created.id) == uris

    # Without --json: readable lines, and the URIs are replaced, not added to.
    again = _set_oauth(cli_url, created.id, "--redirect-uri", uris[1], cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    found = re.search(r"^  OAuth client_secret: +(cfcs_[A-Za-z0-9_-]{43})$", again.stdout, re.M)
    assert found is not None, again.stdout
    assert f"OAuth client_id:     {created.client_id}" in again.stdout
    assert _token_error(http, created.client_id, found[1]) == (400, "invalid_grant")
    assert _token_error(http, created.client_id, data["client_secret"]) == (401, "invalid_client")
    assert _redirect_uris(engine, created.id) == [uris[1]]


def test_set_oauth_gives_an_integrator_from_before_oauth_a_client_id(
    cli_url: str, api: Api, engine: Engine, tmp_path: Path
) -> None:
    integrator = api.tenant.integrator
    with engine.begin() as conn:  # as registered before the OAuth migration
        conn.execute(
            update(integrators)
            .where(integrators.c.id == integrator.id)
            .values(client_id=None, client_secret_hash=None, redirect_uris="[]")
        )

    data = one_json_line(
        _set_oauth(
            cli_url,
            integrator.id,
            "--redirect-uri",
            "https://loyalty.example/callback",
            "--json",
            cwd=tmp_path,
        )
    )

    assert data["client_id"].startswith("cfid_") and data["client_id"] != integrator.client_id
    assert _token_error(api.client, data["client_id"], data["client_secret"]) == (
        400,
        "invalid_grant",
    )
    # The integrator key is another credential and keeps working.
    assert api.get("/v1/locations").status_code == 200


def test_set_oauth_refuses_a_bad_uri_or_an_unknown_integrator_and_changes_nothing(
    cli_url: str, http: httpx.Client, engine: Engine, tmp_path: Path
) -> None:
    created = NewIntegrator(
        **one_json_line(
            clubfeed(
                cli_url,
                "integrator",
                "create",
                "Careful",
                "--redirect-uri",
                "https://careful.example/cb",
                "--json",
                cwd=tmp_path,
            )
        )
    )

    for uri, reason in [
        ("http://loyalty.example/cb", "must use https"),
        ("https://loyalty.example/cb#top", "has a fragment"),
        ("/cb", "is not an absolute URL"),
    ]:
        bad = _set_oauth(
            cli_url,
            created.id,
            "--redirect-uri",
            "https://ok.example/cb",
            "--redirect-uri",
            uri,
            cwd=tmp_path,
        )
        assert_clean_error(bad, reason)
        assert bad.returncode == 1 and bad.stdout == ""
    unknown = _set_oauth(
        cli_url, 987654321, "--redirect-uri", "https://ok.example/cb", cwd=tmp_path
    )
    assert_clean_error(unknown, "no integrator 987654321")
    assert unknown.returncode == 1 and unknown.stdout == ""
    no_uri = _set_oauth(cli_url, created.id, cwd=tmp_path)
    assert no_uri.returncode == 2 and "Missing option '--redirect-uri'" in no_uri.stderr

    assert _token_error(http, created.client_id, created.client_secret) == (400, "invalid_grant")
    assert _redirect_uris(engine, created.id) == ["https://careful.example/cb"]


# db purge: API activity and console sessions (tombstones and keys: test_retention.py)


def _activity_times(engine: Engine, business_id: int) -> list[int]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(api_activity.c.at_us)
                .where(api_activity.c.business_id == business_id)
                .order_by(api_activity.c.id)
            ).scalars()
        )


def _wait_for_activity(engine: Engine, business_id: int, count: int) -> None:
    """The server writes its buffered activity every second."""
    deadline = time.monotonic() + 30
    while len(_activity_times(engine, business_id)) < count:
        assert time.monotonic() < deadline, "the server recorded no activity"
        time.sleep(0.1)


def _purge_row(stderr: str, business_id: int) -> list[str]:
    """The purge table's row of this business: tombstones, idempotency keys, API activity."""
    for line in stderr.splitlines():
        cells = _cells(line)
        if cells and cells[0] == str(business_id):
            return cells[1:]
    raise AssertionError(f"no row for business {business_id} in:\n{stderr}")


def test_purge_deletes_api_activity_older_than_the_given_days(
    cli_url: str, api: Api, engine: Engine, tmp_path: Path
) -> None:
    other = Api(api.client, new_tenant(engine))
    for reader in (api, other):
        for _ in range(3):
            assert reader.get("/v1/locations").status_code == 200
        _wait_for_activity(engine, reader.tenant.business.id, 3)
        with engine.begin() as conn:  # two of each business's three reads ten days ago
            oldest = (
                select(api_activity.c.id)
                .where(api_activity.c.business_id == reader.tenant.business.id)
                .order_by(api_activity.c.id)
                .limit(2)
                .scalar_subquery()
            )
            conn.execute(
                update(api_activity)
                .where(api_activity.c.id.in_(oldest))
                .values(at_us=api_activity.c.at_us - 10 * DAY_US)
            )
    business = api.tenant.business.id

    def purge(*options: str) -> subprocess.CompletedProcess[str]:
        done = clubfeed(cli_url, "db", "purge", "--business", str(business), *options, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        return done

    kept = purge("--activity-older-than", "11")
    assert _purge_row(kept.stderr, business) == ["0", "0", "0"]
    assert len(_activity_times(engine, business)) == 3

    purged = purge("--activity-older-than", "9")
    assert _purge_row(purged.stderr, business) == ["0", "0", "2"]
    assert len(_activity_times(engine, business)) == 1
    assert len(_activity_times(engine, other.tenant.business.id)) == 3  # not this business
    # A business's purge leaves alone what is purged for all at once.
    assert "sessions" not in purged.stderr and "OAuth" not in purged.stderr

    assert _purge_row(purge().stderr, business) == ["0", "0", "0"]  # kept 90 days by default
    assert _purge_row(purge("--activity-older-than", "0").stderr, business) == ["0", "0", "1"]
    assert _activity_times(engine, business) == []


def test_purge_deletes_expired_console_sessions_but_not_for_one_business(
    cli_url: str, api: Api, engine: Engine, tmp_path: Path
) -> None:
    with engine.begin() as conn:
        admin = admins.create(
            conn,
            hasher(Settings(password_time_cost=1, password_memory_kib=32)),
            business_id=api.tenant.business.id,
            email=f"purge-{uuid.uuid4().hex[:10]}@gym.example",
            password="a long enough passphrase",
        )
        expired = sessions.start(conn, admin, ttl_s=0)
        live = sessions.start(conn, admin, ttl_s=3600)

    def stored(token: str) -> bool:
        with engine.connect() as conn:
            found = select(admin_sessions.c.token_hash).where(
                admin_sessions.c.token_hash == token_hash(token)
            )
            return conn.execute(found).first() is not None

    one = clubfeed(cli_url, "db", "purge", "--business", str(api.tenant.business.id), cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    assert stored(expired)

    everyone = clubfeed(cli_url, "db", "purge", cwd=tmp_path)

    assert everyone.returncode == 0, everyone.stderr
    found = re.search(r"^Expired console sessions deleted: (\d+)$", everyone.stderr, re.M)
    assert found is not None and int(found[1]) >= 1, everyone.stderr
    assert not stored(expired)
    assert stored(live)
    with engine.connect() as conn:
        assert sessions.find(conn, live) is not None


# serve


def test_serve_answers_http_until_terminated(cli_url: str, tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLUBFEED_")}
    env["CLUBFEED_DATABASE_URL"] = cli_url
    log = tmp_path / "serve.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [str(CLUBFEED), "serve", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text()
            try:
                health = httpx.get(f"{base}/healthz", timeout=2)
                if health.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert health.json() == {"status": "ok"}
        schema = httpx.get(f"{base}/openapi.json", timeout=10).json()
        assert schema["openapi"].startswith("3.")
        assert "/v1/checkins" in schema["paths"]
    finally:
        process.terminate()
        returncode = process.wait(timeout=20)
    served = log.read_text()
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells of it.
    assert returncode in (0, -signal.SIGTERM), served
    assert "Application shutdown complete" in served and "Traceback" not in served
    assert f"on http://127.0.0.1:{port}" in served


# help


def _subcommands(help_text: str) -> list[str]:
    """Names listed under `Commands:` in click's help."""
    section = help_text.partition("\nCommands:\n")[2]
    return re.findall(r"^  (\S+)", section, re.M)


def test_help_describes_exactly_the_commands_that_exist(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'never-created.db'}"
    texts: dict[tuple[str, ...], str] = {}
    pending: list[tuple[str, ...]] = [()]
    while pending:
        path = pending.pop()
        result = clubfeed(url, *path, "--help", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"Usage: clubfeed {' '.join(path)}".rstrip())
        texts[path] = result.stdout
        pending += [(*path, name) for name in _subcommands(result.stdout)]

    assert {
        ("serve",),
        ("db", "upgrade"),
        ("business", "create"),
        ("business", "rotate-secret"),
        ("business", "list"),
        ("integrator", "create"),
        ("integrator", "set-oauth"),
        ("db", "purge"),
        ("import",),
    } <= set(texts)
    # Every `clubfeed …` a help text points to is a command that exists.
    for text_ in texts.values():
        for mention in re.findall(r"`clubfeed ([a-z -]+?)`", text_):
            assert tuple(mention.split()) in texts, mention
    assert "--batch-size" in texts[("import",)] and "--business" in texts[("import",)]
    assert "--json" in texts[("business", "create")] and "--json" in texts[("integrator", "create")]
    assert "--port" in texts[("serve",)]
    assert "--activity-older-than" in texts[("db", "purge")]
    purge_help = " ".join(texts[("db", "purge")].split())
    assert "sessions are then left alone" in purge_help  # what --business skips
    assert "--redirect-uri URI" in texts[("integrator", "set-oauth")]
    assert "set-oauth" in texts[("integrator", "create")]
    assert list(tmp_path.iterdir()) == []
