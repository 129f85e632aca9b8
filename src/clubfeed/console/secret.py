"""The shared secret: who reads with it, and rotating it.

Only the secret's hash is stored, so the console can never show the current one;
a rotation answers with the new secret once, in a response that is not cached.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import Connection

from clubfeed.auth import connections, credentials
from clubfeed.auth.sessions import Session
from clubfeed.console.access import Admin, ConsoleRoute, SignedForm, form_on, page
from clubfeed.web.state import read, write

router = APIRouter(prefix="/console", route_class=ConsoleRoute)
PAGE = "/console/secret"


async def _secret_page(
    request: Request, session: Session, *, status: int = 200, error: str | None = None
) -> Response:
    business_id = session.admin.business_id

    def holders(conn: Connection) -> list[connections.ConnectionView]:
        return [
            app
            for app in connections.of_business(conn, business_id)
            if app.via == connections.VIA_SHARED_SECRET
        ]

    apps = await read(request, holders, fresh=True)
    return page(
        request, "secret.html", status, session=session, active="secret", apps=apps, error=error
    )


@router.get("/secret")
async def secret_page(request: Request, session: Admin) -> Response:
    return await _secret_page(request, session)


@router.post("/secret/rotate")
async def rotate(
    request: Request, signed: Annotated[SignedForm, Depends(form_on(PAGE))]
) -> Response:
    session = signed.session
    if signed.text("confirm") != "yes":
        return await _secret_page(
            request,
            session,
            status=400,
            error="Tick the box to confirm that apps using the current secret will stop working.",
        )
    business_id = session.admin.business_id
    secret = await write(request, lambda conn: credentials.rotate_shared_secret(conn, business_id))
    assert secret is not None, "a logged-in admin's business exists"
    return page(request, "secret_new.html", session=session, active="secret", secret=secret)
