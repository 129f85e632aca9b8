"""JSON Schemas of records, pages, lookups and problems, generated from the catalogue.

They are the `components` of the OpenAPI document; `openapi` builds the operations
that refer to them.
"""

from __future__ import annotations

from typing import Any

from clubfeed import catalogue
from clubfeed.catalogue import RESOURCES, Field, Kind, Resource
from clubfeed.ingest.validate import MAX_DECIMAL_DIGITS, MAX_TEXT

Schema = dict[str, Any]

NO_NUL = "^[^\\u0000]*$"
"""PostgreSQL text cannot hold NUL, so no string or key of a written body may."""
# Any JSON object. No key or string in it may hold NUL, which JSON Schema can say only
# recursively, and a recursive schema defeats client generators (openapi-python-client
# drops every schema that reaches it): the rule is stated in words instead.
_EXTRA: Schema = {
    "type": "object",
    "additionalProperties": True,
    "description": "Any JSON object of your own; no key or string in it may hold a NUL character",
}
_KIND_SCHEMAS: dict[Kind, Schema] = {
    Kind.TEXT: {"type": "string", "maxLength": MAX_TEXT, "pattern": NO_NUL},
    Kind.REF: {"type": "string", "minLength": 1, "maxLength": catalogue.MAX_ID_LENGTH},
    Kind.TIMEZONE: {
        "type": "string",
        "description": "IANA time zone name: a zone or a backward link (US/Eastern)",
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
ID_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": catalogue.MAX_ID_LENGTH,
    "pattern": catalogue.ID_PATTERN,
    "description": "The POS's own key: no control characters; batch and lookup are reserved",
}
LISTED_ID_SCHEMA = {**ID_SCHEMA, "pattern": catalogue.id_pattern(also_excluding=",")}
UTC_SCHEMA = {
    "type": "string",
    "format": "date-time",
    "description": "Server time, UTC (+00:00), microseconds",
}


def schema_name(resource: Resource, suffix: str = "") -> str:
    return resource.type_name + suffix


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _field_schema(resource: Resource, field: Field) -> Schema:
    schema = dict(_KIND_SCHEMAS[field.kind])
    notes = [field.description] if field.description else []
    if field.kind is Kind.REF:
        notes.append(f"id of a {field.ref} record of the same business")
    if field.kind is Kind.DATETIME:
        notes.append(
            "in the location's local offset at that instant, or in UTC where that offset "
            "is not a whole minute (local mean time)"
            if resource.has_local_times
            else "in UTC"
        )
    if notes:
        schema["description"] = "; ".join(notes)
    if field.nullable:
        schema = {"anyOf": [schema, {"type": "null"}]}
    return schema


def _record_schema(resource: Resource) -> Schema:
    properties: Schema = {"id": ID_SCHEMA}
    properties |= {f.name: _field_schema(resource, f) for f in resource.fields}
    properties |= {
        "extra": {"type": "object", "description": "Anything else the POS passes through"},
        "created_at": UTC_SCHEMA,
        "modified_at": UTC_SCHEMA,
    }
    return {
        "type": "object",
        "description": resource.description,
        "properties": properties,
        "required": list(properties),
    }


def _write_schema(resource: Resource) -> Schema:
    properties: Schema = {
        "id": {
            **ID_SCHEMA,
            "description": "Optional on PUT (taken from the URL); required in a batch",
        }
    }
    properties |= {f.name: _field_schema(resource, f) for f in resource.fields}
    properties["extra"] = {**_EXTRA, "default": {}}
    properties |= {
        name: {"description": "Server-owned: accepted and ignored"}
        for name in catalogue.SERVER_FIELDS
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
            "properties": {"id": ID_SCHEMA, "deleted": {"const": True}, "modified_at": UTC_SCHEMA},
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
                "violated-policies": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "On 429: the rate limit policies that ran out "
                    "(as RateLimit-Policy names them)",
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
                "modified_at": UTC_SCHEMA,
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
                "data": {"type": "array", "items": {"anyOf": [ref(record), ref("Tombstone")]}},
                "next_cursor": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                "consistent_until": {
                    **UTC_SCHEMA,
                    "description": "Every change before this instant is in the answer (across its pages), "
                    "and nothing can later commit before it: start the next window here.",
                },
            },
            "required": ["data", "next_cursor", "consistent_until"],
        }
        schemas[schema_name(resource, "Lookup")] = {
            "type": "object",
            "properties": {
                "data": {"type": "array", "items": {"anyOf": [ref(record), ref("Tombstone")]}},
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
            "oauth2": {
                "type": "oauth2",
                "description": "An access token the business granted this integrator (reads, "
                "as 'Authorization: Bearer'); PKCE with S256 is required",
                "flows": {
                    "authorizationCode": {
                        "authorizationUrl": "/oauth/authorize",
                        "tokenUrl": "/oauth/token",
                        "refreshUrl": "/oauth/token",
                        "scopes": {
                            r.name: f"Read {r.title.lower()}. {r.description}" for r in RESOURCES
                        },
                    }
                },
            },
            "ingestKey": {
                "type": "http",
                "scheme": "bearer",
                "description": "The business's ingest key (writes)",
            },
        },
    }
