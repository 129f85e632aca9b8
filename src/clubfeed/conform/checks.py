"""The requirements a loyalty platform's poller relies on, each a check of a live server.

They follow Perkville's list: both credentials on every endpoint; the three query kinds on
every resource; pages of 10,000 in an order that concurrent writes do not disturb; UTF-8;
ISO 8601 times with offsets, event times in their location's; tombstones in ranges; 410
when history is gone; 429 with Retry-After; the lookup limits; and, with an ingest key,
no change missed or repeated while writers commit concurrently (`commits.py`).
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from clubfeed.client.retry import parse_retry_after
from clubfeed.conform.probe import PARALLEL_READS, Failed, HistoryPurged, Skipped
from clubfeed.conform.run import EVENT_UTC, UTF8_NAME, Run
from clubfeed.conform.times import EPOCH, FUTURE, event_fields, instant, time_fields

PAGE = 10_000
_LONGEST_WAIT_S = 120
_RATE_WORKERS = PARALLEL_READS
GET_IDS = 1_000
POST_IDS = 10_000


def _ids(items: list[str], most: int = 3) -> str:
    shown = ", ".join(items[:most])
    return shown + (f" and {len(items) - most:,} more" if len(items) > most else "")


def credentials(run: Run) -> str:
    """Every read endpoint refuses a request missing either credential, or with a wrong
    one; with an ingest key, every write endpoint refuses one without it."""
    probe, key, token = run.probe, run.probe.integrator_key, run.probe.token
    missing = f"{run.prefix}none"
    partial = {
        "integrator key only": {"X-Integrator-Key": key},
        "bearer only": {"Authorization": f"Bearer {token}"},
    }
    wrong = {
        "no credentials": {},
        "a wrong bearer": {"X-Integrator-Key": key, "Authorization": "Bearer wrong"},
        "a wrong integrator key": {"X-Integrator-Key": "wrong", "Authorization": f"Bearer {token}"},
    }
    statuses: list[tuple[str, int]] = []
    for resource in run.resources:
        endpoints: list[tuple[str, str, dict[str, Any] | None, Any]] = [
            ("GET", f"/v1/{resource}", {"limit": 1}, None),
            ("GET", f"/v1/{resource}", {"limit": 1, "modified_since": EPOCH}, None),
            ("GET", f"/v1/{resource}/lookup", {"ids": missing}, None),
            ("POST", f"/v1/{resource}/lookup", None, {"ids": [missing]}),
            ("GET", f"/v1/{resource}/{missing}", None, None),
            ("GET", f"/v1/{resource}/summary", None, None),
        ]
        for number, (method, path, params, body) in enumerate(endpoints):
            tries = partial | (wrong if number == 0 else {})
            for name, headers in tries.items():
                answer = probe.send(method, path, headers=headers, params=params, body=body)
                query = f"?{httpx.QueryParams(params)}" if params else ""
                statuses.append((f"{method} {path}{query} with {name}", answer.status_code))
        if run.writes:
            run.remember(resource, [missing])  # in case a PUT without the key is taken
            writes: list[tuple[str, str, Any]] = [
                ("PUT", f"/v1/{resource}/{missing}", {}),
                ("POST", f"/v1/{resource}/batch", {"upsert": [], "delete": []}),
                ("DELETE", f"/v1/{resource}/{missing}", None),
            ]
            for method, path, body in writes:
                for name, headers in {"no credentials": {}, "the reader's": probe.reader}.items():
                    answer = probe.send(method, path, headers=headers, body=body)
                    statuses.append((f"{method} {path} with {name}", answer.status_code))
    accepted = [f"{what}: {status}" for what, status in statuses if status not in (401, 403)]
    if accepted:
        raise Failed(f"{len(accepted)} of {len(statuses)} accepted: {_ids(accepted)}")
    return f"{len(statuses):,} requests with a credential missing or wrong: all 401 or 403"


def transfer(run: Run) -> str:
    """A complete transfer of every resource pages to the end with each record once."""
    total = pages = 0
    for resource in run.resources:
        seen: Counter[str] = Counter()
        held: dict[str, dict[str, Any]] = {}
        for page in run.probe.pages(resource):
            pages += 1
            run.stamps.append(page.consistent_until)
            deleted = [r["id"] for r in page.records if r.get("deleted")]
            if deleted:
                raise Failed(f"{resource}: a complete transfer held tombstones: {_ids(deleted)}")
            seen.update(r["id"] for r in page.records)
            held.update((r["id"], r) for r in page.records)
        twice = sorted(i for i, n in seen.items() if n > 1)
        if twice:
            raise Failed(f"{resource}: records served twice: {_ids(twice)}")
        run.live[resource] = held
        total += len(seen)
    return f"{total:,} records in {pages:,} pages of {len(run.resources)} resources"


def _at(record: dict[str, Any]) -> datetime:
    found = instant(record["modified_at"])
    if found is None:
        raise Failed(f"record {record['id']}: modified_at {record['modified_at']!r} is not a time")
    return found


def ranges(run: Run) -> str:
    """A range from the epoch holds every live record; `modified_since`, `modified_after`
    and `modified_before` cut at a record's own `modified_at` exactly as defined. A range
    the server refuses as reaching into purged history (410) is correct, and unchecked."""
    cuts = refused = purged = 0
    for resource in run.resources:
        live = run.live_records(resource)
        try:
            served, until = run.probe.query(resource, {"modified_since": EPOCH})
        except HistoryPurged:
            purged += 1
        else:
            _from_the_epoch(run, resource, live, served, until)
        if len(live) < 3:
            continue
        ordered = sorted(live.values(), key=_at)
        cut = ordered[len(ordered) // 2]
        at = _at(cut)
        expected = [
            ({"modified_since": cut["modified_at"]}, {i for i, r in live.items() if _at(r) >= at}),
            ({"modified_after": cut["modified_at"]}, {i for i, r in live.items() if _at(r) > at}),
        ]
        earlier = [r for r in ordered if _at(r) < at]  # a lower bound for modified_before
        if earlier:
            low = earlier[len(earlier) // 2]
            low_at = _at(low)
            between = {"modified_since": low["modified_at"], "modified_before": cut["modified_at"]}
            expected.append((between, {i for i, r in live.items() if low_at <= _at(r) < at}))
        for params, ids in expected:
            query = "&".join(f"{k}={v}" for k, v in params.items())
            try:
                records, _ = run.probe.query(resource, params)
            except HistoryPurged:
                refused += 1
                continue
            got = {r["id"] for r in records if not r.get("deleted")}
            if got != ids:
                wrong = sorted(got ^ ids)
                raise Failed(f"{resource}: {query} differs from its definition: {_ids(wrong)}")
            cuts += 1
    both = run.probe.send(
        "GET", f"/v1/{run.resources[0]}", params={"modified_since": EPOCH, "modified_after": EPOCH}
    )
    if both.status_code != 400:
        raise Failed(f"modified_since with modified_after answered {both.status_code}, not 400")
    evidence = (
        f"from the epoch on {len(run.resources) - purged} of {len(run.resources)} resources; "
        f"{cuts} cuts at a record's modified_at; modified_since with modified_after refused (400)"
    )
    if purged or refused:
        evidence += (
            f"; reaching into purged history, {purged} from the epoch and {refused} cuts "
            "refused (410), as they should be"
        )
    return evidence


def _from_the_epoch(
    run: Run,
    resource: str,
    live: dict[str, dict[str, Any]],
    served: list[dict[str, Any]],
    until: str,
) -> None:
    """A range from the epoch holds the complete transfer's records, none at or after its
    `consistent_until`."""
    run.stamps.append(until)
    run.tombstones.extend(r for r in served if r.get("deleted"))
    got = {r["id"] for r in served if not r.get("deleted")}
    if got != set(live):
        lost, extra = sorted(set(live) - got), sorted(got - set(live))
        raise Failed(
            f"{resource}: a range from {EPOCH} missed {_ids(lost) or 'none'} "
            f"and held {_ids(extra) or 'none'} that the complete transfer did not"
        )
    end = instant(until)
    late = [r["id"] for r in served if end is None or _at(r) >= end]
    if late:
        raise Failed(f"{resource}: records at or after consistent_until {until}: {_ids(late)}")


def lookup(run: Run) -> str:
    """Lookup by id, by GET and by POST, answers the ids asked, in order, naming the missing;
    one record by its id answers it, an unknown id 404."""
    missing = f"{run.prefix}missing"
    asked = 0
    for resource in run.resources:
        live = run.live_records(resource)
        ids = list(live)[:50][::-1]
        want = [*ids, missing]
        for method in ("GET", "POST"):
            what = f"{method} /v1/{resource}/lookup"
            answer = run.probe.send(
                method,
                f"/v1/{resource}/lookup",
                params={"ids": ",".join(want)} if method == "GET" else None,
                body={"ids": want} if method == "POST" else None,
            )
            found = run.probe.json(answer, what)
            data, absent = found.get("data"), found.get("missing")
            if not isinstance(data, list) or [r.get("id") for r in data] != ids:
                raise Failed(f"{what}: data is not the {len(ids)} records asked, in order")
            if absent != [missing]:
                raise Failed(f"{what}: missing is {absent!r}, not [{missing!r}]")
            stale = [r["id"] for r in data if r.get("modified_at") != live[r["id"]]["modified_at"]]
            if stale:
                raise Failed(f"{what}: records unlike the complete transfer's: {_ids(stale)}")
            asked += 1
        if ids:
            one = run.probe.json(run.probe.send("GET", f"/v1/{resource}/{ids[0]}"), resource)
            if one != live[ids[0]]:
                raise Failed(f"GET /v1/{resource}/{ids[0]}: not the record the transfer held")
        status = run.probe.send("GET", f"/v1/{resource}/{missing}").status_code
        if status != 404:
            raise Failed(f"GET /v1/{resource}/{missing} (never written) answered {status}, not 404")
    return f"{asked} lookups (GET and POST) on {len(run.resources)} resources; unknown ids 404"


def page_size(run: Run) -> str:
    """A page holds up to 10,000 records."""
    sizes = {resource: len(run.live_records(resource)) for resource in run.resources}
    largest = max(sizes, key=lambda r: sizes[r])
    if sizes[largest] <= PAGE:
        raise Skipped(
            f"needs a resource of more than {PAGE:,} records (the largest, {largest}, holds "
            f"{sizes[largest]:,}) or an ingest key to write them"
        )
    page = run.probe.page(largest, {"limit": PAGE})
    if len(page.records) != PAGE or page.next_cursor is None:
        raise Failed(
            f"{largest}: limit={PAGE} answered {len(page.records):,} records "
            f"({'a' if page.next_cursor else 'no'} next_cursor) of {sizes[largest]:,}"
        )
    return f"{largest}: a first page of {PAGE:,} of {sizes[largest]:,} records, with a next_cursor"


def stable_order(run: Run) -> str:
    """A complete transfer paged while records are created, updated ahead of it and
    deleted behind it, then a range from its `consistent_until`, deliver every record's
    last version exactly once, and the deletes as tombstones."""
    if not run.writes:
        raise Skipped("needs an ingest key (--ingest-key) to write while paging")
    users = run.live_records("users")
    start = sorted(i for i in users if i.startswith(run.prefix + "u"))
    final = {i: users[i]["modified_at"] for i in start}
    deleted: set[str] = set()
    read: set[str] = set()
    delivered: Counter[tuple[str, str]] = Counter()
    until = ""
    for number, page in enumerate(run.probe.pages("users", limit=1_000)):
        delivered.update((r["id"], r["modified_at"]) for r in page.records)
        read.update(r["id"] for r in page.records)
        until = page.consistent_until
        if page.next_cursor is None:
            break
        behind = [i for i in start if i in read and i not in deleted][:3]
        ahead = [i for i in start if i not in read and i not in deleted][-3:]
        new = [run.user_record(f"{run.prefix}a{number:03}{k}") for k in range(2)]
        updated = [run.user_record(i, f"Updated {number}") for i in ahead]
        stamp = run.write("users", new + updated, delete=behind).get("modified_at")
        deleted.update(behind)
        final.update((r["id"], str(stamp)) for r in new + updated)
        for gone in behind:
            final.pop(gone)
    records, _ = run.probe.query("users", {"modified_since": until})
    delivered.update((r["id"], r["modified_at"]) for r in records if not r.get("deleted"))
    tombstoned = {r["id"] for r in records if r.get("deleted")}
    repeated = sorted(f"{i} at {at}" for (i, at), n in delivered.items() if n > 1)
    missed = sorted(i for i, at in final.items() if (i, at) not in delivered)
    missed += sorted(f"{i}'s tombstone" for i in deleted - tombstoned)
    if repeated or missed:
        raise Failed(
            f"paging users by 1,000 while writing between pages, then a range from its "
            f"consistent_until: {len(missed):,} missed ({_ids(missed) or 'none'}), "
            f"{len(repeated):,} repeated ({_ids(repeated) or 'none'})"
        )
    return (
        f"{number + 1} pages of users, writing between pages ({len(deleted)} deleted, "
        f"{len(final) - len(start) + len(deleted)} created, others updated), then a range from "
        "its consistent_until: every last version once, every delete a tombstone"
    )


def utf8(run: Run) -> str:
    """Answers are JSON in UTF-8, and text round-trips exactly (with an ingest key)."""
    odd = f"{run.prefix}ünïcødé-missing"
    found = run.probe.json(run.probe.send("GET", "/v1/users/lookup", params={"ids": odd}), "lookup")
    if found.get("missing") != [odd]:
        raise Failed(f"a lookup of {odd!r} answered missing={found.get('missing')!r}")
    evidence = "a non-ASCII id round-trips through a lookup"
    if run.seeded:
        one = run.probe.json(run.probe.send("GET", f"/v1/users/{run.named}"), "a user")
        if one.get("first_name") != UTF8_NAME:
            raise Failed(f"wrote first_name {UTF8_NAME!r}, read {one.get('first_name')!r}")
        evidence += f"; {UTF8_NAME!r} written and read back"
    if run.probe.not_utf8:
        raise Failed(f"{len(run.probe.not_utf8)} answers: {_ids(run.probe.not_utf8, 2)}")
    return f"{run.probe.requests:,} answers UTF-8 JSON; {evidence}"


def offsets(run: Run) -> str:
    """Every time served is ISO 8601 with an offset (Z or ±hh:mm)."""
    checked = 0
    bad: list[str] = []
    for resource in run.resources:
        fields = time_fields(resource)
        for record in run.live_records(resource).values():
            for name in fields:
                value = record.get(name)
                if value is None:
                    continue
                checked += 1
                if not isinstance(value, str) or instant(value) is None:
                    bad.append(f"{resource} {record['id']} {name} {value!r}")
    for tombstone in run.tombstones:
        checked += 1
        if instant(str(tombstone.get("modified_at"))) is None:
            bad.append(f"tombstone {tombstone['id']} modified_at {tombstone.get('modified_at')!r}")
    for stamp in run.stamps:
        checked += 1
        if instant(stamp) is None:
            bad.append(f"consistent_until {stamp!r}")
    if bad:
        raise Failed(f"{len(bad):,} of {checked:,} times without an offset: {_ids(bad, 2)}")
    if not checked:
        raise Skipped("no times were served")
    return f"{checked:,} times, all ISO 8601 with an offset"


def local_offsets(run: Run) -> str:
    """Event times at a location carry that location's UTC offset at that instant."""
    locations = run.live_records("locations")
    checked = 0
    for resource in run.resources:
        fields = event_fields(resource)
        if not fields:
            continue
        for record in run.live_records(resource).values():
            place = locations.get(record.get("location_id") or "")
            if place is None:
                continue
            try:
                zone = ZoneInfo(str(place.get("timezone")))
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise Failed(
                    f"location {place['id']}: time zone {place.get('timezone')!r}"
                ) from exc
            for name in fields:
                value = record.get(name)
                at = instant(value) if isinstance(value, str) else None
                if at is None:
                    continue
                checked += 1
                if at.utcoffset() != at.astimezone(zone).utcoffset():
                    raise Failed(
                        f"{resource} {record['id']}: {name} {value} is not in its location's "
                        f"offset ({zone.key}: {at.astimezone(zone).isoformat()})"
                    )
    if run.seeded:
        mine = run.live_records("checkins").get(run.checkin, {})
        served = instant(str(mine.get("checked_in_at")))
        if served is None or served != instant(EVENT_UTC) or str(served.utcoffset()) != "5:45:00":
            raise Failed(f"wrote {EVENT_UTC} at Asia/Kathmandu, read {mine.get('checked_in_at')}")
    if not checked:
        raise Skipped("no event times at a location were served")
    return f"{checked:,} event times in their location's offset"


