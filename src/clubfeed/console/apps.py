"""Connected apps: who may read the business, revoking them, and letting a revoked one back in.

An integrator id in a URL is looked up among the admin's own business's
connections only, so another business's integrator is simply not found. Revoking
asks first on a page of its own (no script needed); every form answers 303 with a
flash that names the channel the action was about.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy import Connection

from clubfeed import catalogue
from clubfeed.auth import connections, flashes
from clubfeed.auth.connections import VIA_OAUTH, VIA_SHARED_SECRET, ConnectionView
from clubfeed.auth.sessions import Session
from clubfeed.console import queries
from clubfeed.console.access import Admin, ConsoleRoute, SignedForm, error_page, form_on, page
from clubfeed.web import flash
from clubfeed.web.pages import redirect
from clubfeed.web.state import read, write

router = APIRouter(prefix="/console", route_class=ConsoleRoute)
PAGE = "/console/apps"
AppsForm = Annotated[SignedForm, Depends(form_on(PAGE))]
ALL_RESOURCES = frozenset(catalogue.NAMES)
CHANNELS = (VIA_OAUTH, VIA_SHARED_SECRET)
ACCESS_WORDS = {VIA_OAUTH: "OAuth access", VIA_SHARED_SECRET: "shared-secret access"}


def _channels(conn: Connection, business_id: int, integrator_id: int) -> list[ConnectionView]:
    """Every channel (revoked ones too) through which this business's integrator connected."""
    return [
        a for a in connections.of_business(conn, business_id) if a.integrator_id == integrator_id
    ]


def _named(channels: list[ConnectionView], via: str | None) -> bool:
    """The app is connected, through `via` if one is named (and `via` is a channel at all)."""
    return bool(channels) and (via is None or via in {c.via for c in channels})


def revoke_outcome(channels: list[ConnectionView], via: str | None) -> str:
    """What revoking `via` (None: every channel) does, in one sentence naming the channel.

    The confirmation page asks with it and the banner afterwards repeats it, so the
    owner reads the same words before and after.
    """
    name = channels[0].integrator_name
    if via is None:
        return (
            f"{name} can no longer read your data, neither with OAuth nor with the shared secret."
        )
    if via == VIA_SHARED_SECRET:
        said = f"{name} can no longer read with the shared secret"
    else:
        said = f"{name} can no longer read with OAuth (its access and refresh tokens stop working)"
    others = [c.via for c in channels if c.via != via and c.revoked_at is None]
    return said + "".join(f"; its {ACCESS_WORDS[other]} is unaffected" for other in others) + "."


def _confirm_url(integrator_id: int, via: str | None) -> str:
    query = f"?{urlencode({'via': via})}" if via else ""
    return f"{PAGE}/{integrator_id}/revoke{query}"


def _not_connected(request: Request, session: Session) -> Response:
    return error_page(
        request,
        session,
        404,
        "No such app",
        "That app is not connected to your business, so nothing was changed.",
    )


@router.get("/apps")
async def apps_page(request: Request, session: Admin) -> Response:
    notice = await flash.notice(request)
    business_id = session.admin.business_id

    def gather(conn: Connection) -> dict[str, Any]:
        return {
            "apps": connections.of_business(conn, business_id),
            **queries.local_time(conn, business_id=business_id),
        }

    context = await read(request, gather, fresh=True)
    return page(
        request,
        "apps.html",
        session=session,
        active="apps",
        everything=ALL_RESOURCES,
        notice=notice,
        **context,
    )


@router.get("/apps/{integrator_id:int}/revoke")
async def confirm_revoke(
    request: Request,
    integrator_id: int,
    session: Admin,
    via: Annotated[str | None, Query()] = None,
) -> Response:
    """Ask before revoking: what will stop working, and what will not."""
    business_id = session.admin.business_id
    channels = await read(
        request, lambda conn: _channels(conn, business_id, integrator_id), fresh=True
    )
    if not _named(channels, via):
        return _not_connected(request, session)
    name = channels[0].integrator_name
    what = f"{name}’s {ACCESS_WORDS[via]}" if via else f"all of {name}’s access"
    after = {
        None: "To let it back in, approve it again from the app itself.",
        VIA_OAUTH: "To let it back in with OAuth, approve it again from the app itself.",
        VIA_SHARED_SECRET: (
            "You can allow it again from the Connected apps page. Anyone else who has the "
            "secret can still read; to cut off everyone, rotate the secret instead."
        ),
    }
    return page(
        request,
        "confirm.html",
        session=session,
        active="apps",
        heading=f"Revoke {what}?",
        consequences=[revoke_outcome(channels, via), after[via]],
        action=f"{PAGE}/{integrator_id}/revoke",
        fields={"via": via} if via else {},
        button="Revoke",
        cancel=PAGE,
    )


@router.post("/apps/{integrator_id:int}/revoke")
async def revoke(request: Request, integrator_id: int, signed: AppsForm) -> Response:
    """Revoke one channel (the form's `via`), or the whole app when the form names none."""
    business_id = signed.session.admin.business_id
    via = signed.text("via") or None
    if via is not None and via not in CHANNELS:
        return _not_connected(request, signed.session)
    if signed.text("confirm") != "yes":
        return redirect(_confirm_url(integrator_id, via))  # nothing changed: ask first

    def run(conn: Connection) -> int | None:
        channels = _channels(conn, business_id, integrator_id)
        if not _named(channels, via):
            return None
        connections.revoke(conn, business_id=business_id, integrator_id=integrator_id, via=via)
        notice = flashes.Flash(flashes.NOTICE, revoke_outcome(channels, via))
        return flashes.put(conn, signed.session_token, notice)

    flash_id = await write(request, run)
    if flash_id is None:
        return _not_connected(request, signed.session)
    return flash.redirect_to(PAGE, flash_id)


@router.post("/apps/{integrator_id:int}/allow")
async def allow_again(request: Request, integrator_id: int, signed: AppsForm) -> Response:
    business_id = signed.session.admin.business_id

    def run(conn: Connection) -> ConnectionView | int | None:
        channels = _channels(conn, business_id, integrator_id)
        secret = next((c for c in channels if c.via == VIA_SHARED_SECRET), None)
        if secret is None:
            return channels[0] if channels else None
        connections.allow_again(conn, business_id=business_id, integrator_id=integrator_id)
        text = f"{secret.integrator_name} can read your data with the shared secret again."
        return flashes.put(conn, signed.session_token, flashes.Flash(flashes.NOTICE, text))

    done = await write(request, run)
    if done is None:
        return _not_connected(request, signed.session)
    if isinstance(done, ConnectionView):
        return error_page(
            request,
            signed.session,
            409,
            "Reconnect this app from the app itself",
            f"{done.integrator_name} connected with OAuth. To let it read your data again, "
            "start the connection from its own settings and approve it here; nothing was changed.",
        )
    return flash.redirect_to(PAGE, done)
