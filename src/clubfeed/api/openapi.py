"""The OpenAPI description, generated from the catalogue so that it cannot drift from it.

Handlers return bytes and parse their own parameters (for speed and for strict,
clear errors), so FastAPI cannot infer their shapes; these builders state them.
"""

from __future__ import annotations

from typing import Any

from clubfeed.api.params import DEFAULT_LIMIT, MAX_GET_IDS, MAX_LIMIT
from clubfeed.catalogue import RESOURCES, Field, Kind, Resource
from clubfeed.ingest.validate import MAX_BATCH, MAX_DECIMAL_DIGITS, MAX_TEXT

Schema = dict[str, Any]

_KIND_SCHEMAS: dict[Kind, Schema] = {
    Kind.TEXT: {"type": "string", "maxLength": MAX_TEXT},
    Kind.REF: {"type": "string", "minLength": 1, "maxLength": 64},
    Kind.TIMEZONE: {
        "type": "string",
        "description": "IANA time zone",
        "examples": ["America/New_York"],
    },
    Kind.DATE: {"type": "string", "format": "date"},
    Kind.DATETIME: {"type": "string", "format": "date-time"},
    Kind.BOOL: {"type": "boolean"},
    Kind.DECIMAL: {
        "type": "string",
        "pattern": r"^-?\d+(\.\d+)?$",
        "maxLength": MAX_DECIMAL_DIGITS + 2,
        "examples": ["49.90"],
    },
}
_ID = {"type": "string", "minLength": 1, "maxLength": 64, "description": "The POS's own key"}
_UTC = {
    "type": "string",
    "format": "date-time",
    "description": "Server time, UTC (+00:00), microseconds",
}


def schema_name(resource: Resource, suffix: str = "") -> str:
    return "".join(part.title() for part in resource.name.split("-")) + suffix


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _field_schema(resource: Resource, field: Field) -> Schema:
    schema = dict(_KIND_SCHEMAS[field.kind])
    notes = [field.description] if field.description else []
    if field.kind is Kind.REF:
        notes.append(f"id of a {field.ref} record of the same business")
    if field.kind is Kind.DATETIME:
        notes.append(
            "in the location's local offset at that instant"
            if resource.has_local_times
            else "in UTC"
        )
    if notes:
        schema["description"] = "; ".join(notes)
    if field.nullable:
        schema = {"anyOf": [schema, {"type": "null"}]}
    return schema


def _record_schema(resource: Resource) -> Schema:
    properties: Schema = {"id": _ID}
    properties |= {f.name: _field_schema(resource, f) for f in resource.fields}
    properties |= {
        "extra": {"type": "object", "description": "Anything else the POS passes through"},
        "created_at": _UTC,
        "modified_at": _UTC,
    }
    return {
        "type": "object",
        "description": resource.description,
        "properties": properties,
        "required": list(properties),
    }


def _write_schema(resource: Resource) -> Schema:
    properties: Schema = {
        "id": {**_ID, "description": "Optional on PUT (taken from the URL); required in a batch"}
    }
    properties |= {f.name: _field_schema(resource, f) for f in resource.fields}
    properties["extra"] = {"type": "object", "default": {}}
    properties |= {
        name: {"description": "Server-owned: accepted and ignored"}
        for name in ("created_at", "modified_at", "deleted")
    }
    required = [f.name for f in resource.fields if not f.nullable and f.kind is not Kind.BOOL]
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
        "description": "Unknown fields are refused; booleans default to false, nullable fields to null.",
    }


