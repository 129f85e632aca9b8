"""The OpenAPI operations, generated from the catalogue so that they cannot drift from it.

Handlers return bytes and parse their own parameters (for speed and for strict,
clear errors), so FastAPI cannot infer their shapes; these builders state them.
"""

from __future__ import annotations

from fastapi.routing import APIRoute

from clubfeed.api.params import MAX_GET_IDS, MAX_LIMIT, MAX_LOOKUP_IDS
from clubfeed.api.schemas import ID_SCHEMA, LISTED_ID_SCHEMA, Schema, ref, schema_name
from clubfeed.catalogue import Resource
from clubfeed.feed.queries import DEFAULT_LIMIT
from clubfeed.ingest.idempotency import KEY_PATTERN, MAX_KEY_LENGTH
from clubfeed.ingest.validate import MAX_BATCH


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _problem(description: str) -> Schema:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": ref("Problem")}},
    }


_UNAUTHENTICATED = _problem("A credential is missing or wrong (see WWW-Authenticate)")
_OUT_OF_SCOPE = _problem(
    "The OAuth access token does not cover this resource (WWW-Authenticate names the scope needed)"
)
_WRITE_SECURITY: list[Schema] = [{"ingestKey": []}]
# The fields of draft-ietf-httpapi-ratelimit-headers-10, on each response that spent from a bucket.
_RATE_LIMIT_HEADERS: Schema = {
    "RateLimit-Policy": {
        "description": 'The token bucket this request spent from ("reads" per integrator, '
        '"writes" per ingest key): q requests, refilled steadily over w seconds',
        "schema": {"type": "string", "examples": ['"reads";q=6000;w=60']},
    },
    "RateLimit": {
        "description": "Requests left in that bucket (r), and seconds until one more (t)",
        "schema": {"type": "string", "examples": ['"reads";r=5999;t=1']},
    },
}
_RATE_LIMITED: Schema = {
    **_problem(
        "A token bucket is empty: this integrator's reads (\"reads\"), this ingest key's "
        'writes ("writes"), or requests with a missing or wrong credential from this '
        'address ("auth-failures", which refuses every request from it for a while); '
        "violated-policies names it"
    ),
    "headers": {
        "Retry-After": {
            "description": "Seconds to wait before the next request can succeed",
            "schema": {"type": "integer", "minimum": 1},
        },
        **_RATE_LIMIT_HEADERS,
    },
}


_READ_UNAVAILABLE = {
    **_problem("The database is unavailable for now (restarting, unreachable or overloaded)"),
    "headers": {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}},
}
_WRITE_UNAVAILABLE = {
    **_READ_UNAVAILABLE,
    "description": (
        "The database is unavailable for now: nothing was written, unless the detail says "
        "the commit itself failed (then resend: a resent write stores the same records)"
    ),
}


def _limited(responses: Schema, unavailable: Schema = _READ_UNAVAILABLE) -> Schema:
    """`responses` with what every /v1 operation may answer besides: the rate limit's 429
    (and its fields on every success), and 503 while the database is unavailable."""
    for code, response in responses.items():
        if code.startswith("2"):
            response["headers"] = {**response.get("headers", {}), **_RATE_LIMIT_HEADERS}
    return {**responses, "429": _RATE_LIMITED, "503": unavailable}


def _read_security(resource: Resource) -> list[Schema]:
    """The integrator key, with the business's shared secret or an access token covering `resource`."""
    return [
        {"integratorKey": [], "sharedSecret": []},
        {"integratorKey": [], "oauth2": [resource.name]},
    ]


def me_operation() -> Schema:
    """GET /v1/me: who a pair of read credentials speaks for."""
    named = {
        "type": "object",
        "properties": {"id": {"type": "integer"}, "name": {"type": "string"}},
        "required": ["id", "name"],
        "additionalProperties": False,
    }
    body = {
        "type": "object",
        "properties": {
            "integrator": named,
            "business": named,
            "channel": {"enum": ["shared_secret", "oauth"]},
            "resources": {"type": "array", "items": {"type": "string"}},
            "token_expires_at": {"type": ["string", "null"], "format": "date-time"},
        },
        "required": ["integrator", "business", "channel", "resources", "token_expires_at"],
        "additionalProperties": False,
    }
    return {
        "description": (
            "The integrator and business these credentials speak for, the channel (the "
            "business's shared secret, or an OAuth access token it granted), the resources "
            "they may read, and when the access token expires (null for a shared secret)."
        ),
        "security": [
            {"integratorKey": [], "sharedSecret": []},
            {"integratorKey": [], "oauth2": []},
        ],
        "responses": _limited({"200": _json(body, "Who is reading"), "401": _UNAUTHENTICATED}),
    }


