"""Query parameters of the list endpoint, parsed strictly: unknown or repeated ones are refused."""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.datastructures import QueryParams

from clubfeed.catalogue import Resource, id_problem
from clubfeed.checksums import MAX_BUCKETS
from clubfeed.errors import BadRequest, ErrorItem
from clubfeed.feed.queries import ListQuery
from clubfeed.timefmt import LAST_INSTANT_US, parse_instant

MAX_LIMIT = 10_000
MAX_GET_IDS = 1_000
MAX_LOOKUP_IDS = 10_000
COMMON = ("limit", "cursor", "ids", "modified_since", "modified_after", "modified_before")
LOOKUP = ("ids", "limit")
SUMMARY = ("buckets",)


@dataclass(frozen=True)
class ListParams:
    """A parsed list request; `query` is None when only a cursor says what is asked, and
    `limit` None when the request did not say (a cursor's own, else DEFAULT_LIMIT)."""

    query: ListQuery | None
    limit: int | None
    cursor: str | None
    ids: list[str] | None


def _bad(detail: str, parameter: str) -> BadRequest:
    return BadRequest(detail, [ErrorItem(detail, parameter)])


def check_record_id(record_id: str) -> None:
    """The `{record_id}` of a one-record path must be an id; BadRequest says how it is not."""
    if (problem := id_problem(record_id)) is not None:
        raise _bad(problem, "record_id")


def _limit(raw: str | None) -> int | None:
    if raw is None:
        return None
    # ASCII digits only, and few of them: int() refuses "²" and very long numbers.
    if not re.fullmatch(r"[0-9]{1,6}", raw) or not 1 <= int(raw) <= MAX_LIMIT:
        raise _bad(f"limit must be a whole number from 1 to {MAX_LIMIT:,}; got {raw!r}.", "limit")
    return int(raw)


def _datetime(raw: str | None, name: str) -> int | None:
    if raw is None:
        return None
    try:
        return parse_instant(raw)
    except ValueError as exc:
        hint = " (a '+' in a URL must be sent as %2B)" if " " in raw else ""
        raise _bad(f"{name}: {exc}{hint}", name) from exc


def _since(params: QueryParams) -> tuple[int | None, str]:
    """The range's inclusive start in µs, and the parameter that gave it.

    `modified_after=T` asks for changes after T: since every stamp is a whole µs,
    that is `modified_since` one µs later.
    """
    if "modified_after" not in params:
        return _datetime(params.get("modified_since"), "modified_since"), "modified_since"
    if "modified_since" in params:
        raise _bad(
            "Send modified_since (changes at or after an instant, as a page's consistent_until) "
            "or modified_after (changes after an instant, as the greatest modified_at you have), "
            "not both.",
            "modified_after",
        )
    after = _datetime(params["modified_after"], "modified_after")
    assert after is not None
    if after >= LAST_INSTANT_US:
        raise _bad(
            "modified_after: nothing can change after the last supported instant.", "modified_after"
        )
    return after + 1, "modified_after"


def _ids(raw: str, resource_name: str) -> list[str]:
    ids = raw.split(",")
    if len(ids) > MAX_GET_IDS:
        raise _bad(
            f"ids lists {len(ids):,} ids; at most {MAX_GET_IDS:,} fit in a URL. "
            f"POST up to 10,000 to /v1/{resource_name}/lookup instead.",
            "ids",
        )
    for record_id in ids:
        if (problem := id_problem(record_id)) is not None:
            raise _bad(f"ids: {problem} Got {record_id!r}.", "ids")
    return ids


def _check_names(
    params: QueryParams, allowed: tuple[str, ...], where: str, repeatable: tuple[str, ...] = ()
) -> None:
    for name in params:
        if name not in allowed:
            raise _bad(f"Unknown parameter {name!r}; {where} accepts {', '.join(allowed)}.", name)
        if name not in repeatable and len(params.getlist(name)) > 1:
            raise _bad(f"Parameter {name!r} is given more than once.", name)


def _bounded_ids(raw: str, limit: int | None, resource_name: str) -> list[str]:
    ids = _ids(raw, resource_name)
    if limit is not None and len(ids) > limit:
        raise _bad(
            f"ids lists {len(ids):,} ids, more than limit ({limit:,}); with ids, limit "
            "bounds how many may be asked.",
            "ids",
        )
    return ids


def parse_lookup(resource: Resource, params: QueryParams) -> list[str]:
    """The ids of `GET /v1/{resource}/lookup?ids=…` (and `limit`, which caps how many).

    Comma-separated (`ids=a,b`, OpenAPI's explode: false) or repeated (`ids=a&ids=b`, as
    many HTTP libraries send a list): either way each value is split at its commas.
    """
    _check_names(params, LOOKUP, f"{resource.name}/lookup", repeatable=("ids",))
    if "ids" not in params:
        raise _bad("ids is required: up to 1,000 comma-separated ids.", "ids")
    joined = ",".join(params.getlist("ids"))
    return _bounded_ids(joined, _limit(params.get("limit")), resource.name)


def parse(resource: Resource, params: QueryParams) -> ListParams:
    _check_names(params, COMMON + resource.filters, resource.name)
    since, since_name = _since(params)
    before = _datetime(params.get("modified_before"), "modified_before")
    if since is not None and before is not None and before <= since:
        raise _bad(f"modified_before must be later than {since_name}.", "modified_before")
    filters = []
    for name in resource.filters:
        value = params.get(name)
        if value is not None:
            if (problem := id_problem(value)) is not None:
                raise _bad(f"{name}: {problem}", name)
            filters.append((name, value))
    limit = _limit(params.get("limit"))
    ids = None
    if "ids" in params:
        others = [n for n in params if n not in ("ids", "limit")]
        if others:
            raise _bad(
                f"ids cannot be combined with {', '.join(others)}: a lookup returns exactly the ids asked.",
                "ids",
            )
        ids = _bounded_ids(params["ids"], limit, resource.name)
    query = ListQuery(tuple(filters), since, before, since_name)
    # A cursor alone continues the query it came from; parameters sent with it must match it.
    only_cursor = "cursor" in params and query == ListQuery()
    return ListParams(
        query=None if only_cursor else query,
        limit=limit,
        cursor=params.get("cursor"),
        ids=ids,
    )


def parse_buckets(resource: Resource, params: QueryParams) -> int | None:
    """`buckets` of `GET /v1/{resource}/summary`: a power of two up to 65,536, or None."""
    _check_names(params, SUMMARY, f"{resource.name}/summary")
    raw = params.get("buckets")
    if raw is None:
        return None
    if (
        not re.fullmatch(r"[0-9]{1,5}", raw)
        or int(raw) & (int(raw) - 1)
        or not 1 <= int(raw) <= MAX_BUCKETS
    ):
        raise _bad(
            f"buckets must be a power of two from 1 to {MAX_BUCKETS:,}; got {raw!r}.", "buckets"
        )
    return int(raw)
