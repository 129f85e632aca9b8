"""Liveness and readiness, for load balancers and orchestrators (no credentials).

`/healthz` says the process serves HTTP and never touches the database, so a
database outage never gets healthy processes restarted. `/readyz` runs one query
and says whether this process can serve requests now: the database answers and its
schema is the one this code was written for.
"""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import Response

from clubfeed.storage.migrate import schema_status
from clubfeed.web.rfc9457 import PROBLEM_JSON, unavailable
from clubfeed.web.state import read

router = APIRouter(tags=["service"])

_PROBLEM: dict[str, Any] = {
    "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
}
_STATUS_BODY = {"type": "object", "properties": {"status": {"type": "string"}}}
_READY_BODY = {
    "type": "object",
    "required": ["status", "schema"],
    "properties": {
        "status": {"const": "ready"},
        "schema": {
            "enum": ["current", "newer"],
            "description": "newer: a newer clubfeed migrated the database (say, mid-rollback)",
        },
    },
}
_NOT_READY = {
    "missing": "The database holds no clubfeed schema yet: run `clubfeed db upgrade`.",
    "behind": (
        "The database schema is older than this version of clubfeed needs: "
        "run `clubfeed db upgrade`."
    ),
}


@router.get(
    "/healthz",
    summary="Liveness: the process serves HTTP (never touches the database)",
    responses={200: {"content": {"application/json": {"schema": _STATUS_BODY}}}},
)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: the database answers and its schema is current",
    description=(
        "Runs one query. 503 while the database is unreachable or overloaded (with "
        "Retry-After), or while its schema is behind this code (run `clubfeed db upgrade`)."
    ),
    response_class=Response,
    responses={
        200: {
            "description": "Ready to serve",
            "content": {"application/json": {"schema": _READY_BODY}},
        },
        503: {
            "description": "Not ready: the detail says why",
            "headers": {
                "Retry-After": {
                    "description": "Seconds to wait, while the database is unavailable",
                    "schema": {"type": "integer"},
                }
            },
            **_PROBLEM,
        },
    },
)
async def readyz(request: Request) -> Response:
    status = await read(request, schema_status)
    if status in _NOT_READY:
        # No Retry-After: a schema behind the code waits for an operator, not for time.
        return unavailable(_NOT_READY[status], passes=False)
    body = msgspec.json.encode({"status": "ready", "schema": status})
    return Response(body, media_type="application/json")
