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

from clubfeed import activity
from clubfeed.api import openapi, params, problems
from clubfeed.api.deps import blocking, signer, state
from clubfeed.api.params import MAX_LOOKUP_IDS
from clubfeed.auth import guard
from clubfeed.catalogue import Resource
from clubfeed.errors import BadRequest, ClubfeedError, ErrorItem, InvalidInput, NotFound
from clubfeed.feed import queries
from clubfeed.ingest.validate import RecordId, check_id, decode
from clubfeed.storage.engine import read_connection
from clubfeed.timefmt import format_us, now_us

JSON = "application/json"
T = TypeVar("T")


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
        headers["Link"] = (
            f'<{request.url.include_query_params(cursor=page.next_cursor)}>; rel="next"'
        )
    return Response(body, headers=headers, media_type=JSON)


async def _as_reader(
    request: Request,
    resource: Resource,
    work: Callable[[Connection, int, bytes], T],
    *,
    with_body: bool = False,
) -> T:
    """Authenticate the reader, then run `work(conn, business_id, body)` on a pooled connection.

    Credentials are checked before the request is looked at (and before a body is
    read), so a caller without them learns nothing but 401. Every authenticated
    request is recorded (without blocking) for the business's console.
    """
    app_state = state(request)
    who: guard.Reader | None = None
    body = b""
    if with_body:

        def authenticate() -> guard.Reader:
            with read_connection(app_state.engine) as conn:
                return guard.reader(conn, request.headers, resource.name)

        who = await blocking(authenticate)
        body = await request.body()

    def run() -> T:
        with read_connection(app_state.engine) as conn:
            reader = who or guard.reader(conn, request.headers, resource.name)
            status = 200
            try:
                return work(conn, reader.business_id, body)
            except ClubfeedError as exc:
                status = problems.STATUS.get(type(exc), 400)
                raise
            except Exception:
                # Anything else reaches the app's catch-all handler, which answers 500.
                status = 500
                raise
            finally:
                app_state.recorder.record(
                    activity.Event(
                        reader.business_id,
                        reader.integrator_id,
                        reader.via,
                        now_us(),
                        request.method,
                        request.url.path,
                        status,
                    )
                )

    return await blocking(run)


def router(resource: Resource) -> APIRouter:
    """The read endpoints of one resource, described in the OpenAPI document from the catalogue."""
    api = APIRouter(prefix=f"/v1/{resource.name}", tags=[resource.name])
    docs = openapi.ReadDocs(resource)

    @api.get(
        "", response_class=Response, openapi_extra=docs.list_operation(), summary=docs.list_summary
    )
    async def list_records(request: Request) -> Response:
        cursor_signer = signer(request)

        def work(conn: Connection, business_id: int, _body: bytes) -> Response:
            parsed = params.parse(resource, request.query_params)
            if parsed.ids is not None:
                items, missing = queries.lookup(
                    conn, business_id=business_id, resource=resource, ids=parsed.ids
                )
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
            return _page_response(request, page)

        return await _as_reader(request, resource, work)

    @api.post(
        "/lookup",
        response_class=Response,
        openapi_extra=docs.lookup_operation(),
        summary=f"Look up {resource.name} by id",
    )
    async def lookup(request: Request) -> Response:
        def work(conn: Connection, business_id: int, body: bytes) -> Response:
            ids = _lookup_ids(body)
            items, missing = queries.lookup(
                conn, business_id=business_id, resource=resource, ids=ids
            )
            return Response(_lookup_body(items, missing), media_type=JSON)

        return await _as_reader(request, resource, work, with_body=True)

    @api.get(
        "/{record_id:path}",
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
            return Response(body.encode(), media_type=JSON)

        return await _as_reader(request, resource, work)

    return api
