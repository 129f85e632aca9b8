"""Schemathesis hooks: the rules the OpenAPI description states in words but JSON Schema cannot.

A positive (schema-valid) case must be accepted, so before one is sent it is brought
within the rules its operation's description states in prose: a cursor comes from a
page, `ids` are no more than `limit`, `modified_since` and `modified_after` are not
both sent, `modified_before` lies after either, which lies no later than the
business's consistent_until (410 history-rewound otherwise), datetimes lie
between 0001-01-02 and 9999-12-30, a decimal has at most 100 digits written out,
references name records that exist (so those records are never deleted), a time zone is
an IANA name, no key or string of `extra` holds NUL, a PUT
body's id is the URL's, a batch's items
number at most 10,000 and no id appears twice in it, an Idempotency-Key is never
reused for another request. Negative cases go as generated. (Schemathesis applies
hooks in every phase but the examples phase, which the test therefore leaves out.)

Loaded by `schemathesis run` through SCHEMATHESIS_HOOKS; CLUBFEED_FUZZ_REFS names, for
each resource, the id of a record every business under test holds.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

import schemathesis
from schemathesis import GenerationMode

from clubfeed import catalogue
from clubfeed.catalogue import Kind, Resource
from clubfeed.ingest.validate import MAX_BATCH, MAX_DECIMAL_DIGITS
from clubfeed.timefmt import iana_names, out_of_range

REFS: dict[str, str] = json.loads(os.environ.get("CLUBFEED_FUZZ_REFS", "{}"))
IANA = iana_names()
HELD_UNTIL = datetime.fromisoformat(
    os.environ.get("CLUBFEED_FUZZ_HELD_UNTIL", "1970-01-01T00:00:00+00:00")
)
"""A consistent_until the business under test has reached: no window may start later."""


def _resource(path: str) -> Resource | None:
    parts = path.split("/")
    return catalogue.BY_NAME.get(parts[2]) if len(parts) > 2 and parts[1] == "v1" else None


def _bad_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return False
    return parsed.tzinfo is not None and out_of_range(parsed)


def _later_than_held(value: object, *, exclusive: bool = False) -> bool:
    """Whether a window's start lies past HELD_UNTIL; `modified_after` T starts at T + 1 µs,
    so it must lie before it."""
    try:
        start = isinstance(value, str) and datetime.fromisoformat(value)
    except ValueError:
        return False
    return bool(start) and (start >= HELD_UNTIL if exclusive else start > HELD_UNTIL)


def _too_many_digits(value: object) -> bool:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return False
    if not number.is_finite():
        return False
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)
    return max(number.adjusted() + 1, 1) + max(-exponent, 0) > MAX_DECIMAL_DIGITS


def _breaks_rules(resource: Resource, record: object) -> bool:
    """A datetime outside the supported range or a decimal with too many digits."""
    if not isinstance(record, dict):
        return False
    for field in resource.fields:
        value = record.get(field.name)
        if field.kind is Kind.DATETIME and _bad_datetime(value):
            return True
        if field.kind is Kind.DECIMAL and value is not None and _too_many_digits(value):
            return True
    return False


def _without_nul(value: Any) -> Any:
    """`value` with NUL taken out of every key and string (PostgreSQL text cannot hold it)."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    return value


def _point_references(resource: Resource, record: object) -> None:
    """References name records that exist; extra holds no NUL; zones are IANA names."""
    if isinstance(record, dict):
        for field in resource.fields:
            if field.kind is Kind.REF and field.ref in REFS and record.get(field.name) is not None:
                record[field.name] = REFS[field.ref]
            if field.kind is Kind.TIMEZONE and record.get(field.name) not in IANA:
                record[field.name] = "America/New_York"
        for name in ("extra", *catalogue.SERVER_FIELDS):
            if name in record:
                record[name] = _without_nul(record[name])


