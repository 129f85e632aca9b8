"""Writing drafts from the source into clubfeed, through the same path as the ingest API.

Rows become records of their business (`Tenants`), references clubfeed lacks are
fetched from the source by key and written first (as Middle fetches unknown foreign
keys), and each business's rows are one validated `Batch` in one transaction with
their counts. A row that cannot be written is a recorded problem, never half-written:
a bad value waits for its row to change, a missing reference is retried each poll.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from clubfeed import catalogue, tenants
from clubfeed.catalogue import Resource
from clubfeed.errors import InvalidInput
from clubfeed.ingest.validate import validated
from clubfeed.ingest.write import apply_changes
from clubfeed.sources import convert, state
from clubfeed.sources.convert import BadValue, Draft
from clubfeed.sources.mapping import MappingFile, ResourceMapping, Tenancy
from clubfeed.storage.engine import read_connection, write_transaction
from clubfeed.storage.idlists import rows_by_id
from clubfeed.timefmt import zone

_MAX_FETCH_DEPTH = 4


class UnknownBusiness(Exception):
    """The mapping names a business clubfeed does not have."""


class Tenants:
    """Which business a row's tenant is, creating businesses for new tenants if asked."""

    def __init__(self, store: Engine, mapping: MappingFile, names: Callable[[], dict[str, str]]):
        self.store = store
        self.mapping = mapping
        self.tenancy: Tenancy = mapping.tenancy
        self._names = names
        self._known: dict[str, int] = {}
        with read_connection(store) as conn:
            wanted = (
                [self.tenancy.business_id]
                if self.tenancy.business_id is not None
                else list((self.tenancy.businesses or {}).values())
            )
            for business_id in wanted:
                if business_id is not None and not tenants.exists(conn, business_id):
                    raise UnknownBusiness(
                        f"the mapping names business {business_id}, which clubfeed does not "
                        "have; create it with `clubfeed business create`"
                    )
            self._known.update(state.tenant_businesses(conn, mapping.name))
        self._known.update({str(k): v for k, v in (self.tenancy.businesses or {}).items()})

    def business(self, tenant: str) -> int | None:
        """The business of `tenant` ("" for a source of one business), or None if none."""
        if self.tenancy.business_id is not None:
            return self.tenancy.business_id
        found = self._known.get(tenant)
        if found is not None or self.tenancy.name_query is None:
            return found
        name = self._names().get(tenant)
        if name is None:
            return None
        with write_transaction(self.store) as conn:
            made = tenants.create_business(conn, name)
            state.remember_tenant(conn, self.mapping.name, tenant, made.id)
        self._known[tenant] = made.id
        return made.id


