"""Domain errors. They say what went wrong in the caller's terms; the API maps them to HTTP.

ClubfeedError
 ├── BadRequest          a malformed request: query parameters, cursor, JSON, UTF-8
 ├── InvalidInput        well-formed records that break a rule (errors name the places)
 ├── NotFound            no such record, resource or route
 ├── IdempotencyReused   an Idempotency-Key sent again with a different request
 ├── HistoryPurged       a range reaching back before the tombstones still kept
 ├── HistoryRewound      a position ahead of the server's history (a restore, a lagging replica)
 ├── Unauthenticated     a missing or wrong credential
 └── Forbidden           a right credential that does not cover this request
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal


@dataclass(frozen=True)
class Place:
    """Where in a write a problem lies, for each edge to name in its own terms.

    `part` is the list (`upsert` or `delete`) and `index` the item's place in it; `key`
    is the record's id when known, and `field` the JSON Pointer inside the record
    without its leading slash (`user_id`, `extra/tier`), or None for the item itself.
    The API names it as a JSON Pointer into a batch or a single record's body, an NDJSON
    import as a line of the file, a source as the source row's key.
    """

    part: Literal["upsert", "delete"]
    index: int
    key: str | None = None
    field: str | None = None

    def pointer(self, *, single: bool = False) -> str:
        """The JSON Pointer into a batch body, or (`single`) into one record's body (`""`
        for the record itself)."""
        tail = f"/{self.field}" if self.field else ""
        return tail if single else f"/{self.part}/{self.index}{tail}"


@dataclass(frozen=True)
class ErrorItem:
    """One problem in a request: where (`pointer`, a JSON Pointer or parameter name) and what.

    A problem in a write's records also has its `place`; `pointer` and `index` then say
    it the way a batch body does (`at`).
    """

    detail: str
    pointer: str | None = None
    index: int | None = None
    place: Place | None = None

    @classmethod
    def at(cls, place: Place, detail: str) -> ErrorItem:
        return cls(detail, place.pointer(), place.index, place)

    def in_single_record(self) -> ErrorItem:
        """The same problem said of a one-record write's body (no list, no index)."""
        if self.place is None:
            return self
        return replace(self, pointer=self.place.pointer(single=True), index=None)

    def as_json(self) -> dict[str, object]:
        item: dict[str, object] = {"detail": self.detail}
        if self.pointer is not None:
            item["pointer"] = self.pointer
        if self.index is not None:
            item["index"] = self.index
        return item


class ClubfeedError(Exception):
    """Base of the errors a caller can act on; `detail` is written for a person."""

    title = "Request failed"
    slug = "error"

    def __init__(self, detail: str, errors: list[ErrorItem] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []


class BadRequest(ClubfeedError):
    title = "Bad request"
    slug = "bad-request"


class InvalidInput(ClubfeedError):
    title = "Invalid request"
    slug = "invalid-request"

    @classmethod
    def listing(cls, errors: list[ErrorItem]) -> InvalidInput:
        """Every problem found, the first one told in `detail`: "… at /upsert/3/id. Nothing
        was written." """
        first = errors[0]
        where = f" at {first.pointer}" if first.pointer else ""
        more = f" ({len(errors) - 1} more problems listed in errors)" if len(errors) > 1 else ""
        return cls(f"{first.detail.rstrip('.')}{where}{more}. Nothing was written.", errors)

    def in_single_record(self) -> InvalidInput:
        """The same problems said of a one-record write (PUT), whose body is the record."""
        if not any(item.place is not None for item in self.errors):
            return self
        return InvalidInput.listing([item.in_single_record() for item in self.errors])


class NotFound(ClubfeedError):
    title = "Not found"
    slug = "not-found"


class IdempotencyReused(ClubfeedError):
    title = "Idempotency key reused"
    slug = "idempotency-key-reused"


class HistoryPurged(ClubfeedError):
    title = "Changes no longer kept"
    slug = "history-purged"


class HistoryRewound(ClubfeedError):
    title = "Changes no longer held by the server"
    slug = "history-rewound"


class Unauthenticated(ClubfeedError):
    """`rejected` is True when a credential was presented and is wrong (not merely missing)."""

    title = "Unauthenticated"
    slug = "unauthenticated"

    def __init__(self, detail: str, *, rejected: bool) -> None:
        super().__init__(detail)
        self.rejected = rejected


class Forbidden(ClubfeedError):
    """`scope`, when an access token's scope is what falls short, is the scope the request needs."""

    title = "Forbidden"
    slug = "forbidden"

    def __init__(self, detail: str, *, scope: str | None = None) -> None:
        super().__init__(detail)
        self.scope = scope
