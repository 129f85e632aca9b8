"""Plain factory functions: tenants, valid records of any resource, and an HTTP helper."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import Engine, MetaData, select

from clubfeed import catalogue, tenants
from clubfeed.auth import credentials
from clubfeed.catalogue import Kind, Resource
from clubfeed.storage.engine import write_transaction

BASE_TIME = datetime(2026, 3, 14, 15, 9, 26, 535897, tzinfo=UTC)

# Resources in an order where every reference points to one written earlier.
WRITE_ORDER = (
    "locations",
    "users",
    "memberships",
    "checkins",
    "referrals",
    "sales-categories",
    "sales-subcategories",
    "sales",
    "classes",
    "class-attendances",
    "appointment-categories",
    "appointments",
)


@dataclass(frozen=True)
class Tenant:
    business: credentials.NewBusiness
    integrator: credentials.NewIntegrator

    @property
    def read_headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.business.shared_secret}",
            "X-Integrator-Key": self.integrator.key,
        }

    @property
    def write_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.business.ingest_key}"}


def new_business(engine: Engine, name: str = "Test Gym") -> credentials.NewBusiness:
    with write_transaction(engine) as conn:
        return tenants.create_business(conn, name)


def new_integrator(engine: Engine, name: str = "Test Loyalty") -> credentials.NewIntegrator:
    with write_transaction(engine) as conn:
        return credentials.create_integrator(conn, name)


def new_tenant(engine: Engine) -> Tenant:
    return Tenant(new_business(engine), new_integrator(engine))


def record(
    resource_name: str, record_id: str, refs: dict[str, str] | None = None, **overrides: Any
) -> dict[str, Any]:
    """A valid record of any resource; `refs` maps a referenced resource to the id to use."""
    resource: Resource = catalogue.get(resource_name)
    refs = refs or {}
    body: dict[str, Any] = {"id": record_id}
    for field in resource.fields:
        if field.kind is Kind.REF:
            assert field.ref is not None
            if field.ref in refs and field.ref != resource_name:
                body[field.name] = refs[field.ref]
            elif not field.nullable:
                raise ValueError(f"{resource_name}.{field.name} needs refs[{field.ref!r}]")
        elif field.kind is Kind.TEXT:
            body[field.name] = f"{field.name} of {record_id}"
        elif field.kind is Kind.TIMEZONE:
            body[field.name] = "America/New_York"
        elif field.kind is Kind.DATE:
            body[field.name] = "2025-01-31"
        elif field.kind is Kind.DATETIME:
            body[field.name] = (BASE_TIME + timedelta(minutes=len(record_id))).isoformat()
        elif field.kind is Kind.BOOL:
            body[field.name] = True
        elif field.kind is Kind.DECIMAL:
            body[field.name] = "19.99"
    body["extra"] = {"source": "factory", "note": "ünïcødé ✓"}
    body.update(overrides)
    return body


class Api:
    """A tenant's view of the running server: reads with the read credentials, writes with the ingest key."""

    def __init__(self, client: httpx.Client, tenant: Tenant) -> None:
        self.client = client
        self.tenant = tenant

    def put(self, resource: str, record_id: str, body: dict[str, Any], **kw: Any) -> httpx.Response:
        return self.client.put(
            f"/v1/{resource}/{record_id}", json=body, headers=self.tenant.write_headers, **kw
        )

    def delete(self, resource: str, record_id: str, **kw: Any) -> httpx.Response:
        return self.client.delete(
            f"/v1/{resource}/{record_id}", headers=self.tenant.write_headers, **kw
        )

    def batch(
        self,
        resource: str,
        upsert: list[dict[str, Any]] | None = None,
        delete: list[str] | None = None,
        **kw: Any,
    ) -> httpx.Response:
        payload = {"upsert": upsert or [], "delete": delete or []}
        return self.client.post(
            f"/v1/{resource}/batch", json=payload, headers=self.tenant.write_headers, **kw
        )

    def get(self, path: str, headers: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
        """GET with the read credentials, and any other `headers` given."""
        return self.client.get(path, headers={**self.tenant.read_headers, **(headers or {})}, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.post(path, headers=self.tenant.read_headers, **kw)

    def seed(self) -> dict[str, str]:
        """One valid record of every resource; returns resource → id for use as refs."""
        refs: dict[str, str] = {}
        for name in WRITE_ORDER:
            record_id = f"{name[:3]}-1"
            response = self.put(name, record_id, record(name, record_id, refs))
            assert response.status_code == 201, response.text
            refs[name] = record_id
        return refs

    def read_all(self, path: str, **params: Any) -> list[dict[str, Any]]:
        """Follow a list's pages to the end; every record of every page, in order."""
        records: list[dict[str, Any]] = []
        response = self.get(path, params=params)
        while True:
            assert response.status_code == 200, response.text
            page = response.json()
            records += page["data"]
            if page["next_cursor"] is None:
                return records
            response = self.get(path, params={**params, "cursor": page["next_cursor"]})


def database_dump(engine: Engine) -> tuple[str, set[str]]:
    """Every value of every table as text (bytes as hex and as Latin-1), and the table names.

    What an attacker with a copy of the database would see: a secret found here leaked.
    """
    metadata = MetaData()
    metadata.reflect(engine)
    dump: list[str] = []
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        raw = bytes(value)
                        dump += [raw.hex(), raw.decode("latin-1")]
                    else:
                        dump.append(str(value))
    return "\n".join(dump), set(metadata.tables)


def seed_checkins(api: Api, checkins: int) -> None:
    """A location L1 (Chicago), users U1 and U2, and check-ins C000… of U1 at L1."""
    locations = api.batch("locations", [record("locations", "L1", timezone="America/Chicago")])
    assert locations.status_code == 200, locations.text
    users = api.batch("users", [record("users", "U1"), record("users", "U2")])
    assert users.status_code == 200, users.text
    rows = [
        record("checkins", f"C{i:03}", {"locations": "L1", "users": "U1"}) for i in range(checkins)
    ]
    assert api.batch("checkins", rows).status_code == 200
