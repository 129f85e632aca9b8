"""Connected apps: who may read the business, revoking them, and letting a revoked one back in.

An integrator id in a URL is looked up among the admin's own business's
connections only, so another business's integrator is simply not found.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy import Connection

from clubfeed import catalogue
from clubfeed.auth import connections
from clubfeed.auth.sessions import Session
from clubfeed.console.access import Admin, ConsoleRoute, SignedForm, error_page, form_on, page
from clubfeed.web.pages import redirect
from clubfeed.web.state import read, write

router = APIRouter(prefix="/console", route_class=ConsoleRoute)
PAGE = "/console/apps"
AppsForm = Annotated[SignedForm, Depends(form_on(PAGE))]
ALL_RESOURCES = frozenset(catalogue.NAMES)
CHANNELS = (connections.VIA_OAUTH, connections.VIA_SHARED_SECRET)


def _find(
    conn: Connection, business_id: int, integrator_id: int, via: str | None = None
) -> connections.ConnectionView | None:
    """A channel of this business's integrator (through `via`, if given)."""
    return next(
        (
            a
            for a in connections.of_business(conn, business_id)
            if a.integrator_id == integrator_id and via in (None, a.via)
        ),
        None,
    )


def _not_connected(request: Request, session: Session) -> Response:
    return error_page(
        request,
        session,
        404,
        "No such app",
        "That app is not connected to your business, so nothing was changed.",
    )


@router.get("/apps")
async def apps_page(
    request: Request,
    session: Admin,
    revoked: Annotated[str | None, Query()] = None,
    allowed: Annotated[str | None, Query()] = None,
) -> Response:
    apps = await read(
        request, lambda conn: connections.of_business(conn, session.admin.business_id), fresh=True
    )
    # Which app the last action was about (after its redirect), to confirm it in words.
    names = {str(app.integrator_id): app.integrator_name for app in apps}
    notice = None
    if revoked in names:
        notice = f"{names[revoked]} can no longer read your data."
    elif allowed in names:
        notice = f"{names[allowed]} can read your data with the shared secret again."
    return page(
        request,
        "apps.html",
        session=session,
        active="apps",
        apps=apps,
        everything=ALL_RESOURCES,
        notice=notice,
    )


@router.post("/apps/{integrator_id:int}/revoke")
async def revoke(request: Request, integrator_id: int, signed: AppsForm) -> Response:
    """Revoke one channel (the form's `via`), or the whole app when the form names none."""
    business_id = signed.session.admin.business_id
    via = signed.text("via") or None
    if via is not None and via not in CHANNELS:
        return _not_connected(request, signed.session)

    def run(conn: Connection) -> bool:
        if _find(conn, business_id, integrator_id) is None:
            return False
        connections.revoke(conn, business_id=business_id, integrator_id=integrator_id, via=via)
        return True

    if not await write(request, run):
        return _not_connected(request, signed.session)
    return redirect(f"{PAGE}?revoked={integrator_id}")


@router.post("/apps/{integrator_id:int}/allow")
async def allow_again(request: Request, integrator_id: int, signed: AppsForm) -> Response:
    business_id = signed.session.admin.business_id

    def run(conn: Connection) -> connections.ConnectionView | None:
        app = _find(conn, business_id, integrator_id, connections.VIA_SHARED_SECRET)
        app = app or _find(conn, business_id, integrator_id)
        if app is not None and app.via == connections.VIA_SHARED_SECRET:
            connections.allow_again(conn, business_id=business_id, integrator_id=integrator_id)
        return app

    app = await write(request, run)
    if app is None:
        return _not_connected(request, signed.session)
    if app.via != connections.VIA_SHARED_SECRET:
        return error_page(
            request,
            signed.session,
            409,
            "Reconnect this app from the app itself",
            f"{app.integrator_name} connected with OAuth. To let it read your data again, "
            "start the connection from its own settings and approve it here; nothing was changed.",
        )
    return redirect(f"{PAGE}?allowed={integrator_id}")
