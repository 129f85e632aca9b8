"""The pages that show the business its data and who reads it: overview and activity."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import Connection

from clubfeed import activity
from clubfeed.auth import connections
from clubfeed.console import queries
from clubfeed.console.access import Admin, ConsoleRoute, page
from clubfeed.tenants import business_name
from clubfeed.web.state import read

router = APIRouter(prefix="/console", route_class=ConsoleRoute)

MAX_LOCATIONS = 100
RECENT_REQUESTS = 100


@router.get("")
async def overview(request: Request, session: Admin) -> Response:
    business_id = session.admin.business_id

    def gather(conn: Connection) -> dict[str, Any]:
        counts = queries.live_counts(conn, business_id=business_id)
        return {
            "business_name": business_name(conn, business_id=business_id),
            "business_id": business_id,
            "counts": counts,
            "locations": queries.locations(conn, business_id=business_id, limit=MAX_LOCATIONS),
            "apps": connections.of_business(conn, business_id),
            **queries.local_time(conn, business_id=business_id),
        }

    context = await read(request, gather, fresh=True)
    return page(request, "overview.html", session=session, active="overview", **context)


@router.get("/activity")
async def activity_page(request: Request, session: Admin) -> Response:
    business_id = session.admin.business_id

    def gather(conn: Connection) -> dict[str, Any]:
        per_integrator = activity.requests_per_integrator(conn, business_id)
        return {
            "recent": activity.recent(conn, business_id, limit=RECENT_REQUESTS),
            "per_integrator": sorted(per_integrator.items(), key=lambda item: (-item[1], item[0])),
            **queries.local_time(conn, business_id=business_id),
        }

    context = await read(request, gather, fresh=True)
    return page(
        request,
        "activity.html",
        session=session,
        active="activity",
        limit=RECENT_REQUESTS,
        **context,
    )
