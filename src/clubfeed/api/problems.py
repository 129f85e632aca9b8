"""RFC 9457 problem details: the one error shape every endpoint answers with."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
from fastapi import Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from clubfeed.errors import (
    BadRequest,
    ClubfeedError,
    IdempotencyReused,
    InvalidInput,
    NotFound,
    Unauthenticated,
)

PROBLEM_JSON = "application/problem+json"
MAX_LISTED_ERRORS = 100

STATUS: dict[type[ClubfeedError], int] = {
    BadRequest: 400,
    Unauthenticated: 401,
    NotFound: 404,
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
) -> Response:
    body: dict[str, object] = {
        "type": f"/problems/{slug}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors[:MAX_LISTED_ERRORS]
        if len(errors) > MAX_LISTED_ERRORS:
            body["errors_not_listed"] = len(errors) - MAX_LISTED_ERRORS
    return Response(msgspec.json.encode(body), status, headers=headers, media_type=PROBLEM_JSON)


def domain_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ClubfeedError)
    status = STATUS.get(type(exc), 400)
    headers = None
    if isinstance(exc, Unauthenticated):
        error = ', error="invalid_token"' if exc.rejected else ""
        headers = {"WWW-Authenticate": f'Bearer realm="clubfeed"{error}'}
    return problem_response(
        status,
        exc.title,
        exc.detail,
        slug=exc.slug,
        errors=[e.as_json() for e in exc.errors],
        headers=headers,
    )


_HTTP_SLUGS = {404: "not-found", 405: "method-not-allowed"}


def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (unknown route, wrong method) in the same shape."""
    assert isinstance(exc, HTTPException)
    detail = exc.detail
    if exc.status_code == 404 and detail == "Not Found":
        detail = (
            f"There is no endpoint at {request.url.path}. Resources live under /v1/ "
            "(see /docs for the list)."
        )
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}."
    return problem_response(
        exc.status_code,
        str(exc.detail),
        str(detail),
        slug=_HTTP_SLUGS.get(exc.status_code, "http-error"),
        headers=exc.headers,
    )


def unexpected_error(_request: Request, _exc: Exception) -> Response:
    return problem_response(
        500,
        "Internal error",
        "Something went wrong on our side; nothing was written. Retry, and contact the operator if it persists.",
        slug="internal-error",
    )