def _fit_query(query: dict[str, Any]) -> None:
    query.pop("cursor", None)
    if "ids" in query:
        ids = query["ids"]
        # Within the 60 KiB query string the description states in words.
        listed = ids if isinstance(ids, list) else str(ids).split(",")
        while len(listed) > 1 and len(",".join(map(_encoded, listed))) > 50_000:
            listed.pop()
        if not isinstance(ids, list):
            query["ids"] = ",".join(listed)
        limit = query.get("limit")
        asked = len(ids) if isinstance(ids, list) else str(ids).count(",") + 1
        if limit is not None and (not str(limit).isdigit() or int(limit) < asked):
            del query["limit"]
        return
    if "modified_since" in query:
        query.pop("modified_after", None)
    for name in ("modified_since", "modified_after", "modified_before"):
        if _bad_datetime(query.get(name)) or (
            name != "modified_before"
            and _later_than_held(query.get(name), exclusive=name == "modified_after")
        ):
            query.pop(name, None)
    since = query.get("modified_since", query.get("modified_after"))
    before = query.get("modified_before")
    if isinstance(since, str) and isinstance(before, str):
        try:
            if datetime.fromisoformat(before) <= datetime.fromisoformat(since):
                del query["modified_before"]
        except ValueError:
            pass


def _encoded(value: object) -> str:
    return quote(str(value), safe="")


def _positive(case: schemathesis.Case) -> Resource | None:
    """The resource of a positive /v1 case; None for anything sent as generated."""
    meta = case.meta
    if meta is None or meta.generation.mode is not GenerationMode.POSITIVE:
        return None
    return _resource(case.operation.path)


@schemathesis.hook
def filter_case(context: schemathesis.HookContext, case: schemathesis.Case) -> bool:
    """Drop positive writes that break a rule no value can be brought within."""
    resource = _positive(case)
    if resource is None or not isinstance(case.body, dict):
        return True
    if case.operation.path.endswith("/batch"):
        upserts = case.body.get("upsert") or []
        deletes = case.body.get("delete") or []
        ids = [item.get("id") for item in upserts if isinstance(item, dict)] + list(deletes)
        return (
            len(upserts) + len(deletes) <= MAX_BATCH
            and len(ids) == len(set(map(repr, ids)))
            and not any(_breaks_rules(resource, item) for item in upserts)
        )
    return not _breaks_rules(resource, case.body)


def _spare_references(case: schemathesis.Case) -> None:
    """Never delete the records references point at, whatever else a case is testing."""
    protected = set(REFS.values())
    method = case.operation.method.upper()
    if (
        method == "DELETE"
        and case.path_parameters
        and case.path_parameters.get("record_id") in protected
    ):
        case.path_parameters["record_id"] = uuid.uuid4().hex
    body = case.body if isinstance(case.body, dict) else {}
    deletes = body.get("delete")
    if case.operation.path.endswith("/batch") and isinstance(deletes, list):
        body["delete"] = [i for i in deletes if not (isinstance(i, str) and i in protected)]


@schemathesis.hook
def map_case(context: schemathesis.HookContext, case: schemathesis.Case) -> schemathesis.Case:
    """Bring a positive case's references, body id and query within the prose rules."""
    if _resource(case.operation.path) is not None:
        _spare_references(case)
    resource = _positive(case)
    if resource is None:
        return case
    if case.operation.method.upper() in ("GET", "HEAD") and isinstance(case.query, dict):
        _fit_query(case.query)
    if case.headers is not None and "Idempotency-Key" in case.headers:
        # A key names one request; generated keys repeat across different requests.
        case.headers["Idempotency-Key"] = uuid.uuid4().hex
    if not isinstance(case.body, dict):
        return case
    if case.operation.path.endswith("/batch"):
        for item in case.body.get("upsert") or []:
            _point_references(resource, item)
    elif case.operation.method.upper() == "PUT":
        # The id is optional in a PUT body and must equal the URL's: leave it to the URL.
        case.body.pop("id", None)
        _point_references(resource, case.body)
    return case
