"""GET /v1/me: which integrator and business a pair of read credentials speaks for.

A client serving many gyms holds one token per business and needs to know which is
which; an operator checking a setup needs to know what a credential may read.
"""

from __future__ import annotations

import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import Connection

from clubfeed import tenants
from clubfeed.api import openapi
from clubfeed.auth.guard import Reader
from clubfeed.timefmt import format_us
from clubfeed.web.callers import as_reader

router = APIRouter(prefix="/v1", tags=["me"])


@router.get(
    "/me",
    response_class=Response,
    openapi_extra=openapi.me_operation(),
    summary="Who these credentials speak for",
    operation_id="getMe",
)
async def me(request: Request) -> Response:
    def work(conn: Connection, reader: Reader, _body: bytes) -> Response:
        expires = reader.expires_at_us
        body = {
            "integrator": {
                "id": reader.integrator_id,
                "name": tenants.integrator_name(conn, integrator_id=reader.integrator_id),
            },
            "business": {
                "id": reader.business_id,
                "name": tenants.business_name(conn, business_id=reader.business_id),
            },
            "channel": reader.via,
            "resources": list(reader.resources),
            "token_expires_at": None if expires is None else format_us(expires),
        }
        return Response(msgspec.json.encode(body), media_type="application/json")

    return await as_reader(request, None, work)
