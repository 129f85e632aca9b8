"""The integrator's side: complete transfer, lookup by ids, modified range, one record.

Handlers hand the stored JSON straight through: a page's body is built from the
rows' text with no per-record objects.
"""

from __future__ import annotations

import hashlib

import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import Connection

from clubfeed.api import openapi, params
from clubfeed.api.params import MAX_LOOKUP_IDS
from clubfeed.api.paths import RECORD_PATH
from clubfeed.catalogue import Resource
from clubfeed.errors import BadRequest, ErrorItem, InvalidInput, NotFound
from clubfeed.feed import queries
from clubfeed.ingest.validate import RecordId, check_id, decode
from clubfeed.timefmt import format_us
from clubfeed.web.callers import as_reader
from clubfeed.web.hosts import next_page_link
from clubfeed.web.state import signer, state

JSON = "application/json"


class LookupBody(msgspec.Struct, forbid_unknown_fields=True):
    ids: list[RecordId]


def _lookup_ids(raw: bytes) -> list[str]:
    """The ids of a lookup body; BadRequest over the limit, InvalidInput for a bad id."""
    ids: list[str] = decode(raw, LookupBody).ids
    if len(ids) > MAX_LOOKUP_IDS:
        detail = f"ids lists {len(ids):,} ids; at most {MAX_LOOKUP_IDS:,} per lookup."
        raise BadRequest(detail, [ErrorItem(detail, "/ids")])
    errors = [p for i, v in enumerate(ids) if (p := check_id(v, f"/ids/{i}")) is not None]
    if errors:
        raise InvalidInput(f"{errors[0].detail.rstrip('.')} at {errors[0].pointer}.", errors)
    return ids


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
        headers["Link"] = next_page_link(request, page.next_cursor)
    return Response(body, headers=headers, media_type=JSON)


def entity_tag(body: str) -> str:
    """A strong ETag for a record's stored JSON: it changes exactly when the body does."""
    return '"' + hashlib.blake2b(body.encode(), digest_size=16).hexdigest() + '"'


def _none_match(header: str | None, tag: str) -> bool:
    """Whether If-None-Match names `tag` (by weak comparison, as RFC 9110 §13.1.2 asks) or is *."""
    if header is None:
        return False
    listed = {t.strip().removeprefix("W/") for t in header.split(",")}
    return "*" in listed or tag in listed


def router(resource: Resource) -> APIRouter:
    """The read endpoints of one resource, described in the OpenAPI document from the catalogue."""
    api = APIRouter(prefix=f"/v1/{resource.name}", tags=[resource.name])
    docs = openapi.ReadDocs(resource)

    @api.get(
        "", response_class=Response, openapi_extra=docs.list_operation(), summary=docs.list_summary
    )
    async def list_records(request: Request) -> Response:
        cursor_signer = signer(request)
        meter = state(request).meter

        def work(conn: Connection, business_id: int, _body: bytes) -> Response:
            parsed = params.parse(resource, request.query_params)
            if parsed.ids is not None:
                items, missing = queries.lookup(
                    conn, business_id=business_id, resource=resource, ids=parsed.ids
                )
                meter.served(resource.name, len(set(parsed.ids)) - len(missing))
                return Response(_lookup_body(items, missing), media_type=JSON)
            page = queries.list_page(
                conn,
                cursor_signer,
                business_id=business_id,
                resource=resource,
                query=parsed.query,
                limit=parsed.limit,
                cursor=parsed.cursor,
            )
            meter.served(resource.name, page.count)
            return _page_response(request, page)

        return await as_reader(request, resource.name, work)

    @api.post(
        "/lookup",
        response_class=Response,
        openapi_extra=docs.lookup_operation(),
        summary=f"Look up {resource.name} by id",
    )
    async def lookup(request: Request) -> Response:
        meter = state(request).meter

        def work(conn: Connection, business_id: int, body: bytes) -> Response:
            ids = _lookup_ids(body)
            items, missing = queries.lookup(
                conn, business_id=business_id, resource=resource, ids=ids
            )
            meter.served(resource.name, len(set(ids)) - len(missing))
            return Response(_lookup_body(items, missing), media_type=JSON)

        return await as_reader(request, resource.name, work, with_body=True)

    @api.get(
        RECORD_PATH,
        response_class=Response,
        openapi_extra=docs.get_operation(),
        summary=f"Get one {resource.name} record",
    )
    async def get_record(request: Request) -> Response:
        record_id: str = request.path_params["record_id"]

        def work(conn: Connection, business_id: int, _body: bytes) -> Response:
            if (problem := check_id(record_id, "record_id")) is not None:
                raise BadRequest(problem.detail, [problem])
            found = queries.get_one(
                conn, business_id=business_id, resource=resource, record_id=record_id
            )
            if found is None:
                raise NotFound(f"This business has no {resource.name} record {record_id!r}.")
            body, deleted = found
            if deleted:
                raise NotFound(
                    f"{resource.name} record {record_id!r} was deleted; "
                    "range queries return its tombstone."
                )
            tag = entity_tag(body)
            if _none_match(request.headers.get("if-none-match"), tag):
                return Response(status_code=304, headers={"ETag": tag})
            state(request).meter.served(resource.name, 1)
            return Response(body.encode(), headers={"ETag": tag}, media_type=JSON)

        return await as_reader(request, resource.name, work)

    return api
