"""Writing drafts from the source into clubfeed, through the same path as the ingest API.

Rows become records of their business (`Tenants`), references clubfeed lacks are
fetched from the source by key and written first (as Middle fetches unknown foreign
keys), and each business's rows are one validated `Batch` in one transaction with
their counts. A row that cannot be written is a recorded problem, never half-written:
a bad value waits for its row to change, a missing reference is retried each poll.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from clubfeed import tenants
from clubfeed.catalogue import Kind, Resource
from clubfeed.errors import InvalidInput
from clubfeed.ingest.validate import validated
from clubfeed.ingest.write import Changes, apply_changes, prepare
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

    def __init__(
        self,
        store: Engine,
        mapping: MappingFile,
        names: Callable[[], dict[str, str]],
        *,
        refresh_s: float,
    ):
        self.store = store
        self.mapping = mapping
        self.tenancy: Tenancy = mapping.tenancy
        self._names = names
        self._refresh_s = refresh_s
        self._named: dict[str, str] = {}
        self._named_at = -math.inf
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

    def learn(self, businesses: dict[str, int]) -> None:
        """Take these tenants' businesses as known (a backfill worker, told by its runner)."""
        self._known.update(businesses)

    def business(self, tenant: str) -> int | None:
        """The business of `tenant` ("" for a source of one business), or None if none."""
        if self.tenancy.business_id is not None:
            return self.tenancy.business_id
        found = self._known.get(tenant)
        if found is not None or self.tenancy.name_query is None:
            return found
        if tenant not in self._named and time.monotonic() - self._named_at >= self._refresh_s:
            # A tenant not seen before: read the names again, at most once a poll interval.
            self._named = self._names()
            self._named_at = time.monotonic()
        name = self._named.get(tenant)
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
        # Per resource, the (tenant, key) rows with a recorded problem: a write clears
        # only those, so a page without problems costs no statement for them.
        self._troubled: dict[str, set[tuple[str, Any]]] = {}

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
        troubled = self._troubled_rows(mapping)
        now_troubled = {(p.tenant, p.key) for p in out.problems}
        solved = [k for k in out.done if k in troubled and k not in now_troubled]
        if out.problems or solved:
            with write_transaction(self.store) as conn:
                state.clear_problems(conn, self.mapping.name, mapping.resource.name, solved)
                state.record_problems(conn, self.mapping.name, mapping.resource.name, out.problems)
            troubled.difference_update(solved)
            troubled.update(now_troubled)
        return out

    def forget(self, mapping: ResourceMapping, rows: Collection[tuple[str, Any]]) -> None:
        """Drop the problems of these (tenant, key) rows, which the source no longer has."""
        with write_transaction(self.store) as conn:
            state.clear_problems(conn, self.mapping.name, mapping.resource.name, rows)
        self._troubled_rows(mapping).difference_update(rows)

    def delete(self, mapping: ResourceMapping, business_id: int, ids: Sequence[str]) -> int:
        """Turn these records of a business into tombstones (a reconcile's confirmed deletes)."""
        drafts = [Draft(i, None, "", i, True) for i in ids]
        return self._write_business(mapping, business_id, drafts, 0).deleted

    def reload_problems(self, mapping: ResourceMapping) -> None:
        """Read the resource's recorded problems again: other processes recorded some."""
        self._troubled.pop(mapping.resource.name, None)

    def _troubled_rows(self, mapping: ResourceMapping) -> set[tuple[str, Any]]:
        name = mapping.resource.name
        if name not in self._troubled:
            with read_connection(self.store) as conn:
                rows = state.problem_keys(conn, self.mapping.name, name, limit=None)
            self._troubled[name] = set(rows)
        return self._troubled[name]

    def _write_business(
        self, mapping: ResourceMapping, business_id: int, drafts: list[Draft], depth: int
    ) -> Written:
        """One business's drafts as one Batch. A reference clubfeed lacks fails the first
        attempt (the write's own reference check finds it): the referenced rows are fetched
        from the source, written, and the batch tried again; what is still missing is held."""
        out = Written()
        resource = mapping.resource
        deletes = [d for d in drafts if d.deleted]
        upserts = [d for d in drafts if not d.deleted]
        zones = self._zones(business_id, upserts, depth) if resource.has_local_times else {}
        records: list[tuple[Draft, Any]] = []
        for item in upserts:
            location = item.fields.get("location_id")
            if item.waiting and location not in zones:
                out.problems.append(_held(item, business_id, "location_id", "locations", location))
                continue
            try:
                records.append((item, convert.record(mapping, item, zones)))
            except BadValue as exc:
                out.problems.append(_problem(item, "value", exc, business_id))
        records = _parents_first(resource, records)
        fetched = depth >= _MAX_FETCH_DEPTH
        while records or deletes:
            try:
                changes = self._apply(mapping, business_id, records, deletes, zones)
            except InvalidInput as exc:
                failing = _failing(resource, exc)
                references = {
                    i: f.ref for (part, i), f in failing.items() if part == "upsert" and f.ref
                }
                if references and not fetched:
                    fetched = True
                    self._fetch_references(resource, business_id, records, references, depth)
                    continue
                for (part, index), failure in failing.items():
                    item = records[index][0] if part == "upsert" else deletes[index]
                    if failure.ref is not None:
                        target = str(resource.field_by_name[failure.ref].ref)
                        value = item.fields.get(failure.ref)
                        out.problems.append(_held(item, business_id, failure.ref, target, value))
                    else:
                        out.problems.append(
                            state.Problem(
                                item.tenant,
                                item.key,
                                "value",
                                failure.field,
                                failure.detail,
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

    def _apply(
        self,
        mapping: ResourceMapping,
        business_id: int,
        records: list[tuple[Draft, Any]],
        deletes: list[Draft],
        zones: dict[str, ZoneInfo],
    ) -> Changes:
        """The ingest path itself: a validated Batch, applied with its counts in one transaction.

        It is rendered before the transaction, in the zones read for it, so the business's
        write lock is held only for the write itself.
        """
        resource = mapping.resource
        batch = validated(
            resource, [r for _, r in records], [d.record_id or "" for d in deletes], limit=None
        )
        prepared = prepare(batch, zones)
        with write_transaction(self.store) as conn:
            changes = apply_changes(conn, business_id=business_id, batch=prepared)
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
        return changes

    def _fetch_references(
        self,
        resource: Resource,
        business_id: int,
        records: list[tuple[Draft, Any]],
        references: dict[int, str],
        depth: int,
    ) -> None:
        """Read the rows the failing references name from the source, and write them first."""
        wanted: dict[str, dict[str, Any]] = defaultdict(dict)
        for index, ref in references.items():
            item = records[index][0]
            target = resource.field_by_name[ref].ref
            assert target is not None
            wanted[target][item.fields[ref]] = item.raw_refs.get(ref, item.fields[ref])
        self._fetch(business_id, wanted, depth)

    def _fetch(self, business_id: int, wanted: dict[str, dict[str, Any]], depth: int) -> None:
        """Write the source's rows of each target resource named by these (id → raw key)."""
        for target, keys in wanted.items():
            target_mapping = self.mapping.for_resource(target)
            if target_mapping is None:
                continue
            fetched = [
                d
                for d in self.fetch(target_mapping, list(keys.values()))
                if self.tenants.business(d.tenant) == business_id
            ]
            if fetched:
                self.write(target_mapping, fetched, depth + 1)

    def _zones(self, business_id: int, drafts: list[Draft], depth: int) -> dict[str, ZoneInfo]:
        """The zones of the locations the drafts name, to render their local times in (and
        to read naive ones in); a location a naive time needs is fetched if clubfeed lacks it."""
        named = {d.fields["location_id"] for d in drafts if d.fields.get("location_id")}
        zones = self._read_zones(business_id, sorted(named))
        missing = {
            d.fields["location_id"]: d.raw_refs.get("location_id", d.fields["location_id"])
            for d in drafts
            if d.waiting and d.fields.get("location_id") and d.fields["location_id"] not in zones
        }
        if missing and depth < _MAX_FETCH_DEPTH:
            self._fetch(business_id, {"locations": missing}, depth)
            zones.update(self._read_zones(business_id, sorted(missing)))
        return zones

    def _read_zones(self, business_id: int, locations: list[str]) -> dict[str, ZoneInfo]:
        if not locations:
            return {}
        with read_connection(self.store) as conn:
            rows = rows_by_id(
                conn, "locations", "id, timezone", business_id, locations, "deleted_at IS NULL"
            )
        return {location: zone(tz) for location, tz in rows}


@dataclass(frozen=True)
class _Failure:
    """Why an item of a write failed: `ref` is the reference field whose record clubfeed
    lacks (a field of kind REF), or None for any other rule; `detail` says it for a person."""

    ref: str | None
    field: str | None
    detail: str


def _failing(resource: Resource, exc: InvalidInput) -> dict[tuple[str, int], _Failure]:
    """The failing items of a write by (part, index); a reference failure wins over others."""
    failing: dict[tuple[str, int], _Failure] = {}
    for error in exc.errors:
        if error.place is None:
            raise exc
        name = error.place.field
        spec = resource.field_by_name.get(name) if name else None
        ref = name if spec is not None and spec.kind is Kind.REF else None
        key = (error.place.part, error.place.index)
        if key not in failing or ref is not None:
            failing[key] = _Failure(ref, name, error.detail.rstrip("."))
    return failing


def _held(item: Draft, business_id: int, ref: str, target: str, value: Any) -> state.Problem:
    detail = (
        f"{ref} names {target} record {value!r}, which neither clubfeed nor the source has "
        "yet; held, and tried again each poll"
    )
    return state.Problem(item.tenant, item.key, "reference", ref, detail, business_id)


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