def tombstones(run: Run) -> str:
    """A delete reaches a range as a tombstone `{id, deleted: true, modified_at}`."""
    if not run.writes:
        raise Skipped("needs an ingest key (--ingest-key) to delete a record")
    gone = f"{run.prefix}deleted"
    made = run.write("users", [run.user_record(gone)])
    removed = run.write("users", delete=[gone])
    since = str(made.get("modified_at"))
    expected = {"id": gone, "deleted": True, "modified_at": removed.get("modified_at")}
    deadline = time.monotonic() + 10
    while True:
        records, _ = run.probe.query("users", {"modified_since": since})
        found = [r for r in records if r["id"] == gone]
        if found or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if found != [expected]:
        raise Failed(f"a range after the delete held {found!r}, not [{expected!r}]")
    after = [r for r in run.probe.query("users", {"modified_after": since})[0] if r["id"] == gone]
    if after != [expected]:
        raise Failed(f"modified_after={since} held {after!r}, not the tombstone")
    status = run.probe.send("GET", f"/v1/users/{gone}").status_code
    if status != 404:
        raise Failed(f"GET of the deleted record answered {status}, not 404")
    return (
        "a delete served in ranges (modified_since and modified_after) as exactly "
        '{"id", "deleted": true, "modified_at"}, the delete\'s own time; GET answers 404'
    )


