"""RFC 9457 problem details: the one error shape every endpoint answers with.

Domain errors know nothing of HTTP; `status_for` maps them to statuses by class,
walking the hierarchy, so a new subclass answers like its parent until it is given
a status of its own.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
from fastapi import Request
from fastapi.responses import Response
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException
from starlette.routing import compile_path

from clubfeed import catalogue
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


def status_for(exc: ClubfeedError) -> int:
    """The HTTP status of a domain error: that of its nearest class with one."""
    for cls in type(exc).__mro__:
        if issubclass(cls, ClubfeedError) and cls in STATUS:
            return STATUS[cls]
    return STATUS[ClubfeedError]


def domain_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ClubfeedError)
    status = status_for(exc)
    headers = None
    if isinstance(exc, Unauthenticated):
        error = ', error="invalid_token"' if exc.rejected else ""
        headers = {"WWW-Authenticate": f'Bearer realm="clubfeed"{error}'}
    elif isinstance(exc, Forbidden) and exc.scope is not None:
        # RFC 6750 §3.1: the scope attribute names what the token would need.
        headers = {
            "WWW-Authenticate": (
                f'Bearer realm="clubfeed", error="insufficient_scope", scope="{exc.scope}"'
            )
        }
    return problem_response(
        status,
        exc.title,
        exc.detail,
        slug=exc.slug,
        errors=[e.as_json() for e in exc.errors],
        headers=headers,
    )


# Titles match the domain errors' so that one problem type always has one title.
_HTTP_PROBLEMS = {
    404: (NotFound.slug, NotFound.title),
    405: ("method-not-allowed", "Method not allowed"),
}


def _no_route(path: str) -> str:
    """Why nothing answers at `path` (as routed: percent-decoded, line breaks kept)."""
    if not path.isprintable():
        # Path parameters never match a line break, so such an id ends up here.
        return f"The path {path!r} holds a control character; ids are 1 to 64 printable characters."
    parts = path.split("/")
    if len(parts) > 2 and parts[1] == "v1" and parts[2] and parts[2] not in catalogue.BY_NAME:
        return (
            f"There is no resource {parts[2]!r}; the resources are "
            f"{', '.join(catalogue.BY_NAME)} (see /docs)."
        )
    return f"There is no endpoint at {path}. Resources live under /v1/ (see /docs for the list)."


def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (unknown route, wrong method) in the same shape."""
    assert isinstance(exc, HTTPException)
    detail = exc.detail
    if exc.status_code == 404 and detail == "Not Found":
        detail = _no_route(request.scope["path"])
    headers = exc.headers
    if exc.status_code == 405:
        allowed = _allowed_methods(request)
        headers = {**(headers or {}), "Allow": allowed}
        detail = f"{request.method} is not allowed on {request.url.path}; use {allowed}."
    slug, title = _HTTP_PROBLEMS.get(exc.status_code, ("http-error", str(exc.detail)))
    return problem_response(exc.status_code, title, str(detail), slug=slug, headers=headers)


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        if route.path and route.methods and compile_path(route.path)[0].match(request.url.path):
            methods |= route.methods
    return ", ".join(sorted(methods))


def body_too_large(_request: Request, exc: Exception) -> Response:
    return problem_response(413, "Content too large", str(exc), slug="content-too-large")


def unexpected_error(_request: Request, _exc: Exception) -> Response:
    return problem_response(
        500,
        "Internal error",
        "Something went wrong on our side; nothing was written. Retry, and contact the operator if it persists.",
        slug="internal-error",
    )
