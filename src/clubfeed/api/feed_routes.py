"""The integrator's side: complete transfer, lookup by ids, modified range, one record.

Handlers hand the stored JSON straight through: a page's body is built from the
rows' text with no per-record objects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import Connection

from clubfeed.api import openapi, params
from clubfeed.api.deps import blocking, signer, state
from clubfeed.auth import guard
from clubfeed.catalogue import Resource
from clubfeed.errors import BadRequest, ErrorItem, NotFound
from clubfeed.feed import queries
from clubfeed.ingest.validate import RecordId, decode
from clubfeed.storage.engine import read_connection
from clubfeed.timefmt import format_us

JSON = "application/json"
MAX_LOOKUP_IDS = 10_000
T = TypeVar("T")


class LookupBody(msgspec.Struct, forbid_unknown_fields=True):
    ids: list[RecordId]


def _lookup_body(items: str, missing: list[str]) -> bytes:
    return b'{"data":[' + items.encode() + b'],"missing":' + msgspec.json.encode(missing) + b"}"


def _page_response(request: Request, page: queries.Page) -> Response:
    next_cursor = b"null" if page.next_cursor is None else b'"' + page.next_cursor.encode() + b'"'
    body = b"".join(
        (
            b'{"data":[',
            page.items.encode(),
            b'],"next_cursor":',
            next_cursor,
            b',"consistent_until":"',
            format_us(page.consistent_until_us).encode(),
            b'"}',
        )
    )
    headers = {}
    if page.next_cursor is not None:
        headers["Link"] = (
            f'<{request.url.include_query_params(cursor=page.next_cursor)}>; rel="next"'
        )
    return Response(body, headers=headers, media_type=JSON)


async def _as_reader(request: Request, work: Callable[[Connection, int], T]) -> T:
    """Authenticate the reader and run `work(conn, business_id)` on one pooled connection."""
    engine = state(request).engine

    def run() -> T:
        with read_connection(engine) as conn:
            return work(conn, guard.reader(conn, request.headers))

    return await blocking(run)


def router(resource: Resource) -> APIRouter:
    """The read endpoints of one resource, described in the OpenAPI document from the catalogue."""
    api = APIRouter(prefix=f"/v1/{resource.name}", tags=[resource.name])
    docs = openapi.ReadDocs(resource)

    @api.get(
        "", response_class=Response, openapi_extra=docs.list_operation(), summary=docs.list_summary
    )
    async def list_records(request: Request) -> Response:
        parsed = params.parse(resource, request.query_params)
        cursor_signer = signer(request)
        if parsed.ids is not None:
            ids = parsed.ids
            items, missing = await _as_reader(
                request,
                lambda conn, b: queries.lookup(conn, business_id=b, resource=resource, ids=ids),
            )
            return Response(_lookup_body(items, missing), media_type=JSON)
        page = await _as_reader(
            request,
            lambda conn, b: queries.list_page(
                conn,
                cursor_signer,
                business_id=b,
                resource=resource,
                query=parsed.query,
                limit=parsed.limit,
                cursor=parsed.cursor,
            ),
        )
        return _page_response(request, page)

    @api.post(
        "/lookup",
        response_class=Response,
        openapi_extra=docs.lookup_operation(),
        summary=f"Look up {resource.name} by id",
    )
    async def lookup(request: Request) -> Response:
        body = decode(await request.body(), LookupBody)
        if len(body.ids) > MAX_LOOKUP_IDS:
            detail = f"ids lists {len(body.ids):,} ids; at most {MAX_LOOKUP_IDS:,} per lookup."
            raise BadRequest(detail, [ErrorItem(detail, "/ids")])
        items, missing = await _as_reader(
            request,
            lambda conn, b: queries.lookup(conn, business_id=b, resource=resource, ids=body.ids),
        )
        return Response(_lookup_body(items, missing), media_type=JSON)

    @api.get(
        "/{record_id:path}",
        response_class=Response,
        openapi_extra=docs.get_operation(),
        summary=f"Get one {resource.name} record",
    )
    async def get_record(request: Request) -> Response:
        record_id: str = request.path_params["record_id"]
        found = await _as_reader(
            request,
            lambda conn, b: queries.get_one(
                conn, business_id=b, resource=resource, record_id=record_id
            ),
        )
        if found is None:
            raise NotFound(f"This business has no {resource.name} record {record_id!r}.")
        body, deleted = found
        if deleted:
            raise NotFound(
                f"{resource.name} record {record_id!r} was deleted; range queries return its tombstone."
            )
        return Response(body.encode(), media_type=JSON)

    return api