def history(run: Run) -> str:
    """A bookmark the server cannot serve from (a restore, a purge) is answered 410
    problem+json, so the poller knows to transfer everything again."""
    resource = run.resources[0]
    found = []
    for name in ("modified_since", "modified_after"):
        answer = run.probe.send("GET", f"/v1/{resource}", params={name: FUTURE})
        kind = answer.headers.get("Content-Type", "").split(";")[0]
        if answer.status_code != 410 or kind != "application/problem+json":
            raise Failed(
                f"{name}={FUTURE} (ahead of every change) answered {answer.status_code} "
                f"{kind or 'without a type'}, not 410 application/problem+json"
            )
        found.append(f"{name} ahead of the server: 410 problem+json")
    return "; ".join(found)


def lookup_limits(run: Run) -> str:
    """A lookup takes 1,000 ids by GET and 10,000 by POST, and refuses more with a 4xx."""
    resource = run.resources[0]
    path = f"/v1/{resource}/lookup"
    found = []
    for method, most in (("GET", GET_IDS), ("POST", POST_IDS)):
        for count in (most, most + 1):
            ids = [f"{run.prefix}x{n:05}" for n in range(count)]
            answer = run.probe.send(
                method,
                path,
                params={"ids": ",".join(ids)} if method == "GET" else None,
                body={"ids": ids} if method == "POST" else None,
            )
            if count == most:
                missing = run.probe.json(answer, f"{method} {path} of {count:,} ids").get("missing")
                if missing != ids:
                    raise Failed(f"{method} {path} of {count:,} unknown ids: not all missing")
            elif not 400 <= answer.status_code < 500:
                raise Failed(
                    f"{method} {path} of {count:,} ids answered {answer.status_code}, not a 4xx"
                )
            else:
                found.append(f"{method} {count - 1:,} ids: 200, {count:,}: {answer.status_code}")
    return "; ".join(found)