def components() -> Schema:
    """Schemas and security schemes shared by every resource's operations."""
    schemas: Schema = {
        "Tombstone": {
            "type": "object",
            "description": "A deleted record, as range queries and lookups return it.",
            "properties": {"id": _ID, "deleted": {"const": True}, "modified_at": _UTC},
            "required": ["id", "deleted", "modified_at"],
        },
        "Problem": {
            "type": "object",
            "description": "RFC 9457 problem details",
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "detail": {"type": "string"},
                            "pointer": {
                                "type": "string",
                                "description": "JSON Pointer or parameter name",
                            },
                            "index": {
                                "type": "integer",
                                "description": "Index in upsert or delete",
                            },
                        },
                        "required": ["detail"],
                    },
                },
                "errors_not_listed": {
                    "type": "integer",
                    "description": "How many more problems there were than errors lists",
                },
            },
            "required": ["type", "title", "status", "detail"],
        },
        "BatchResult": {
            "type": "object",
            "properties": {
                "created": {"type": "integer"},
                "updated": {"type": "integer"},
                "unchanged": {
                    "type": "integer",
                    "description": "Identical to what was stored: no change in the feed",
                },
                "deleted": {"type": "integer"},
                "modified_at": _UTC,
            },
            "required": ["created", "updated", "unchanged", "deleted", "modified_at"],
        },
    }
    for resource in RESOURCES:
        record = schema_name(resource)
        schemas[record] = _record_schema(resource)
        schemas[schema_name(resource, "Write")] = _write_schema(resource)
        schemas[schema_name(resource, "Page")] = {
            "type": "object",
            "properties": {
                "data": {"type": "array", "items": {"anyOf": [_ref(record), _ref("Tombstone")]}},
                "next_cursor": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                "consistent_until": {
                    **_UTC,
                    "description": "Every change before this instant is in the answer (across its pages), "
                    "and nothing can later commit before it: start the next window here.",
                },
            },
            "required": ["data", "next_cursor", "consistent_until"],
        }
        schemas[schema_name(resource, "Lookup")] = {
            "type": "object",
            "properties": {
                "data": {"type": "array", "items": {"anyOf": [_ref(record), _ref("Tombstone")]}},
                "missing": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["data", "missing"],
        }
    return {
        "schemas": schemas,
        "securitySchemes": {
            "integratorKey": {
                "type": "apiKey",
                "in": "header",
                "name": "X-Integrator-Key",
                "description": "The integrator's own key",
            },
            "sharedSecret": {
                "type": "http",
                "scheme": "bearer",
                "description": "The business's shared secret (reads)",
            },
            "ingestKey": {
                "type": "http",
                "scheme": "bearer",
                "description": "The business's ingest key (writes)",
            },
        },
    }


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _problem(description: str) -> Schema:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": _ref("Problem")}},
    }


_UNAUTHENTICATED = _problem("A credential is missing or wrong (see WWW-Authenticate)")
_READ_SECURITY: list[Schema] = [{"integratorKey": [], "sharedSecret": []}]
_WRITE_SECURITY: list[Schema] = [{"ingestKey": []}]


def _query(name: str, description: str, schema: Schema) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def _id_parameter(resource: Resource) -> Schema:
    return {
        "name": "record_id",
        "in": "path",
        "required": True,
        "schema": _ID,
        "example": resource.example_id,
    }


