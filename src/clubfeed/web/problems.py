"""The app's exception handlers: every error answered in the one shape (`web.rfc9457`).

Domain errors know nothing of HTTP; `rfc9457.status_for` maps them to statuses by
class. Database errors that mean "unavailable for now" (as
`storage.outages` decides) answer 503 with Retry-After, in the shape of the surface
asked: problem+json for the API, RFC 6749 JSON for the OAuth client endpoints, an
HTML page for the console and the consent page. Any other database error is a bug
and reaches the catch-all 500.
"""

from __future__ import annotations

import logging

import msgspec
from fastapi import Request
from fastapi.responses import Response
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clubfeed import catalogue
from clubfeed.errors import ClubfeedError, Forbidden, NotFound, Unauthenticated
from clubfeed.storage import outages
from clubfeed.web import pages
from clubfeed.web.head import with_head
from clubfeed.web.rfc9457 import RETRY_AFTER_S, problem_response, status_for, unavailable

log = logging.getLogger(__name__)


async def domain_error(_request: Request, exc: Exception) -> Response:
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


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (unknown route, wrong method) in the same shape.

    Under the console (pages and their static files) a person is reading, so they get
    an HTML page in the console's layout instead.
    """
    assert isinstance(exc, HTTPException)
    if pages.is_console(request.scope["path"]):
        headers = exc.headers
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": _allowed_methods(request)}
        return pages.console_error(request, exc.status_code, headers)
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
    return ", ".join(sorted(with_head(methods, request.url.path)))


async def body_too_large(_request: Request, exc: Exception) -> Response:
    return problem_response(413, "Content too large", str(exc), slug="content-too-large")


async def body_stalled(_request: Request, exc: Exception) -> Response:
    return problem_response(
        408, "Request timeout", str(exc), slug="request-timeout", headers={"Connection": "close"}
    )


def internal_error(exc: BaseException) -> Response:
    """The 500 for a bug: what it may have done, and what to do."""
    outcome = (
        "this write may or may not have been saved"
        if isinstance(exc, outages.CommitFailed)
        else "nothing was written"
    )
    return problem_response(
        500,
        "Internal error",
        f"Something went wrong on our side; {outcome}. Retry, and contact the operator if it persists.",
        slug="internal-error",
    )


async def unexpected_error(_request: Request, exc: Exception) -> Response:
    return internal_error(exc)


class Unexpected:
    """Answer a bug's 500 from inside the middleware stack, then let the error go on.

    Starlette answers an unhandled error from its outermost layer, past every
    middleware, so that 500 would carry no X-Request-ID (nor the other headers the
    stack adds). Sent from here, it passes through them all; re-raised, the error is
    still logged with its traceback by the server.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as exc:
            if not started:
                await internal_error(exc)(scope, receive, send)
            raise


# The surfaces that answer in their own shape; the rest of the app answers problem+json.
_OAUTH_CLIENT_PATHS = frozenset({"/oauth/token", "/oauth/revoke"})
_PAGE_PATHS = ("/console", "/oauth/authorize")
_READ_METHODS = frozenset({"GET", "HEAD"})


async def database_error(request: Request, exc: Exception) -> Response:
    """503 with Retry-After while the database is unavailable; other database errors are bugs.

    What it says about the request's own effect is what the transaction promises: an
    error before the commit wrote nothing, a failed commit leaves the outcome unknown.
    """
    if not outages.unavailable(exc):
        raise exc  # to the catch-all: 500, and the traceback logged (without SQL parameters)
    path = request.url.path
    log.warning(
        "%s %s answered 503: the database is unavailable (%s)",
        request.method,
        path,
        outages.reason(exc),
    )
    headers = {"Retry-After": str(RETRY_AFTER_S)}  # the OAuth and page answers ask it too
    unknown = isinstance(exc, outages.CommitFailed)
    reading = request.method in _READ_METHODS
    if path in _OAUTH_CLIENT_PATHS:
        return _oauth_unavailable(unknown, headers)
    if any(path == page or path.startswith(page + "/") for page in _PAGE_PATHS):
        return _page_unavailable(request, unknown, reading, headers)
    if unknown:
        detail = (
            "The database failed while committing this write, so it may or may not have been "
            "saved. Resending it is safe: the same records are stored again, and with the same "
            "Idempotency-Key the first answer is replayed."
        )
    else:
        written = "" if reading else "; nothing was written"
        detail = (
            "The database is unavailable at the moment (restarting, unreachable or "
            f"overloaded){written}. Retry after the seconds in Retry-After."
        )
    return unavailable(detail)


def _oauth_unavailable(unknown: bool, headers: dict[str, str]) -> Response:
    """RFC 6749's JSON, which OAuth clients parse; `temporarily_unavailable` is its word for this."""
    if unknown:
        description = (
            "The database failed while committing, so the tokens may or may not have been "
            "issued. Retry; if that answers invalid_grant, the first attempt went through and "
            "its grant ended as a replay: send the user through authorization again."
        )
    else:
        description = (
            "The database is unavailable at the moment; nothing was changed. "
            "Retry after the seconds in Retry-After."
        )
    body = {"error": "temporarily_unavailable", "error_description": description}
    return Response(
        msgspec.json.encode(body),
        503,
        headers={**headers, "Cache-Control": "no-store", "Pragma": "no-cache"},
        media_type="application/json",
    )


def _page_unavailable(
    request: Request, unknown: bool, reading: bool, headers: dict[str, str]
) -> Response:
    if unknown:
        message = (
            "The database failed while saving your change, so it may or may not have been "
            "saved. In a moment, open the page again to see which."
        )
    elif reading:
        message = (
            "Its database cannot be reached at the moment, usually for a few seconds while "
            "it restarts. Try again in a moment."
        )
    else:
        message = (
            "Its database cannot be reached at the moment, so nothing you submitted was "
            "saved. Go back and submit it again in a moment."
        )
    query = request.url.query
    retry_url = request.url.path + (f"?{query}" if query else "") if reading else None
    return pages.notice_page(
        request,
        503,
        "clubfeed is briefly unavailable",
        message,
        retry_url=retry_url,
        headers=headers,
    )


async def client_disconnected(_request: Request, _exc: Exception) -> Response:
    """The client left before its request was read: nobody is left to answer.

    The status is nginx's 499 ("client closed request"), seen only in logs and metrics;
    without this handler the disconnect would surface as a 500 and an error traceback.
    """
    return Response(status_code=499)
