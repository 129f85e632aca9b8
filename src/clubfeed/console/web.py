"""What every server-rendered page shares: templates, security headers, sessions and CSRF.

Pages that a person logs in to, consents on, or manages credentials from must not
be framed, leak their URL, or load anything from elsewhere; every form carries a
CSRF token bound to the session (or, before login, to a cookie).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import Connection

from clubfeed import catalogue
from clubfeed.api.deps import blocking, state
from clubfeed.auth import sessions
from clubfeed.storage.engine import read_connection, write_transaction
from clubfeed.timefmt import format_us

T = TypeVar("T")

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.filters["when"] = lambda us: (
    "never" if us is None else format_us(us)[:19].replace("T", " ") + " UTC"
)
templates.env.filters["day"] = lambda us: format_us(us)[:10]
templates.env.filters["iso"] = lambda us: format_us(us)
templates.env.filters["words"] = lambda name: catalogue.get(name).title
templates.env.globals["VIA_WORDS"] = {"oauth": "OAuth", "shared_secret": "Shared secret"}

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


def secure_cookies(request: Request) -> bool:
    configured = state(request).settings.cookie_secure
    return request.url.scheme == "https" if configured is None else configured


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a page with the security headers every console page sends."""
    response = templates.TemplateResponse(request, template, context, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    return response


def with_security_headers(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


async def current_session(request: Request) -> sessions.Session | None:
    """The logged-in admin's session, if the cookie names a live one."""
    token = request.cookies.get(sessions.COOKIE)
    if not token:
        return None
    engine = state(request).engine

    def find() -> sessions.Session | None:
        with read_connection(engine) as conn:
            return sessions.find(conn, token)

    return await blocking(find)


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


async def read(request: Request, work: Callable[[Connection], T], *, fresh: bool = False) -> T:
    """Run `work` on a read connection, off the event loop.

    `fresh` first writes this process's buffered API activity, so last use and
    activity include the requests this process has just served.
    """
    app_state = state(request)

    def run() -> T:
        if fresh:
            app_state.recorder.flush()
        with read_connection(app_state.engine) as conn:
            return work(conn)

    return await blocking(run)


async def write(request: Request, work: Callable[[Connection], T]) -> T:
    """Run `work` in one write transaction, off the event loop."""
    engine = state(request).engine

    def run() -> T:
        with write_transaction(engine) as conn:
            return work(conn)

    return await blocking(run)