@dataclass
class Written:
    """What one write of drafts did, summed over its businesses."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    problems: list[state.Problem] = field(default_factory=list)
    done: list[tuple[str, Any]] = field(default_factory=list)  # (tenant, key) written

    def add(self, other: Written) -> None:
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.deleted += other.deleted
        self.problems += other.problems
        self.done += other.done


Fetch = Callable[[ResourceMapping, Sequence[Any]], list[Draft]]


class Writer:
    """Writes drafts of the mapping's resources; `fetch` reads drafts by key from the source."""

    def __init__(self, store: Engine, mapping: MappingFile, tenancy: Tenants, fetch: Fetch):
        self.store = store
        self.mapping = mapping
        self.tenants = tenancy
        self.fetch = fetch

    def write(self, mapping: ResourceMapping, drafts: Sequence[Draft], depth: int = 0) -> Written:
        """Write the drafts, each business's in one transaction; problems are recorded."""
        out = Written()
        by_business: dict[int, list[Draft]] = defaultdict(list)
        for item in drafts:
            if item.problem is not None:
                out.problems.append(_problem(item, "value", item.problem))
                continue
            business_id = self.tenants.business(item.tenant)
            if business_id is None:
                detail = f"tenant {item.tenant!r} is not a business of this mapping"
                out.problems.append(state.Problem(item.tenant, item.key, "tenant", None, detail))
                continue
            by_business[business_id].append(item)
        for business_id, group in by_business.items():
            out.add(self._write_business(mapping, business_id, _last_per_id(group), depth))
        resource = mapping.resource.name
        if out.problems or out.done:
            with write_transaction(self.store) as conn:
                problem_keys = {(p.tenant, p.key) for p in out.problems}
                state.clear_problems(
                    conn,
                    self.mapping.name,
                    resource,
                    [k for k in out.done if k not in problem_keys],
                )
                state.record_problems(conn, self.mapping.name, resource, out.problems)
        return out

    def _write_business(
        self, mapping: ResourceMapping, business_id: int, drafts: list[Draft], depth: int
    ) -> Written:
        out = Written()
        resource = mapping.resource
        upserts = [d for d in drafts if not d.deleted]
        deletes = [d for d in drafts if d.deleted]
        upserts = self._with_references(mapping, business_id, upserts, out, depth)
        zones = self._zones(business_id, upserts) if mapping.naive_datetimes == "location" else {}
        records: list[tuple[Draft, Any]] = []
        for item in upserts:
            try:
                records.append((item, convert.record(mapping, item, zones)))
            except BadValue as exc:
                out.problems.append(_problem(item, "value", exc, business_id))
        records = _parents_first(resource, records)
        while records or deletes:
            try:
                batch = validated(
                    resource,
                    [r for _, r in records],
                    [d.record_id for d in deletes if d.record_id is not None],
                    limit=None,
                )
                with write_transaction(self.store) as conn:
                    changes = apply_changes(conn, business_id=business_id, batch=batch)
                    state.add_counts(
                        conn,
                        self.mapping.name,
                        resource.name,
                        business_id,
                        created=len(changes.created),
                        updated=len(changes.updated),
                        unchanged=len(changes.unchanged),
                        deleted=len(changes.deleted),
                    )
            except InvalidInput as exc:
                # Set the failing rows aside as problems and write the rest.
                failing: set[tuple[str, int]] = set()
                for error in exc.errors:
                    if error.place is None:
                        raise
                    failing.add((error.place.part, error.place.index))
                    part = records if error.place.part == "upsert" else None
                    item = (
                        part[error.place.index][0]
                        if part is not None
                        else deletes[error.place.index]
                    )
                    kind = "reference" if "write that record first" in error.detail else "value"
                    column = error.place.field
                    out.problems.append(
                        state.Problem(
                            item.tenant,
                            item.key,
                            kind,
                            column,
                            error.detail.rstrip("."),
                            business_id,
                        )
                    )
                records = [r for i, r in enumerate(records) if ("upsert", i) not in failing]
                deletes = [d for i, d in enumerate(deletes) if ("delete", i) not in failing]
                continue
            out.created += len(changes.created)
            out.updated += len(changes.updated)
            out.unchanged += len(changes.unchanged)
            out.deleted += len(changes.deleted)
            out.done += [(d.tenant, d.key) for d, _ in records] + [
                (d.tenant, d.key) for d in deletes
            ]
            break
        return out

    def _with_references(
        self,
        mapping: ResourceMapping,
        business_id: int,
        drafts: list[Draft],
        out: Written,
        depth: int,
    ) -> list[Draft]:
        """Fetch and write first what the drafts reference and clubfeed lacks; hold the rest."""
        resource = mapping.resource
        held: set[int] = set()
        own_ids = {d.record_id for d in drafts}
        for ref in resource.refs:
            assert ref.ref is not None
            target = catalogue.get(ref.ref)
            wanted: dict[str, Any] = {}
            for item in drafts:
                value = item.fields.get(ref.name)
                if value is not None and not (target is resource and value in own_ids):
                    wanted[value] = item.raw_refs.get(ref.name, value)
            missing = set(wanted) - self._live(target, business_id, list(wanted))
            target_mapping = self.mapping.for_resource(target.name)
            if missing and target_mapping is not None and depth < _MAX_FETCH_DEPTH:
                fetched = [
                    d
                    for d in self.fetch(target_mapping, [wanted[m] for m in sorted(missing)])
                    if self.tenants.business(d.tenant) == business_id
                ]
                if fetched:
                    self.write(target_mapping, fetched, depth + 1)
                    missing -= self._live(target, business_id, sorted(missing))
            for index, item in enumerate(drafts):
                value = item.fields.get(ref.name)
                if value in missing:
                    held.add(index)
                    detail = (
                        f"{ref.name} names {target.name} record {value!r}, which neither "
                        "clubfeed nor the source has yet; held, and tried again each poll"
                    )
                    out.problems.append(
                        state.Problem(
                            item.tenant, item.key, "reference", ref.name, detail, business_id
                        )
                    )
        return [d for i, d in enumerate(drafts) if i not in held]

    def _live(self, target: Resource, business_id: int, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        with read_connection(self.store) as conn:
            rows = rows_by_id(conn, target.table, "id", business_id, ids, "deleted_at IS NULL")
        return {row[0] for row in rows}

    def _zones(self, business_id: int, drafts: list[Draft]) -> dict[str, ZoneInfo]:
        locations = sorted(
            {d.fields["location_id"] for d in drafts if d.waiting and d.fields.get("location_id")}
        )
        if not locations:
            return {}
        with read_connection(self.store) as conn:
            rows = rows_by_id(
                conn, "locations", "id, timezone", business_id, locations, "deleted_at IS NULL"
            )
        return {location: zone(tz) for location, tz in rows}


def _problem(
    item: Draft, kind: str, exc: BadValue, business_id: int | None = None
) -> state.Problem:
    return state.Problem(item.tenant, item.key, kind, exc.column, exc.detail, business_id)


def _last_per_id(drafts: list[Draft]) -> list[Draft]:
    """One draft per record id, the last read (two source rows mapping to one id, re-read)."""
    last: dict[str | None, Draft] = {}
    for item in drafts:
        last.pop(item.record_id, None)
        last[item.record_id] = item
    return list(last.values())


def _parents_first(resource: Resource, records: list[tuple[Draft, Any]]) -> list[tuple[Draft, Any]]:
    """Order a batch so a record that references another of the same batch comes after it."""
    self_refs = [f.name for f in resource.refs if f.ref == resource.name]
    if not self_refs:
        return records
    ids = {item.record_id for item, _ in records}
    placed: set[str | None] = set()
    ordered: list[tuple[Draft, Any]] = []
    waiting = records
    while waiting:
        rest = []
        for item, record in waiting:
            parents = {getattr(record, name) for name in self_refs} & ids
            if parents - {item.record_id} <= placed:
                ordered.append((item, record))
                placed.add(item.record_id)
            else:
                rest.append((item, record))
        if len(rest) == len(waiting):  # a cycle: let the write name it
            ordered += rest
            break
        waiting = rest
    return ordered
