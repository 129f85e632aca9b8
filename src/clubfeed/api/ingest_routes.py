"""The POS's side: create or replace, delete, and batches of up to 10,000, all or nothing."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import Response

from clubfeed.api import openapi, params
from clubfeed.api.paths import RECORD_PATH
from clubfeed.catalogue import Resource
from clubfeed.errors import BadRequest, ClubfeedError, ErrorItem, InvalidInput
from clubfeed.ingest import validate, write
from clubfeed.ingest.idempotency import KEY_RE, MAX_KEY_LENGTH, StoredResponse, request_hash
from clubfeed.timefmt import format_us
from clubfeed.web.callers import writer
from clubfeed.web.limits import BodyTooLarge
from clubfeed.web.state import blocking, state

JSON = "application/json"


def _idempotency(request: Request, body: bytes) -> write.IdempotencyRequest | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if len(key) > MAX_KEY_LENGTH or not KEY_RE.fullmatch(key):
        detail = (
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} visible ASCII characters "
            "(spaces allowed inside)."
        )
        raise BadRequest(detail, [ErrorItem(detail, "Idempotency-Key")])
    return write.IdempotencyRequest(key, request_hash(request.method, request.url.path, body))


def _batch_summary(changes: write.Changes) -> StoredResponse:
    summary = {
        "created": len(changes.created),
        "updated": len(changes.updated),
        "unchanged": len(changes.unchanged),
        "deleted": len(changes.deleted),
        "modified_at": format_us(changes.modified_us),
    }
    return StoredResponse(200, msgspec.json.encode(summary))


def _one_record(record_id: str) -> Callable[[write.Changes], StoredResponse]:
    def respond(changes: write.Changes) -> StoredResponse:
        status = 201 if changes.created else 200
        return StoredResponse(status, changes.bodies[record_id].encode())

    return respond


async def _write(
    request: Request,
    resource: Resource,
    parse: Callable[[bytes], validate.Batch],
    respond: Callable[[write.Changes], StoredResponse],
    *,
    single: bool,
) -> Response:
    """Authenticate the writer, then read the body, parse it with `parse` and apply it.

    The meter hears what a committed write did (a replayed Idempotency-Key did
    nothing) and the problem type of each refusal. A one-record write's problems
    point into its body, which is the record.
    """
    app_state = state(request)
    done: list[write.Changes] = []

    def respond_noting(changes: write.Changes) -> StoredResponse:
        done.append(changes)
        return respond(changes)

    def run(business_id: int, body: bytes) -> StoredResponse:
        idempotency_request = _idempotency(request, body)
        try:
            return write.write(
                app_state.engine,
                business_id=business_id,
                batch=parse(body),
                respond=respond_noting,
                idempotency_request=idempotency_request,
            )
        except InvalidInput as exc:
            if not single:
                raise
            raise exc.in_single_record() from None

    try:
        business_id = await writer(request)
        body = await request.body()
        stored = await blocking(lambda: run(business_id, body))
    except ClubfeedError as exc:
        app_state.meter.rejected(resource.name, exc.slug)
        raise
    except BodyTooLarge:
        app_state.meter.rejected(resource.name, "content-too-large")
        raise
    for changes in done:
        app_state.meter.written(
            resource.name,
            {
                "created": len(changes.created),
                "updated": len(changes.updated),
                "unchanged": len(changes.unchanged),
                "deleted": len(changes.deleted),
            },
        )
    return Response(stored.body, stored.status_code, media_type=JSON)


def router(resource: Resource) -> APIRouter:
    """The write endpoints of one resource."""
    api = APIRouter(prefix=f"/v1/{resource.name}", tags=[resource.name])
    docs = openapi.WriteDocs(resource)
    record_type = validate.record_type(resource)
    batch_type = validate.batch_type(resource)

    @api.post(
        "/batch",
        response_class=Response,
        openapi_extra=docs.batch_operation(),
        summary=f"Upsert and delete up to 10,000 {resource.name} records in all",
        operation_id=f"batch{resource.type_name}",
    )
    async def batch(request: Request) -> Response:
        def parse(body: bytes) -> validate.Batch:
            parsed = validate.decode(body, batch_type)
            return validate.validated(resource, parsed.upsert, parsed.delete)

        return await _write(request, resource, parse, _batch_summary, single=False)

    @api.put(
        RECORD_PATH,
        response_class=Response,
        openapi_extra=docs.put_operation(),
        summary=f"Create or replace one {resource.name} record",
        operation_id=f"put{resource.one_type_name}",
    )
    async def put(request: Request) -> Response:
        record_id: str = request.path_params["record_id"]

        def parse(body: bytes) -> validate.Batch:
            record = validate.decode(body, record_type)
            if record.id is None:
                record.id = record_id
            elif record.id != record_id:
                detail = f"The body's id {record.id!r} differs from the URL's {record_id!r}."
                raise InvalidInput(detail + " Nothing was written.", [ErrorItem(detail, "/id")])
            return validate.validated(resource, [record], [], single=True)

        return await _write(request, resource, parse, _one_record(record_id), single=True)

    @api.delete(
        RECORD_PATH,
        response_class=Response,
        openapi_extra=docs.delete_operation(),
        summary=f"Delete one {resource.name} record",
        operation_id=f"delete{resource.one_type_name}",
    )
    async def delete(request: Request) -> Response:
        record_id: str = request.path_params["record_id"]

        def parse(_body: bytes) -> validate.Batch:
            params.check_record_id(record_id)
            return validate.validated(resource, [], [record_id], single=True)

        return await _write(request, resource, parse, _one_record(record_id), single=True)

    return api