class ReadDocs:
    """OpenAPI operations of a resource's read endpoints."""

    def __init__(self, resource: Resource) -> None:
        self.resource = resource
        self.list_summary = f"List {resource.name}: complete transfer, modified range, or ids"

    def list_operation(self) -> Schema:
        r = self.resource
        parameters = [
            _query(
                "limit",
                f"Records per page, 1 to {MAX_LIMIT:,}",
                {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
            ),
            _query(
                "cursor",
                "next_cursor of the previous page (or follow the Link header)",
                {"type": "string"},
            ),
            _query(
                "modified_since",
                "Range query: changes at or after this instant (offset required)",
                {"type": "string", "format": "date-time"},
            ),
            _query(
                "modified_before",
                "Range query: changes before this instant (offset required)",
                {"type": "string", "format": "date-time"},
            ),
            _query(
                "ids",
                f"Lookup: up to {MAX_GET_IDS:,} comma-separated ids (alone; answers data and missing)",
                {"type": "string"},
            ),
        ]
        parameters += [
            _query(name, f"Only records whose {name} is this id", {"type": "string"})
            for name in r.filters
        ]
        return {
            "description": (
                "Without modified_since/modified_before: a complete transfer of live records. With either: "
                "every record created, modified or deleted in [modified_since, modified_before), deletes as "
                "tombstones. Pages follow next_cursor until it is null; consistent_until is where the next "
                "window starts. With ids: a lookup (see POST lookup)."
            ),
            "security": _READ_SECURITY,
            "parameters": parameters,
            "responses": {
                "200": {
                    **_json(
                        {"anyOf": [_ref(schema_name(r, "Page")), _ref(schema_name(r, "Lookup"))]},
                        "A page (or, with ids, a lookup)",
                    ),
                    "headers": {
                        "Link": {
                            "description": 'rel="next" URL while there is a next page',
                            "schema": {"type": "string"},
                        }
                    },
                },
                "400": _problem("A parameter or the cursor is invalid"),
                "401": _UNAUTHENTICATED,
                "414": _problem("The query string is too long; look long id lists up by POST"),
            },
        }

    def lookup_operation(self) -> Schema:
        r = self.resource
        body = {
            "type": "object",
            "properties": {"ids": {"type": "array", "items": _ID, "maxItems": 10_000}},
            "required": ["ids"],
            "additionalProperties": False,
        }
        return {
            "description": "Records by id in the order asked; deleted ones as tombstones; unknown ids in missing.",
            "security": _READ_SECURITY,
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": {
                "200": _json(
                    _ref(schema_name(r, "Lookup")), "The records found, and the ids missing"
                ),
                "400": _problem('The body is not {"ids": [...]} or lists more than 10,000 ids'),
                "401": _UNAUTHENTICATED,
                "413": _problem("The body is too large"),
                "422": _problem("An id is not 1 to 64 printable characters"),
            },
        }

    def get_operation(self) -> Schema:
        r = self.resource
        return {
            "security": _READ_SECURITY,
            "parameters": [_id_parameter(r)],
            "responses": {
                "200": _json(_ref(schema_name(r)), "The record"),
                "400": _problem("The id is not 1 to 64 printable characters"),
                "401": _UNAUTHENTICATED,
                "404": _problem("No such record, or it was deleted"),
            },
        }


class WriteDocs:
    """OpenAPI operations of a resource's write (ingest) endpoints."""

    def __init__(self, resource: Resource) -> None:
        self.resource = resource

    def _write_responses(self, ok: Schema) -> Schema:
        return {
            **ok,
            "400": _problem("The body is not JSON or not UTF-8, or a header is invalid"),
            "401": _UNAUTHENTICATED,
            "413": _problem("The body is too large"),
            "422": _problem("A record breaks a rule; errors name each place. Nothing was written."),
        }

    def _idempotency_header(self) -> Schema:
        return {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
            "description": "Makes the write safe to retry: a replay answers as the first time; "
            "the same key with another request is refused (422).",
        }

    def put_operation(self) -> Schema:
        r = self.resource
        record = _ref(schema_name(r))
        return {
            "security": _WRITE_SECURITY,
            "parameters": [_id_parameter(r), self._idempotency_header()],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref(schema_name(r, "Write"))}},
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
            "responses": {
                "200": _json(_ref("Tombstone"), "Deleted (or already deleted); the tombstone"),
                "400": _problem("The id or the Idempotency-Key header is invalid"),
                "401": _UNAUTHENTICATED,
                "404": _problem("No such record"),
                "422": _problem("The Idempotency-Key was used for another request"),
            },
        }

    def batch_operation(self) -> Schema:
        r = self.resource
        body = {
            "type": "object",
            "properties": {
                "upsert": {
                    "type": "array",
                    "items": _ref(schema_name(r, "Write")),
                    "maxItems": MAX_BATCH,
                },
                "delete": {"type": "array", "items": _ID, "maxItems": MAX_BATCH},
            },
            "additionalProperties": False,
        }
        return {
            "description": "One transaction: every record is written, or none is.",
            "security": _WRITE_SECURITY,
            "parameters": [self._idempotency_header()],
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": self._write_responses({"200": _json(_ref("BatchResult"), "Written")}),
        }
