"""Who may use a console page: a logged-in admin, and for a form also its CSRF token.

Dependencies raise `LoginRequired` or `CsrfRejected`; `ConsoleRoute` turns them
into a redirect to the login page or a 403 page, so a handler only runs for an
admin whose form (if any) is genuine, and a rejected form has changed nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.datastructures import FormData

from clubfeed.auth import sessions
from clubfeed.auth.sessions import Session
from clubfeed.web.pages import HOME, Pages, csrf_ok, current_session, login_url, redirect

pages = Pages(Path(__file__).parent / "templates")
page = pages.render


class LoginRequired(Exception):
    """No live session: log in, then come back to `next_path`."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class CsrfRejected(Exception):
    """A form without this session's CSRF token: refused before anything changed."""

    def __init__(self, session: Session) -> None:
        super().__init__("CSRF token missing or wrong")
        self.session = session


@dataclass(frozen=True)
class SignedForm:
    """A form posted by a logged-in admin with the session's own CSRF token."""

    session: Session
    form: FormData
    session_token: str
    """The session's cookie value: what a flash for the next page is sealed with."""

    def text(self, name: str) -> str:
        value = self.form.get(name)
        return value if isinstance(value, str) else ""


def safe_next(value: object) -> str:
    """`value` if it is a path on this site, else the console's home.

    Only "/…" passes: not "//host" or "/\\host" (browsers read both as another
    host), nor anything with whitespace or control characters, which browsers
    strip before they parse.
    """
    if (
        not isinstance(value, str)
        or not value.startswith("/")
        or value.startswith(("//", "/\\"))
        or "\\" in value
        or any(ord(c) <= 0x20 or ord(c) == 0x7F for c in value)
    ):
        return HOME
    parts = urlsplit(value)
    return HOME if parts.scheme or parts.netloc else value


def error_page(
    request: Request, session: Session | None, status: int, title: str, message: str
) -> Response:
    return page(
        request, "error.html", status, session=session, active=None, title=title, message=message
    )


class ConsoleRoute(APIRoute):
    """Answers `LoginRequired` with a 303 to the login page and `CsrfRejected` with a 403 page."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginRequired as exc:
                return redirect(login_url(exc.next_path))
            except CsrfRejected as exc:
                return error_page(
                    request,
                    exc.session,
                    403,
                    "This form could not be accepted",
                    "It did not carry this session's security token, so nothing was changed. "
                    "Go back, reload the page and try again.",
                )

        return guarded


async def admin_session(request: Request) -> Session:
    """The logged-in admin's session; otherwise to the login page and back here."""
    session = await current_session(request)
    if session is None:
        query = request.url.query
        raise LoginRequired(request.url.path + (f"?{query}" if query else ""))
    return session


def form_on(page_path: str) -> Callable[[Request], Awaitable[SignedForm]]:
    """A dependency for a form that lives on `page_path` (where login returns to)."""

    async def signed_form(request: Request) -> SignedForm:
        session = await current_session(request)
        if session is None:
            raise LoginRequired(page_path)
        form = await request.form()
        if not csrf_ok(session.csrf_token, form.get("csrf_token")):
            raise CsrfRejected(session)
        return SignedForm(session, form, request.cookies.get(sessions.COOKIE, ""))

    return signed_form


Admin = Annotated[Session, Depends(admin_session)]
"""A handler parameter of this type runs the handler only for a logged-in admin."""