def _query(name: str, description: str, schema: Schema) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def operation_id(route: APIRoute) -> str:
    """An operation id for a route that names none: its endpoint's name in camelCase.

    The resource routes name theirs (`listCheckins`, `getCheckin`, ...), so that a
    generated client's methods read like the API, not like FastAPI's defaults
    (`list_records_v1_checkins_get`).
    """
    first, *rest = route.name.split("_")
    return first + "".join(word.title() for word in rest)


def add_head_operations(document: Schema) -> None:
    """Describe the HEAD that every GET answers (`web/head.py`): the GET's, with no bodies."""
    for item in document["paths"].values():
        get = item.get("get")
        if get is None:
            continue
        head = {
            **get,
            "operationId": "head" + get["operationId"][0].upper() + get["operationId"][1:],
        }
        head["summary"] = f"{get.get('summary', get['operationId'])}: headers only"
        head["responses"] = {
            code: {name: value for name, value in response.items() if name != "content"}
            for code, response in get["responses"].items()
        }
        item["head"] = head


def _id_parameter(resource: Resource) -> Schema:
    return {
        "name": "record_id",
        "in": "path",
        "required": True,
        "schema": ID_SCHEMA,
        "example": resource.example_id,
    }


class ReadDocs:
    """OpenAPI operations of a resource's read endpoints."""

    def __init__(self, resource: Resource) -> None:
        self.resource = resource
        self.list_summary = f"List {resource.name}: complete transfer or modified range"

    def list_operation(self) -> Schema:
        r = self.resource
        parameters = [
            _query(
                "limit",
                f"Records per page, 1 to {MAX_LIMIT:,}: by default the cursor's (the limit its "
                f"query was paged with), else {DEFAULT_LIMIT:,}. With ids, how many ids may be asked",
                {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
            ),
            _query(
                "cursor",
                "next_cursor of the previous page (or follow the Link header)",
                {"type": "string"},
            ),
            _query(
                "modified_since",
                "Range query: changes at or after this instant (offset required; 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z)",
                {"type": "string", "format": "date-time"},
            ),
            _query(
                "modified_after",
                "Range query: changes after this instant, as the greatest modified_at you have "
                "seen (offset required; not with modified_since)",
                {"type": "string", "format": "date-time"},
            ),
            _query(
                "modified_before",
                "Range query: changes before this instant (offset required; 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z)",
                {"type": "string", "format": "date-time"},
            ),
        ]
        parameters += [
            _query(name, f"Only records whose {name} is this id", ID_SCHEMA) for name in r.filters
        ]
        return {
            "description": (
                "Without modified_since/modified_after/modified_before: a complete transfer of live "
                "records. With any: every record created, modified or deleted in [modified_since, "
                "modified_before), or after modified_after, deletes as tombstones. Pages follow "
                "next_cursor until it is null. Poll per page (start the next window at this one's "
                "consistent_until, as modified_since) or per record (ask modified_after the greatest "
                "modified_at you have): either misses and repeats nothing. With ids: a lookup (see "
                "GET lookup, of which ?ids= here is an alias)."
            ),
            "security": _read_security(r),
            "parameters": parameters,
            "responses": _limited(
                {
                    "200": {
                        **_json(ref(schema_name(r, "Page")), "A page"),
                        "headers": {
                            "Link": {
                                "description": 'rel="next" URL while there is a next page',
                                "schema": {"type": "string"},
                            }
                        },
                    },
                    "400": _problem("A parameter or the cursor is invalid"),
                    "401": _UNAUTHENTICATED,
                    "403": _OUT_OF_SCOPE,
                    "410": _problem(
                        "history-purged: a range reaching back before the tombstones still kept. "
                        "history-rewound: a modified_since, modified_after or cursor past the business's "
                        "current "
                        "consistent_until, as after a restore from backup or a failover to a "
                        "lagging replica. Either way: do a complete transfer and poll on from its "
                        "consistent_until"
                    ),
                    "414": _problem("The query string is too long; look long id lists up by POST"),
                }
            ),
        }

    def get_lookup_operation(self) -> Schema:
        r = self.resource
        ids = {
            **_query(
                "ids",
                f"Up to {MAX_GET_IDS:,} ids, comma-separated or the parameter repeated (and no "
                "more than limit, if sent). An id holding a comma is looked up by POST.",
                {
                    "type": "array",
                    "items": LISTED_ID_SCHEMA,
                    "minItems": 1,
                    "maxItems": MAX_GET_IDS,
                },
            ),
            "required": True,
            "style": "form",
            "explode": False,
        }
        limit = _query(
            "limit",
            f"At most this many ids may be asked (1 to {MAX_LIMIT:,})",
            {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
        )
        return {
            "description": (
                "Records by id in the order asked; deleted ones as tombstones; unknown ids in "
                f"missing. `GET /v1/{r.name}?ids=` answers the same (an alias kept for older "
                "clients)."
            ),
            "security": _read_security(r),
            "parameters": [ids, limit],
            "responses": _limited(
                {
                    "200": _json(
                        ref(schema_name(r, "Lookup")), "The records found, and the ids missing"
                    ),
                    "400": _problem("ids is missing, lists too many ids, or holds an invalid one"),
                    "401": _UNAUTHENTICATED,
                    "403": _OUT_OF_SCOPE,
                    "414": _problem("The query string is too long; look long id lists up by POST"),
                    "431": _problem(
                        "The request line and headers are over 128 KiB; look long id lists up "
                        "by POST"
                    ),
                }
            ),
        }

    def summary_operation(self) -> Schema:
        r = self.resource
        counted: Schema = {
            "count": {"type": "integer", "minimum": 0},
            "checksum": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
        }
        part = {
            "type": "object",
            "properties": counted,
            "required": ["count", "checksum"],
            "additionalProperties": False,
        }
        body = {
            "type": "object",
            "properties": {
                **counted,
                "consistent_until": {"type": "string", "format": "date-time"},
                "buckets": {"type": "array", "items": part},
            },
            "required": ["count", "checksum", "consistent_until"],
            "additionalProperties": False,
        }
        buckets = _query(
            "buckets",
            "Also count and checksum each of this many id buckets (a power of two up to "
            "65,536), in bucket order",
            {"type": "integer", "enum": [1 << k for k in range(17)]},
        )
        return {
            "description": (
                "The count and checksum of the live records at one consistent point "
                "(consistent_until), to check a copy without a transfer. A record's hash is "
                "the first 8 bytes (big-endian) of SHA-256 over its id, a newline and its "
                "modified_at as served (UTF-8); the checksum is the sum of the hashes modulo "
                "2^64 as 16 hex digits. A record's bucket of N is the first 2 bytes "
                "(big-endian) of SHA-256 over its id, shifted right by 16 - log2(N)."
            ),
            "security": _read_security(r),
            "parameters": [buckets],
            "responses": _limited(
                {
                    "200": _json(body, "The live records' count and checksum"),
                    "400": _problem("buckets is not a power of two up to 65,536"),
                    "401": _UNAUTHENTICATED,
                    "403": _OUT_OF_SCOPE,
                }
            ),
        }

    def lookup_operation(self) -> Schema:
        r = self.resource
        body = {
            "type": "object",
            "properties": {
                "ids": {"type": "array", "items": ID_SCHEMA, "maxItems": MAX_LOOKUP_IDS}
            },
            "required": ["ids"],
            "additionalProperties": False,
        }
        return {
            "description": "Records by id in the order asked; deleted ones as tombstones; unknown ids in missing.",
            "security": _read_security(r),
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": _limited(
                {
                    "200": _json(
                        ref(schema_name(r, "Lookup")), "The records found, and the ids missing"
                    ),
                    "400": _problem("The body is not JSON, or lists more than 10,000 ids"),
                    "401": _UNAUTHENTICATED,
                    "403": _OUT_OF_SCOPE,
                    "413": _problem("The body is too large"),
                    "422": _problem(
                        'The body is not {"ids": [...]}, or an id is not 1 to 64 printable characters'
                    ),
                }
            ),
        }

    def get_operation(self) -> Schema:
        r = self.resource
        return {
            "security": _read_security(r),
            "parameters": [
                _id_parameter(r),
                {
                    "name": "If-None-Match",
                    "in": "header",
                    "required": False,
                    "description": "An ETag this record was served with: 304 while it is unchanged",
                    "schema": {"type": "string"},
                },
            ],
            "responses": _limited(
                {
                    "200": {
                        **_json(ref(schema_name(r)), "The record"),
                        "headers": {
                            "ETag": {
                                "description": "Strong; changes exactly when the record does",
                                "schema": {"type": "string"},
                            }
                        },
                    },
                    "304": {
                        "description": "Unchanged since the ETag in If-None-Match",
                        "headers": {"ETag": {"schema": {"type": "string"}}},
                    },
                    "400": _problem("The id is not 1 to 64 printable characters"),
                    "401": _UNAUTHENTICATED,
                    "403": _OUT_OF_SCOPE,
                    "404": _problem("No such record, or it was deleted"),
                }
            ),
        }


class WriteDocs:
    """OpenAPI operations of a resource's write (ingest) endpoints."""

    def __init__(self, resource: Resource) -> None:
        self.resource = resource

    def _write_responses(self, ok: Schema) -> Schema:
        return _limited(
            {
                **ok,
                "400": _problem(
                    "The body is not JSON, the body or URL is not UTF-8, or a header is invalid"
                ),
                "401": _UNAUTHENTICATED,
                "413": _problem("The body is too large"),
                "422": _problem(
                    "A record breaks a rule; errors name each place. Nothing was written."
                ),
            },
            _WRITE_UNAVAILABLE,
        )

    def _idempotency_header(self) -> Schema:
        return {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "schema": {
                "type": "string",
                "maxLength": MAX_KEY_LENGTH,
                "pattern": KEY_PATTERN,
            },
            "description": "Makes the write safe to retry: a replay answers as the first time; "
            "the same key with another request is refused (422).",
        }

    def put_operation(self) -> Schema:
        r = self.resource
        record = ref(schema_name(r))
        return {
            "security": _WRITE_SECURITY,
            "parameters": [_id_parameter(r), self._idempotency_header()],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ref(schema_name(r, "Write"))}},
            },
            "responses": self._write_responses(
                {
                    "200": _json(record, "Replaced (or unchanged); the record as stored"),
                    "201": _json(record, "Created; the record as stored"),
                }
            ),
        }

    def delete_operation(self) -> Schema:
        r = self.resource
        return {
            "security": _WRITE_SECURITY,
            "parameters": [_id_parameter(r), self._idempotency_header()],
            "responses": _limited(
                {
                    "200": _json(ref("Tombstone"), "Deleted (or already deleted); the tombstone"),
                    "400": _problem("The id or the Idempotency-Key header is invalid"),
                    "401": _UNAUTHENTICATED,
                    "404": _problem("No such record"),
                    "422": _problem("The Idempotency-Key was used for another request"),
                },
                _WRITE_UNAVAILABLE,
            ),
        }

    def batch_operation(self) -> Schema:
        r = self.resource
        body = {
            "type": "object",
            "properties": {
                "upsert": {
                    "type": "array",
                    "items": {"allOf": [ref(schema_name(r, "Write")), {"required": ["id"]}]},
                    "maxItems": MAX_BATCH,
                },
                "delete": {"type": "array", "items": ID_SCHEMA, "maxItems": MAX_BATCH},
            },
            "additionalProperties": False,
        }
        return {
            "description": (
                "One transaction: every record is written, or none is. A batch holds at most "
                f"{MAX_BATCH:,} items, upserts and deletes together; more is refused (422)."
            ),
            "security": _WRITE_SECURITY,
            "parameters": [self._idempotency_header()],
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": self._write_responses({"200": _json(ref("BatchResult"), "Written")}),
        }
