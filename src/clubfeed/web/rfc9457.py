"""RFC 9457 problem details: the one error shape every endpoint answers with.

Domain errors know nothing of HTTP; `status_for` maps them to statuses by class,
walking the hierarchy, so a new subclass answers like its parent until it is given
a status of its own. This module imports nothing of the web edge, so every part of
it (middleware, rate limits, metrics) can answer in this shape.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
from fastapi.responses import Response

from clubfeed.errors import (
    BadRequest,
    ClubfeedError,
    Forbidden,
    HistoryPurged,
    HistoryRewound,
    IdempotencyReused,
    InvalidInput,
    NotFound,
    Unauthenticated,
)
from clubfeed.web.headers import PRIVATE

PROBLEM_JSON = "application/problem+json"
MAX_LISTED_ERRORS = 100

STATUS: dict[type[ClubfeedError], int] = {
    ClubfeedError: 400,
    BadRequest: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    HistoryPurged: 410,
    HistoryRewound: 410,
    InvalidInput: 422,
    IdempotencyReused: 422,
}


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    slug: str,
    errors: list[dict[str, object]] | None = None,
    headers: Mapping[str, str] | None = None,
    extensions: Mapping[str, object] | None = None,
) -> Response:
    body: dict[str, object] = {
        "type": f"/problems/{slug}",
        "title": title,
        "status": status,
        "detail": detail,
        **(extensions or {}),
    }
    if errors:
        body["errors"] = errors[:MAX_LISTED_ERRORS]
        if len(errors) > MAX_LISTED_ERRORS:
            body["errors_not_listed"] = len(errors) - MAX_LISTED_ERRORS
    headers = {**PRIVATE, **(headers or {})}
    return Response(msgspec.json.encode(body), status, headers=headers, media_type=PROBLEM_JSON)


def status_for(exc: ClubfeedError) -> int:
    """The HTTP status of a domain error: that of its nearest class with one."""
    for cls in type(exc).__mro__:
        if issubclass(cls, ClubfeedError) and cls in STATUS:
            return STATUS[cls]
    return STATUS[ClubfeedError]


RETRY_AFTER_S = 1
"""What every 503 that will pass by itself asks: the database, a full process, a restart."""


def unavailable(
    detail: str, *, passes: bool = True, headers: Mapping[str, str] | None = None
) -> Response:
    """503 /problems/service-unavailable; with Retry-After when it `passes` by itself."""
    retry = {"Retry-After": str(RETRY_AFTER_S)} if passes else {}
    return problem_response(
        503,
        "Service unavailable",
        detail,
        slug="service-unavailable",
        headers={**retry, **(headers or {})},
    )
