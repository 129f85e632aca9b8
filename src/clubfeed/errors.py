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

from dataclasses import dataclass


@dataclass(frozen=True)
class ErrorItem:
    """One problem in a request: where (`pointer`, a JSON Pointer or parameter name) and what."""

    detail: str
    pointer: str | None = None
    index: int | None = None

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
