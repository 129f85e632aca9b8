"""One conformance run: what the checks share, and the records it writes and removes.

With an ingest key the run writes records of its own, every id starting with its prefix
(`cf-conform-<hex>-`): for the checks that read them, a location in Asia/Kathmandu
(+05:45, an offset no server gets right by accident), 10,051 users (more than a page of
10,000, one with a name that is not ASCII) and a check-in at that location; and the users
the writing checks create. It deletes all of them at the end, also after a failure, so
point it at a test business: their tombstones stay in the feed until the server purges
them. An id is remembered before its write is sent, since a write that timed out may
still have been saved (deleting an id never written is a no-op).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from clubfeed.conform.probe import Failed, Probe

USERS = 10_050  # and the named one: 10,051
UTF8_NAME = "Zoë Łódź 東京 💪"
ZONE = "Asia/Kathmandu"
EVENT_UTC = "2026-06-01T12:00:00Z"
_BATCH = 10_000


@dataclass
class Run:
    """What the checks share: the probe, the resources, and what earlier checks read."""

    probe: Probe
    resources: list[str]
    seconds: float = 10.0
    prefix: str = field(default_factory=lambda: f"cf-conform-{secrets.token_hex(3)}-")
    live: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    tombstones: list[dict[str, Any]] = field(default_factory=list)
    stamps: list[str] = field(default_factory=list)  # every consistent_until served
    written: dict[str, set[str]] = field(default_factory=dict)  # ids to delete at the end
    seeded: bool = False  # the location, users and check-in of `set_up` are written

    @property
    def writes(self) -> bool:
        return self.probe.ingest_key is not None

    @property
    def location(self) -> str:
        return f"{self.prefix}loc"

    def user(self, number: int) -> str:
        return f"{self.prefix}u{number:05}"

    @property
    def named(self) -> str:
        """A user whose name is not ASCII."""
        return f"{self.prefix}named"

    @property
    def checkin(self) -> str:
        return f"{self.prefix}c1"

    def live_records(self, resource: str) -> dict[str, dict[str, Any]]:
        """The records a complete transfer of `resource` held (read it first if no check has)."""
        if resource not in self.live:
            records, until = self.probe.query(resource)
            self.stamps.append(until)
            self.live[resource] = {r["id"]: r for r in records}
        return self.live[resource]

    def write(
        self,
        resource: str,
        upsert: list[dict[str, Any]] | None = None,
        delete: list[str] | None = None,
    ) -> dict[str, Any]:
        """An ingest batch, its ids remembered (before it is sent) to delete at the end."""
        self.remember(resource, [r["id"] for r in upsert or []])
        answer = self.probe.write(resource, upsert, delete)
        self.written[resource].difference_update(delete or [])
        return answer

    def remember(self, resource: str, ids: list[str]) -> None:
        """Ids that may get written, to delete at the end."""
        self.written.setdefault(resource, set()).update(ids)

    def set_up(self) -> None:
        """Write the records the reading checks look for (with an ingest key)."""
        self.write("locations", [{"id": self.location, "name": "Conformance", "timezone": ZONE}])
        users = [self.user_record(n) for n in range(USERS)]
        users.append(self.user_record(self.named) | {"first_name": UTF8_NAME})
        for start in range(0, len(users), _BATCH):
            self.write("users", users[start : start + _BATCH])
        checkin = {
            "id": self.checkin,
            "checked_in_at": EVENT_UTC,
            "location_id": self.location,
            "user_id": self.user(0),
        }
        self.write("checkins", [checkin])
        self.seeded = True

    def user_record(self, number: int | str, last_name: str = "Conform") -> dict[str, Any]:
        record_id = self.user(number) if isinstance(number, int) else number
        return {"id": record_id, "first_name": "Conform", "last_name": last_name, "is_child": False}

    def clean_up(self) -> list[str]:
        """Delete every record the run wrote, those that refer to others first, going on
        past a failure; what could not be deleted."""
        first = ("checkins", "users", "locations")
        left: list[str] = []
        for resource in sorted(self.written, key=lambda r: first.index(r) if r in first else -1):
            ids = sorted(self.written[resource])
            for start in range(0, len(ids), _BATCH):
                chunk = ids[start : start + _BATCH]
                try:
                    self.probe.write(resource, delete=chunk)
                except Failed as exc:
                    left.append(f"{len(chunk):,} {resource} ({chunk[0]}, …): {exc}")
                else:
                    self.written[resource].difference_update(chunk)
        return left


@dataclass(frozen=True)
class Check:
    """A requirement, and the function that tests a server for it: it returns the
    evidence of a pass, or raises Failed or Skipped with the evidence."""

    id: str
    requirement: str
    test: Callable[[Run], str]
    reads_seed: bool = False  # looks for the records `Run.set_up` writes, when it can
