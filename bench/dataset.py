"""A seeded chain of gyms, as request bodies for the ingest API.

Every business has the same three locations (New York, Bengaluru, London: a
negative, a half-hour and a DST-switching offset), its users with one membership
each, and check-ins spread evenly over a year in time order, as a POS would send
them. Check-in batches of all businesses are merged by time, so the tables and
their indexes hold other tenants' rows in between the measured business's.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import msgspec

BATCH = 10_000
YEAR_START = datetime(2025, 1, 1, tzinfo=UTC)
YEAR = timedelta(days=365)
CHANNELS = ("desk", "app", "kiosk", "door")
FIRST_NAMES = ("Ana", "Ben", "Chloé", "Dev", "Emma", "Farid", "Grace", "Hiro", "Ines", "Jon")
LAST_NAMES = ("Silva", "Okafor", "Müller", "Patel", "Smith", "Kowalski", "Nguyen", "Rossi")

LOCATIONS = (
    ("loc-nyc", "Midtown", "New York", "NY", "US", "America/New_York"),
    ("loc-blr", "Indiranagar", "Bengaluru", "KA", "IN", "Asia/Kolkata"),
    ("loc-lon", "Shoreditch", "London", None, "GB", "Europe/London"),
)


class Location(msgspec.Struct):
    id: str
    name: str
    city: str
    state: str | None
    country: str
    timezone: str


class User(msgspec.Struct):
    id: str
    first_name: str
    last_name: str
    email: str
    home_location_id: str


class Membership(msgspec.Struct):
    id: str
    user_id: str
    membership_type: str
    status: str
    join_date: str
    home_location_id: str


class Checkin(msgspec.Struct):
    id: str
    checked_in_at: datetime
    location_id: str
    membership_id: str | None
    user_id: str
    extra: dict[str, str]


_encoder = msgspec.json.Encoder()


def encode_batch(upsert: list[msgspec.Struct]) -> bytes:
    """The body of POST /v1/<resource>/batch."""
    return _encoder.encode({"upsert": upsert, "delete": []})


@dataclass(frozen=True)
class Tenant:
    """One business's share of the data set."""

    name: str
    users: int
    checkins: int
    seed: int


@dataclass(frozen=True)
class Batch:
    """One ingest request, ready to send."""

    tenant: str
    resource: str
    records: int
    body: bytes


def tenants(rows: int, seed: int) -> tuple[Tenant, ...]:
    """The measured business with `rows` check-ins, and two neighbours with a tenth each."""
    return (
        Tenant("Measured Gym", 2_000, rows, seed),
        Tenant("Neighbour Gym A", 500, rows // 10, seed + 1),
        Tenant("Neighbour Gym B", 500, rows // 10, seed + 2),
    )


def _chunks(items: list[msgspec.Struct], resource: str, tenant: str) -> Iterator[Batch]:
    for start in range(0, len(items), BATCH):
        part = items[start : start + BATCH]
        yield Batch(tenant, resource, len(part), encode_batch(part))


def reference_batches(tenant: Tenant) -> Iterator[Batch]:
    """Locations, users and memberships: what check-ins refer to, written first."""
    rng = random.Random(tenant.seed)
    locations = [Location(*fields) for fields in LOCATIONS]
    users = []
    memberships = []
    for n in range(1, tenant.users + 1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        home = rng.choice(LOCATIONS)[0]
        users.append(User(f"u-{n:05d}", first, last, f"member{n}@example.com", home))
        joined = YEAR_START - timedelta(days=rng.randrange(1, 1_500))
        memberships.append(
            Membership(
                f"m-{n:05d}",
                f"u-{n:05d}",
                rng.choice(("monthly", "annual", "class-pack")),
                "active",
                joined.date().isoformat(),
                home,
            )
        )
    yield from _chunks(list(locations), "locations", tenant.name)
    yield from _chunks(list(users), "users", tenant.name)
    yield from _chunks(list(memberships), "memberships", tenant.name)


def _checkin_batches(tenant: Tenant) -> Iterator[tuple[datetime, Batch]]:
    """(time of the batch's first check-in, batch), in time order."""
    rng = random.Random(tenant.seed * 7919)
    homes = [rng.choice(LOCATIONS)[0] for _ in range(tenant.users)]
    step = YEAR / max(tenant.checkins, 1)
    location_ids = [loc[0] for loc in LOCATIONS]
    for start in range(0, tenant.checkins, BATCH):
        part: list[msgspec.Struct] = []
        for n in range(start, min(start + BATCH, tenant.checkins)):
            user = rng.randrange(tenant.users)
            at = YEAR_START + step * n + step * rng.random()
            part.append(
                Checkin(
                    f"c-{n + 1:07d}",
                    at,
                    homes[user] if rng.random() < 0.8 else rng.choice(location_ids),
                    f"m-{user + 1:05d}" if rng.random() < 0.85 else None,
                    f"u-{user + 1:05d}",
                    {"channel": rng.choice(CHANNELS)},
                )
            )
        first = YEAR_START + step * start
        yield first, Batch(tenant.name, "checkins", len(part), encode_batch(part))


def checkin_batches(all_tenants: tuple[Tenant, ...]) -> Iterator[Batch]:
    """Every tenant's check-in batches merged by time; bodies are built as they are sent."""
    streams = [_checkin_batches(t) for t in all_tenants]
    for _, batch in heapq.merge(*streams, key=lambda item: item[0]):
        yield batch


def checkin_batch_count(all_tenants: tuple[Tenant, ...]) -> int:
    return sum(-(-t.checkins // BATCH) for t in all_tenants)
