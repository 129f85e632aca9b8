"""The shared secret: who reads with it, and rotating it.

Only the secret's hash is stored, so the console can never show the current one.
Rotating takes a confirmation page, then answers 303 to a page that shows the new
secret once, from a flash sealed in the rotation's own transaction: a reload of that
page neither rotates again nor shows the secret again.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import Connection

from clubfeed.auth import connections, credentials, flashes
from clubfeed.auth.sessions import Session
from clubfeed.console import queries
from clubfeed.console.access import Admin, ConsoleRoute, SignedForm, form_on, page
from clubfeed.web import flash
from clubfeed.web.pages import redirect
from clubfeed.web.state import read, write

router = APIRouter(prefix="/console", route_class=ConsoleRoute)
PAGE = "/console/secret"
CONFIRM = "/console/secret/rotate"
SHOWN_ONCE = "/console/secret/new"


def _holders(conn: Connection, business_id: int) -> list[connections.ConnectionView]:
    """Apps that have read with the shared secret, revoked ones included."""
    return [
        app
        for app in connections.of_business(conn, business_id)
        if app.via == connections.VIA_SHARED_SECRET
    ]


async def _gather(request: Request, session: Session) -> dict[str, Any]:
    business_id = session.admin.business_id

    def run(conn: Connection) -> dict[str, Any]:
        return {
            "apps": _holders(conn, business_id),
            **queries.local_time(conn, business_id=business_id),
        }

    return await read(request, run, fresh=True)


@router.get("/secret")
async def secret_page(request: Request, session: Admin) -> Response:
    context = await _gather(request, session)
    return page(request, "secret.html", session=session, active="secret", **context)


@router.get("/secret/rotate")
async def confirm_rotate(request: Request, session: Admin) -> Response:
    context = await _gather(request, session)
    readers = [app.integrator_name for app in context["apps"] if app.revoked_at is None]
    cut_off = (
        f"{', '.join(readers)} can no longer read with the shared secret"
        if readers
        else "Anyone still using the current secret can no longer read with it"
    )
    return page(
        request,
        "confirm.html",
        session=session,
        active="secret",
        heading="Rotate the shared secret?",
        consequences=[
            f"{cut_off} until you paste the new secret into their settings; "
            "access granted with OAuth is unaffected.",
            "The current secret stops working at once, and the new one is shown only once.",
        ],
        action=CONFIRM,
        fields={},
        button="Rotate shared secret",
        cancel=PAGE,
    )


@router.post("/secret/rotate")
async def rotate(
    request: Request, signed: Annotated[SignedForm, Depends(form_on(PAGE))]
) -> Response:
    if signed.text("confirm") != "yes":
        return redirect(CONFIRM)  # nothing changed: ask first
    business_id = signed.session.admin.business_id

    def run(conn: Connection) -> int:
        secret = credentials.rotate_shared_secret(conn, business_id)
        assert secret is not None, "a logged-in admin's business exists"
        return flashes.put(conn, signed.session_token, flashes.Flash(flashes.SECRET, secret))

    return flash.redirect_to(SHOWN_ONCE, await write(request, run))


@router.get("/secret/new")
async def new_secret(request: Request, session: Admin) -> Response:
    """The new secret, the first time this page is loaded after the rotation; never again."""
    shown = await flash.take(request)
    secret = shown.text if shown is not None and shown.kind == flashes.SECRET else None
    return page(
        request,
        "secret_new.html",
        200 if secret else 410,
        session=session,
        active="secret",
        secret=secret,
    )
