"""Logging in and out of the console.

The login form is protected by a double-submit CSRF cookie (there is no session
yet), attempts are rate-limited before any password is checked (every attempt
counts against the client address, only failed ones against the email), and a
successful login always starts a new session.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy import Connection

from clubfeed.auth import admins, flashes, sessions
from clubfeed.auth.passwords import hasher
from clubfeed.console.access import ConsoleRoute, form_on, page, safe_next
from clubfeed.web.pages import (
    HOME,
    LOGIN,
    LOGIN_CSRF_COOKIE,
    csrf_ok,
    current_session,
    login_csrf,
    redirect,
    secure_cookies,
    set_cookie,
)
from clubfeed.web.ratelimit import client_address
from clubfeed.web.state import blocking, read, state, write

router = APIRouter(prefix="/console", route_class=ConsoleRoute)

WRONG_CREDENTIALS = (
    "That email and password don't match an admin account. Check both and try again."
)


def _login_page(
    request: Request,
    next_path: str,
    *,
    status: int = 200,
    error: str | None = None,
    email: str = "",
    headers: dict[str, str] | None = None,
) -> Response:
    token = login_csrf(request)
    response = page(
        request,
        "login.html",
        status,
        session=None,
        csrf_token=token,
        next_path=next_path,
        error=error,
        email=email,
    )
    if request.cookies.get(LOGIN_CSRF_COOKIE) != token:
        set_cookie(request, response, LOGIN_CSRF_COOKIE, token, max_age=None)
    response.headers.update(headers or {})
    return response


@router.get("/login")
async def login_form(
    request: Request, next_path: Annotated[str | None, Query(alias="next")] = None
) -> Response:
    target = safe_next(next_path)
    if await current_session(request) is not None:
        return redirect(target)
    return _login_page(request, target)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    target = safe_next(form.get("next"))
    email, password = form.get("email"), form.get("password")
    email = email.strip() if isinstance(email, str) else ""
    if not csrf_ok(request.cookies.get(LOGIN_CSRF_COOKIE), form.get("csrf_token")):
        return _login_page(
            request,
            target,
            status=403,
            email=email,
            error="This login form had expired, so nothing was checked. Please try again.",
        )
    if not email or not isinstance(password, str) or not password:
        return _login_page(
            request, target, status=400, email=email, error="Enter your email and password."
        )

    limit = state(request).login_limit
    # Keyed like /v1's: an IPv6 client cannot take a fresh bucket from each address of its /64.
    ip_key, email_key = f"ip:{client_address(request)}", f"email:{admins.normalize_email(email)}"
    # The address pays for every attempt (`hit` checks and counts), so one address cannot
    # guess across many emails. The email pays only for wrong passwords (below): many
    # addresses together still get few guesses at it, but neither its owner's logins nor
    # attempts refused here use up its allowance, so nobody locks the owner out cheaply.
    waits = await blocking(
        lambda: [wait for wait in (limit.test(email_key), limit.hit(ip_key)) if wait is not None]
    )
    if waits:
        wait = max(waits)
        return _login_page(
            request,
            target,
            status=429,
            email=email,
            error=f"Too many login attempts. Wait {wait} seconds, then try again.",
            headers={"Retry-After": str(wait)},
        )

    settings = state(request).settings

    login = await read(
        request, lambda conn: admins.authenticate(conn, hasher(settings), email, password)
    )
    if login is None:
        await blocking(lambda: limit.hit(email_key))
        return _login_page(request, target, status=401, email=email, error=WRONG_CREDENTIALS)

    def sign_in(conn: Connection) -> str:
        if login.new_hash is not None:
            admins.store_hash(conn, login.admin.id, login.new_hash)
        return sessions.start(conn, login.admin, settings.session_ttl_s)

    token = await write(request, sign_in)
    response = redirect(target)
    set_cookie(request, response, sessions.COOKIE, token, max_age=settings.session_ttl_s)
    return response


@router.post("/logout", dependencies=[Depends(form_on(HOME))])
async def logout(request: Request) -> Response:
    token = request.cookies.get(sessions.COOKIE, "")

    def log_out(conn: Connection) -> None:
        sessions.end(conn, token)
        flashes.forget_session(conn, token)

    await write(request, log_out)
    response = redirect(LOGIN)
    response.delete_cookie(
        sessions.COOKIE, path="/", secure=secure_cookies(request), httponly=True, samesite="lax"
    )
    return response
