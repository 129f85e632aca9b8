"""The integrator's side: complete transfer, lookup by ids, modified range, one record.

Handlers hand the stored JSON straight through: a page's body is built from the
rows' text with no per-record objects.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable

import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import Connection

from clubfeed import checksums
from clubfeed.api import openapi, params
from clubfeed.api.params import MAX_GET_IDS, MAX_LOOKUP_IDS
from clubfeed.api.paths import RECORD_PATH
from clubfeed.auth.guard import Reader
from clubfeed.catalogue import Resource, id_problem
from clubfeed.errors import BadRequest, ErrorItem, InvalidInput, NotFound
from clubfeed.feed import queries, summary
from clubfeed.ingest.validate import RecordId, decode
from clubfeed.timefmt import format_us
from clubfeed.web.callers import as_reader
from clubfeed.web.compression import identity_tag
from clubfeed.web.hosts import next_page_link
from clubfeed.web.metrics import Meter
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
    errors = [
        ErrorItem(problem, f"/ids/{i}")
        for i, value in enumerate(ids)
        if (problem := id_problem(value)) is not None
    ]
    if errors:
        raise InvalidInput(f"{errors[0].detail.rstrip('.')} at {errors[0].pointer}.", errors)
    return ids


def _lookup_response(
    conn: Connection, business_id: int, resource: Resource, ids: list[str], meter: Meter
) -> Response:
    """The records of `ids` in the order asked, and the ids missing; one shape for every lookup."""
    items, missing = queries.lookup(conn, business_id=business_id, resource=resource, ids=ids)
    meter.served(resource.name, len(set(ids)) - len(missing))
    body = b'{"data":[' + items.encode() + b'],"missing":' + msgspec.json.encode(missing) + b"}"
    return Response(body, media_type=JSON)


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


def _summary_body(found: summary.Summary) -> dict[str, object]:
    body: dict[str, object] = {
        "count": found.whole.count,
        "checksum": checksums.checksum_text(found.whole.checksum),
        "consistent_until": format_us(found.consistent_until_us),
    }
    if found.buckets is not None:
        body["buckets"] = [
            {"count": part.count, "checksum": checksums.checksum_text(part.checksum)}
            for part in found.buckets
        ]
    return body


def entity_tag(body: str) -> str:
    """A strong ETag for a record's stored JSON: it changes exactly when the body does."""
    return '"' + hashlib.blake2b(body.encode(), digest_size=16).hexdigest() + '"'


def _none_match(header: str | None, tag: str) -> str | None:
    """The entity tag of If-None-Match that names `tag` (by weak comparison, as RFC 9110
    §13.1.2 asks, in any content coding), `tag` itself for *, or None.

    A 304 repeats the tag the client holds: that of the representation, compressed or
    not, that it was sent.
    """
    if header is None:
        return None
    for sent in (t.strip() for t in header.split(",")):
        if sent == "*":
            return tag
        if identity_tag(sent.removeprefix("W/")) == tag:
            return sent.removeprefix("W/")
    return None


def router(resource: Resource) -> APIRouter:
    """The read endpoints of one resource, described in the OpenAPI document from the catalogue."""
    api = APIRouter(prefix=f"/v1/{resource.name}", tags=[resource.name])
    docs = openapi.ReadDocs(resource)

    @api.get(
        "",
        response_class=Response,
        openapi_extra=docs.list_operation(),
        summary=docs.list_summary,
        operation_id=f"list{resource.type_name}",
    )
    async def list_records(request: Request) -> Response:
        cursor_signer = signer(request)
        meter = state(request).meter

        def work(conn: Connection, reader: Reader, _body: bytes) -> Response:
            business_id = reader.business_id
            parsed = params.parse(resource, request.query_params)
            if parsed.ids is not None:
                return _lookup_response(conn, business_id, resource, parsed.ids, meter)
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

    def lookup_by(
        ids_of: Callable[[Request, bytes], list[str]], *, with_body: bool
    ) -> Callable[[Request], Awaitable[Response]]:
        """A lookup endpoint: the ids from the URL (GET) or from the body (POST)."""

        async def lookup(request: Request) -> Response:
            meter = state(request).meter

            def work(conn: Connection, reader: Reader, body: bytes) -> Response:
                ids = ids_of(request, body)
                return _lookup_response(conn, reader.business_id, resource, ids, meter)

            return await as_reader(request, resource.name, work, with_body=with_body)

        return lookup

    @api.get(
        "/summary",
        response_class=Response,
        openapi_extra=docs.summary_operation(),
        summary=f"Count and checksum the live {resource.name}, whole or in id buckets",
        operation_id=f"summarize{resource.type_name}",
    )
    async def summarize(request: Request) -> Response:
        def work(conn: Connection, reader: Reader, _body: bytes) -> Response:
            buckets = params.parse_buckets(resource, request.query_params)
            # One snapshot for the clock and the sums: end what authentication began.
            conn.rollback()
            conn.execution_options(**summary.snapshot_options(conn))
            found = summary.summarize(
                conn, business_id=reader.business_id, resource=resource, buckets=buckets
            )
            return Response(msgspec.json.encode(_summary_body(found)), media_type=JSON)

        return await as_reader(request, resource.name, work)

    api.get(
        "/lookup",
        response_class=Response,
        openapi_extra=docs.get_lookup_operation(),
        summary=f"Look up {resource.name} by id (up to {MAX_GET_IDS:,}, in the URL)",
        operation_id=f"lookup{resource.type_name}",
    )(
        lookup_by(
            lambda request, _: params.parse_lookup(resource, request.query_params), with_body=False
        )
    )
    api.post(
        "/lookup",
        response_class=Response,
        openapi_extra=docs.lookup_operation(),
        summary=f"Look up {resource.name} by id",
        operation_id=f"lookup{resource.type_name}ByBody",
    )(lookup_by(lambda _, body: _lookup_ids(body), with_body=True))

    @api.get(
        RECORD_PATH,
        response_class=Response,
        openapi_extra=docs.get_operation(),
        summary=f"Get one {resource.name} record",
        operation_id=f"get{resource.one_type_name}",
    )
    async def get_record(request: Request) -> Response:
        record_id: str = request.path_params["record_id"]

        def work(conn: Connection, reader: Reader, _body: bytes) -> Response:
            business_id = reader.business_id
            params.check_record_id(record_id)
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
            held = _none_match(request.headers.get("if-none-match"), tag)
            if held is not None:
                return Response(status_code=304, headers={"ETag": held, "Vary": "Accept-Encoding"})
            state(request).meter.served(resource.name, 1)
            return Response(body.encode(), headers={"ETag": tag}, media_type=JSON)

        return await as_reader(request, resource.name, work)

    return api
