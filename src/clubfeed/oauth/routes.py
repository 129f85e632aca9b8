"""OAuth 2 endpoints: authorize (with consent), token, revoke, and server metadata.

Handlers only read the request and shape the answer; the protocol runs in the
thread pool (Authlib is synchronous), one database transaction per request.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from clubfeed.oauth import authorize as flow
from clubfeed.oauth import docs, endpoints
from clubfeed.oauth.requests import incoming
from clubfeed.oauth.server import Reply, metadata
from clubfeed.web.hosts import public_base
from clubfeed.web.pages import Pages, login_url, redirect
from clubfeed.web.state import blocking, state

router = APIRouter(tags=["oauth"])
page = Pages(Path(__file__).parent / "templates").render

AUTHORIZE = "/oauth/authorize"


def _page(request: Request, outcome: flow.Outcome) -> Response:
    # The consent form posts the authorization request back as it came, for a second check;
    # login returns the admin to it.
    here = f"{AUTHORIZE}?{request.url.query}"
    if isinstance(outcome, flow.Redirect):
        # A 303 (Authlib says 302): the browser must follow with a GET after the consent POST.
        return redirect(outcome.location)
    if isinstance(outcome, flow.LoginFirst):
        return redirect(login_url(here))
    if isinstance(outcome, flow.Refused):
        return page(request, "oauth_error.html", outcome.status, session=None, refused=outcome)
    return page(request, "consent.html", session=None, consent=outcome, action=here)


def _json(reply: Reply) -> Response:
    return Response(json.dumps(dict(reply.body)), reply.status, headers=dict(reply.headers))


async def _client_endpoint(request: Request, handler: endpoints.Handler) -> Response:
    """Run a client-authenticated endpoint (token, revoke) in the thread pool, rate-limited."""
    app = state(request)
    reply = await blocking(
        partial(handler, app.engine, app.settings, app.token_limit, await incoming(request))
    )
    return _json(reply)


@router.get(
    AUTHORIZE,
    summary="Ask a business to let you read its data (authorization code with PKCE)",
    description=(
        "Send the business's admin here in a browser. After logging in (if needed) they see "
        "who asks for what and approve or deny; either way their browser returns to your "
        "redirect URI. Exchange the code at /oauth/token within 60 seconds."
    ),
    response_class=Response,
    responses=docs.AUTHORIZE_RESPONSES,
    openapi_extra=docs.AUTHORIZE_PARAMETERS,
)
async def authorize(request: Request) -> Response:
    app = state(request)
    outcome = await blocking(
        partial(flow.review, app.engine, app.settings, await incoming(request))
    )
    return _page(request, outcome)


@router.post(
    AUTHORIZE,
    summary="The consent page's Approve or Deny (sent by the admin's browser)",
    description=(
        "Not for clients: the consent page posts here with the admin's session cookie and "
        "its security token, and the browser is sent on to your redirect URI."
    ),
    response_class=Response,
    # Never 200: the answer is a redirect or an error page (FastAPI documents this code).
    status_code=303,
    responses=docs.CONSENT_RESPONSES,
    openapi_extra=docs.CONSENT_REQUEST,
)
async def consent(request: Request) -> Response:
    """The consent page's Approve or Deny."""
    app = state(request)
    outcome = await blocking(
        partial(flow.decide, app.engine, app.settings, await incoming(request))
    )
    return _page(request, outcome)


@router.post(
    "/oauth/token",
    summary="Exchange an authorization code, or a refresh token, for tokens",
    description=(
        "Authenticate with HTTP Basic (client_id:client_secret) or with client_id and "
        "client_secret in the form. Codes are good once, for 60 seconds; refresh tokens are "
        "good once and every refresh returns a new one. Presenting a used code or refresh "
        "token again revokes every token of its grant. Errors follow RFC 6749 §5.2."
    ),
    response_class=Response,
    responses=docs.TOKEN_RESPONSES,
    openapi_extra=docs.TOKEN_REQUEST,
)
async def token(request: Request) -> Response:
    return await _client_endpoint(request, endpoints.token)


@router.post(
    "/oauth/revoke",
    summary="Revoke an access or refresh token (RFC 7009)",
    description=(
        "Revoking a refresh token revokes its whole grant (every token from that approval); "
        "revoking an access token ends just that token. Unknown tokens answer 200 too."
    ),
    response_class=Response,
    responses=docs.REVOKE_RESPONSES,
    openapi_extra=docs.REVOKE_REQUEST,
)
async def revoke(request: Request) -> Response:
    return await _client_endpoint(request, endpoints.revoke)


@router.get(
    "/.well-known/oauth-authorization-server",
    summary="Authorization server metadata (RFC 8414)",
    response_class=JSONResponse,
    responses=docs.METADATA_RESPONSES,
)
async def server_metadata(request: Request) -> JSONResponse:
    return JSONResponse(metadata(public_base(request)))
