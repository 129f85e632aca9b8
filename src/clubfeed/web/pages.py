"""What every server-rendered page shares: layout, security headers, sessions, cookies, CSRF.

Pages that a person logs in to, consents on, or manages credentials from must not
be framed, leak their URL, or load anything from elsewhere; every form carries a
CSRF token bound to the session (or, before login, to a cookie). Each feature keeps
its own templates and renders them through a `Pages` that also knows the shared layout.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from clubfeed import catalogue
from clubfeed.auth import sessions
from clubfeed.storage.engine import read_connection
from clubfeed.web import times
from clubfeed.web.state import blocking, state

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
STATIC_URL = "/console/static"
LAYOUT_DIR = HERE / "templates"

HOME = "/console"
LOGIN = "/console/login"
LOGIN_CSRF_COOKIE = "clubfeed_login_csrf"

SECURITY_HEADERS = {
    # No form-action: the consent form's 303 must be free to reach the client's redirect URI.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


class Pages:
    """A feature's templates (in `directory`) beside the shared layout and filters."""

    def __init__(self, directory: Path | None = None) -> None:
        self.templates = Jinja2Templates(directory=[*filter(None, [directory]), LAYOUT_DIR])
        env = self.templates.env
        env.filters["when"] = times.when
        env.filters["day"] = times.day
        env.filters["words"] = lambda name: catalogue.get(name).title
        env.globals["VIA_WORDS"] = {"oauth": "OAuth", "shared_secret": "Shared secret"}

    def render(
        self, request: Request, template: str, status_code: int = 200, **context: Any
    ) -> HTMLResponse:
        """Render a page with the security headers every such page sends."""
        response = self.templates.TemplateResponse(
            request, template, context, status_code=status_code
        )
        response.headers.update(SECURITY_HEADERS)
        return response


_layout = Pages()

# Starlette's own errors under the console: what a person who typed or followed a link sees.
_CONSOLE_ERRORS = {
    404: (
        "Page not found",
        "There is no console page at this address. It may have moved, or the link may be "
        "mistyped; start again from the console.",
    ),
    405: (
        "This page cannot do that",
        "This address does not answer that kind of request, so nothing was changed; "
        "start again from the console.",
    ),
}


def is_console(path: str) -> bool:
    """A path the console owns, its static files included (not "/consoles" or "/v1/…")."""
    return path == HOME or path.startswith(HOME + "/")


def console_error(request: Request, status: int, headers: Mapping[str, str] | None) -> Response:
    """An HTML page, in the console's layout, for an unknown console path or wrong method."""
    title, message = _CONSOLE_ERRORS.get(
        status, ("Something is wrong with this request", "Nothing was changed.")
    )
    return notice_page(request, status, title, message, home=True, headers=headers)


def notice_page(
    request: Request,
    status: int,
    title: str,
    message: str,
    *,
    retry_url: str | None = None,
    home: bool = False,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """A page that only explains (an outage, a wrong address), whoever the visitor is.

    It never looks up a session, so it works while the database is down.
    """
    response = _layout.render(
        request,
        "error.html",
        status,
        session=None,
        title=title,
        message=message,
        retry_url=retry_url,
        home=home,
    )
    response.headers.update(headers or {})
    return response


def with_security_headers(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


def redirect(url: str) -> Response:
    """A 303, so the browser follows with a GET, carrying the security headers."""
    return with_security_headers(RedirectResponse(url, status_code=303))


def login_url(next_path: str) -> str:
    """The console's login page, returning to `next_path` afterwards."""
    return f"{LOGIN}?next={quote(next_path, safe='/')}"


def secure_cookies(request: Request) -> bool:
    configured = state(request).settings.cookie_secure
    return request.url.scheme == "https" if configured is None else configured


def set_cookie(
    request: Request, response: Response, name: str, value: str, max_age: int | None
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request),
        path="/",
    )


async def current_session(request: Request) -> sessions.Session | None:
    """The logged-in admin's session, if the cookie names a live one."""
    token = request.cookies.get(sessions.COOKIE)
    if not token:
        return None
    engine = state(request).engine

    def find() -> sessions.Session | None:
        with read_connection(engine) as conn:
            return sessions.find(conn, token)

    session = await blocking(find)
    if session is not None:
        # For the request's log line (`web.observe`).
        request.state.business_id = session.admin.business_id
    return session


def csrf_ok(expected: str | None, sent: object) -> bool:
    """Constant-time check of a form's CSRF token against the one it must equal."""
    return (
        isinstance(sent, str)
        and bool(expected)
        and hmac.compare_digest(sent.encode(), (expected or "").encode())
    )


def login_csrf(request: Request) -> str:
    """The pre-login CSRF token: the cookie's value, or a new one to set."""
    return request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