def rate_limit(run: Run) -> str:
    """Past the read budget the server answers 429 with Retry-After, and serves again
    once that has passed. Spends the integrator's read budget: it runs last. Requests go
    `_RATE_WORKERS` at a time: one at a time, a client 20 ms away sends 50 a second,
    fewer than a budget of 6,000 a minute refills, and would never see the 429. A 429 is
    then known to within a wave of requests."""
    budget, began = 30_000, time.monotonic()
    path = f"/v1/{run.resources[0]}"

    def read(_: int) -> httpx.Response:
        return run.probe.send("GET", path, params={"limit": 1}, wait_out=False)

    sent = 0
    limited: list[str | None] = []  # the Retry-After of each 429
    with ThreadPoolExecutor(_RATE_WORKERS, thread_name_prefix="conform-rate") as pool:
        while sent < budget and not limited:
            for reply in pool.map(read, range(_RATE_WORKERS)):
                sent += 1
                if reply.status_code == 429:
                    limited.append(reply.headers.get("Retry-After"))
                elif reply.status_code != 200:
                    raise Failed(f"request {sent:,} answered {reply.status_code}, not 200 or 429")
    took = time.monotonic() - began
    if not limited:
        raise Failed(f"no 429 after {sent:,} requests in {took:.0f} s")
    waits = [parse_retry_after(after) for after in limited]
    if None in waits:
        after = limited[waits.index(None)]
        raise Failed(f"429 within {sent:,} requests, with Retry-After {after!r}: not a delay")
    # The longest: a request of the wave answered 200 after another's 429 spent a cell.
    wait = max(w for w in waits if w is not None)
    after = limited[waits.index(wait)]
    if wait > _LONGEST_WAIT_S:
        return (
            f"429 within {sent:,} requests in {took:.1f} s, Retry-After: {after} (not waited for)"
        )
    time.sleep(wait)
    again = read(0)
    if again.status_code != 200:
        raise Failed(
            f"after waiting Retry-After ({after} s) the next request answered {again.status_code}"
        )
    return (
        f"429 within {sent:,} requests in {took:.1f} s, Retry-After: "
        f"{after}; 200 again after waiting it"
    )
