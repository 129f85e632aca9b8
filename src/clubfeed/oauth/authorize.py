"""The authorization endpoint: check the request, ask the business's admin, answer the client.

Errors go back to the client's redirect URI only once the client is known and the
URI is one it registered exactly; until then (and for repeated parameters, which
make it unclear what was asked) the person sees an error page, so the endpoint
can never be used to bounce a browser to an arbitrary site (RFC 6749 §4.1.2.1).
"""

from __future__ import annotations

from dataclasses import dataclass

from authlib.oauth2.rfc6749 import OAuth2Error
from sqlalchemy import Connection, Engine

from clubfeed import catalogue
from clubfeed.auth import sessions
from clubfeed.oauth.grants import CodeGrant
from clubfeed.oauth.requests import Incoming, OAuthRequest, Payload, repeated
from clubfeed.oauth.server import AuthServer, Reply
from clubfeed.settings import Settings
from clubfeed.storage.engine import read_connection, write_transaction
from clubfeed.tenants import business_name
from clubfeed.web.pages import csrf_ok

APPROVE, DENY = "approve", "deny"
NOT_VALID = "This connection request is not valid"


@dataclass(frozen=True)
class Access:
    """One resource the app asks to read, in words."""

    label: str
    description: str


@dataclass(frozen=True)
class Consent:
    """Ask the admin: may this integrator read this business's resources?"""

    integrator: str
    business: str
    access: tuple[Access, ...]
    redirect_uri: str
    email: str
    csrf_token: str


@dataclass(frozen=True)
class Refused:
    """An error shown to the person, not sent to the client."""

    status: int
    title: str
    error: str
    description: str


@dataclass(frozen=True)
class Redirect:
    location: str


@dataclass(frozen=True)
class LoginFirst:
    """No admin is logged in: log in, then come back to the same request."""


Outcome = Consent | Refused | Redirect | LoginFirst

_TITLES = {
    "invalid_client": "This app is not registered with clubfeed",
    "insecure_transport": "This page must be opened over https",
}


def _refusal(error: OAuth2Error, server: AuthServer) -> Refused | Redirect:
    if error.redirect_uri:
        reply: Reply = server.handle_error_response(None, error)
        return Redirect(reply.headers["Location"])
    title = _TITLES.get(error.error, NOT_VALID)
    return Refused(error.status_code, title, error.error, error.description or "")


def _checked(
    conn: Connection, settings: Settings, incoming: Incoming
) -> tuple[AuthServer, OAuthRequest, CodeGrant] | Refused | Redirect:
    """The request validated by Authlib, or how to refuse it."""
    if (name := repeated(incoming.query)) is not None:
        return Refused(
            400, NOT_VALID, "invalid_request", f"The parameter {name} was sent more than once."
        )
    server = AuthServer(conn, settings)
    try:
        request = OAuthRequest(incoming, incoming.query)
        grant: CodeGrant = server.get_consent_grant(request)
    except OAuth2Error as error:
        return _refusal(error, server)
    return server, request, grant


def review(engine: Engine, settings: Settings, incoming: Incoming) -> Outcome:
    """GET: the consent page for a valid request, once an admin is logged in."""
    with read_connection(engine) as conn:
        checked = _checked(conn, settings, incoming)
        if isinstance(checked, Refused | Redirect):
            return checked
        _server, request, grant = checked
        session = sessions.find(conn, incoming.cookies.get(sessions.COOKIE))
        if session is None:
            return LoginFirst()
        names = set(request.scope.split())
        return Consent(
            integrator=request.client.name,
            business=business_name(conn, business_id=session.admin.business_id) or "",
            access=tuple(
                Access(r.title, r.description) for r in catalogue.RESOURCES if r.name in names
            ),
            redirect_uri=grant.redirect_uri,
            email=session.admin.email,
            csrf_token=session.csrf_token,
        )


def decide(engine: Engine, settings: Settings, incoming: Incoming) -> Outcome:
    """POST from the consent page: check its CSRF token and the whole request again, then answer.

    Approve issues a code (and records the grant and the connection); Deny sends
    access_denied. Either way the client learns the answer at its redirect URI.
    """
    with write_transaction(engine) as conn:
        session = sessions.find(conn, incoming.cookies.get(sessions.COOKIE))
        if session is None:
            return LoginFirst()
        form = Payload(incoming.form).data
        if repeated(incoming.form) is not None or not csrf_ok(
            session.csrf_token, form.get("csrf_token")
        ):
            return Refused(
                403,
                "This approval could not be accepted",
                "invalid_request",
                "The form did not carry this session's security token.",
            )
        checked = _checked(conn, settings, incoming)
        if isinstance(checked, Refused | Redirect):
            return checked
        server, request, grant = checked
        decision = form.get("decision")
        if decision not in (APPROVE, DENY):
            return Refused(
                400,
                "Choose Approve or Deny",
                "invalid_request",
                "The form said neither Approve nor Deny.",
            )
        user = session.admin if decision == APPROVE else None
        reply: Reply = server.create_authorization_response(request, user, grant)
        return Redirect(reply.headers["Location"])
