"""The served OpenAPI document: complete, and true of the real responses on both databases."""

from __future__ import annotations

import copy
import re
from datetime import date, datetime
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from jsonschema import Draft202012Validator, FormatChecker
from sqlalchemy import Engine

from clubfeed import catalogue
from clubfeed.app import create_app
from clubfeed.settings import Settings
from tests.conftest import Server
from tests.factories import Api, new_tenant, record
from tests.oauthkit import connect
from tests.problemkit import EPOCH, PROBLEM_JSON

Document = dict[str, Any]
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
COMMON_PARAMETERS = [
    "limit",
    "cursor",
    "modified_since",
    "modified_after",
    "modified_before",
]
# Every status each operation can answer, as the tests of this suite observe them.
RESPONSES = {
    ("", "get"): {"200", "400", "401", "403", "410", "414", "429", "503"},
    ("/lookup", "get"): {"200", "400", "401", "403", "414", "429", "431", "503"},
    ("/summary", "get"): {"200", "400", "401", "403", "429", "503"},
    ("/lookup", "post"): {"200", "400", "401", "403", "413", "422", "429", "503"},
    ("/{record_id}", "get"): {"200", "304", "400", "401", "403", "404", "429", "503"},
    ("/{record_id}", "put"): {"200", "201", "400", "401", "413", "422", "429", "503"},
    ("/{record_id}", "delete"): {"200", "400", "401", "404", "422", "429", "503"},
    ("/batch", "post"): {"200", "400", "401", "413", "422", "429", "503"},
}
READS = {
    ("", "get"),
    ("/lookup", "get"),
    ("/lookup", "post"),
    ("/summary", "get"),
    ("/{record_id}", "get"),
}
OPERATION_IDS = {
    ("", "get"): "list{many}",
    ("/lookup", "get"): "lookup{many}",
    ("/lookup", "post"): "lookup{many}ByBody",
    ("/summary", "get"): "summarize{many}",
    ("/{record_id}", "get"): "get{one}",
    ("/{record_id}", "put"): "put{one}",
    ("/{record_id}", "delete"): "delete{one}",
    ("/batch", "post"): "batch{many}",
}
ONE = {
    "locations": "Location",
    "users": "User",
    "memberships": "Membership",
    "checkins": "Checkin",
    "referrals": "Referral",
    "sales-categories": "SalesCategory",
    "sales-subcategories": "SalesSubcategory",
    "sales": "Sale",
    "classes": "Class",
    "class-attendances": "ClassAttendance",
    "appointment-categories": "AppointmentCategory",
    "appointments": "Appointment",
}
FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _is_rfc3339(value: object) -> bool:
    return not isinstance(value, str) or (
        RFC3339.match(value) is not None and datetime.fromisoformat(value).tzinfo is not None
    )


@FORMATS.checks("date", raises=ValueError)
def _is_date(value: object) -> bool:
    return not isinstance(value, str) or date.fromisoformat(value).isoformat() == value


@pytest.fixture
def document(client: httpx.Client) -> Document:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    served: Document = response.json()
    return served


def _strict(document: Document) -> Document:
    """The document with unlisted properties refused everywhere, so responses must match exactly."""
    strict = copy.deepcopy(document)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "properties" in node:
                node.setdefault("additionalProperties", False)
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(strict)
    return strict


def _operation(document: Document, method: str, path: str) -> Document:
    """The operation serving `method path`; a literal path wins over a templated one."""
    candidates = []
    for template, operations in document["paths"].items():
        literal_parts = re.split(r"\{[^}]+\}", template)
        pattern = "^" + ".+".join(re.escape(part) for part in literal_parts) + "$"
        if re.match(pattern, path) and method.lower() in operations:
            candidates.append((template.count("{"), operations[method.lower()]))
    assert candidates, f"{method} {path} is not in the document"
    operation: Document = min(candidates, key=lambda c: c[0])[1]
    return operation


def assert_conforms(document: Document, response: httpx.Response) -> None:
    """The response's status, media type and body are those its operation documents."""
    request = response.request
    operation = _operation(document, request.method, request.url.path)
    documented = operation["responses"]
    assert str(response.status_code) in documented, (request.url, response.status_code)
    media_type = response.headers["content-type"]
    schema = documented[str(response.status_code)]["content"][media_type]["schema"]
    rooted = {**schema, "components": document["components"]}
    Draft202012Validator(rooted, format_checker=FORMATS).validate(response.json())


def test_the_document_and_the_docs_answer(client: httpx.Client, document: Document) -> None:
    assert document["openapi"].startswith("3.1")
    assert document["info"]["title"] == "clubfeed"
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert docs.headers["content-type"].startswith("text/html")
    assert "openapi.json" in docs.text


def test_every_route_is_documented_with_its_methods(document: Document, db_url: str) -> None:
    app = create_app(Settings(database_url=db_url))
    app.state.clubfeed.engine.dispose()
    served = {
        (route.path_format, method.lower())
        for route in iter_route_contexts(app.routes)
        if getattr(route, "include_in_schema", False) and route.methods
        for method in route.methods
    }
    # HEAD is answered wherever GET is (web/head.py), and described so.
    served |= {(path, "head") for path, method in served if method == "get"}
    documented = {
        (path, method) for path, operations in document["paths"].items() for method in operations
    }
    assert served == documented
    # /healthz, /readyz, /v1/me, eight per resource, and OAuth's authorize (GET, and the
    # consent form's POST), token, revoke and metadata; and a HEAD for each of the
    # 5 + 4 * 12 GETs.
    assert len(served) == 3 + 8 * len(catalogue.RESOURCES) + 5 + 5 + 4 * len(catalogue.RESOURCES)
    operation_ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert len(operation_ids) == len(set(operation_ids))


@pytest.mark.parametrize("resource", catalogue.RESOURCES, ids=lambda r: r.name)
def test_every_operation_is_described(document: Document, resource: catalogue.Resource) -> None:
    base = f"/v1/{resource.name}"
    one = ONE[resource.name]
    for (suffix, method), codes in RESPONSES.items():
        operation = document["paths"][base + suffix][method]
        assert set(operation["responses"]) == codes, (suffix, method)
        wanted_id = OPERATION_IDS[suffix, method].format(many=resource.type_name, one=one)
        assert operation["operationId"] == wanted_id
        if method == "get":
            head = document["paths"][base + suffix]["head"]
            assert head["operationId"] == "head" + wanted_id[0].upper() + wanted_id[1:]
            assert set(head["responses"]) == codes
            assert not any("content" in r for r in head["responses"].values())
        if (suffix, method) in READS:
            # The integrator key, and either the shared secret or a token covering this resource.
            assert operation["security"] == [
                {"integratorKey": [], "sharedSecret": []},
                {"integratorKey": [], "oauth2": [resource.name]},
            ]
        else:
            assert operation["security"] == [{"ingestKey": []}], (suffix, method)
        for code, response in operation["responses"].items():
            if code == "304":
                assert "content" not in response and "ETag" in response["headers"]
                continue
            (media_type,) = response["content"]
            assert media_type == ("application/json" if code < "300" else PROBLEM_JSON)
        parameters = {p["name"]: p for p in operation.get("parameters", [])}
        if suffix == "/{record_id}":
            assert parameters["record_id"]["in"] == "path" and parameters["record_id"]["required"]
        if method in ("put", "delete") or suffix == "/batch":
            assert parameters["Idempotency-Key"]["in"] == "header"
        if method in ("put", "post"):
            assert operation["requestBody"]["required"] is True

    listing = document["paths"][base]["get"]
    names = [p["name"] for p in listing["parameters"]]
    assert names == COMMON_PARAMETERS + list(resource.filters)
    assert all(p["in"] == "query" and not p["required"] for p in listing["parameters"])
    limit = listing["parameters"][0]["schema"]
    # No schema default: a generated client would send it, and a cursor's own limit would lose.
    assert (limit["minimum"], limit["maximum"], "default" in limit) == (1, 10_000, False)

    put_body = document["paths"][base + "/{record_id}"]["put"]["requestBody"]
    ref = put_body["content"]["application/json"]["schema"]["$ref"]
    write_schema = document["components"]["schemas"][ref.rpartition("/")[2]]
    fields = [f.name for f in resource.fields]
    assert list(write_schema["properties"]) == ["id", *fields, "extra", *catalogue.SERVER_FIELDS]


@pytest.mark.parametrize("name", ["users", "checkins", "sales", "locations"])
def test_a_written_record_matches_the_write_schema(document: Document, api: Api, name: str) -> None:
    refs = api.seed()
    body = record(name, "doc-1", refs)
    schema = {
        "$ref": f"#/components/schemas/{_schema_name(name)}Write",
        "components": document["components"],
    }
    validator = Draft202012Validator(schema, format_checker=FORMATS)
    validator.validate(body)
    assert not validator.is_valid({**body, "nickname": "x"})
    assert api.put(name, "doc-1", body).status_code == 201
    assert (
        api.put(name, "doc-2", {**record(name, "doc-2", refs), "nickname": "x"}).status_code == 422
    )


def _schema_name(resource_name: str) -> str:
    return "".join(part.title() for part in resource_name.split("-"))


@pytest.mark.parametrize("name", ["users", "checkins", "sales"])
def test_real_responses_conform_to_the_document(document: Document, api: Api, name: str) -> None:
    strict = _strict(document)
    refs = api.seed()

    def check(response: httpx.Response) -> None:
        assert_conforms(strict, response)

    check(api.put(name, "doc-1", record(name, "doc-1", refs)))
    check(api.put(name, "doc-1", record(name, "doc-1", refs, extra={"v": 2})))
    check(api.get(f"/v1/{name}/doc-1"))
    batch = [record(name, f"doc-{i}", refs) for i in range(2, 5)]
    check(api.batch(name, batch, [refs[name]]))
    check(api.delete(name, "doc-2"))
    first_page = api.get(f"/v1/{name}", params={"limit": 1})
    assert first_page.json()["next_cursor"] and 'rel="next"' in first_page.headers["link"]
    check(first_page)
    check(api.get(f"/v1/{name}", params={"cursor": first_page.json()["next_cursor"], "limit": 1}))
    ranged = api.get(f"/v1/{name}", params={"modified_since": EPOCH})
    assert {"id": "doc-2", "deleted": True} in [
        {k: r[k] for k in ("id", "deleted") if k in r} for r in ranged.json()["data"]
    ]
    check(ranged)
    check(api.get(f"/v1/{name}/lookup", params={"ids": "doc-1,doc-2,nope", "limit": 3}))
    check(api.post(f"/v1/{name}/lookup", json={"ids": ["doc-3", "doc-2", "nope"]}))

    check(api.get(f"/v1/{name}", params={"limit": 0}))
    check(api.client.get(f"/v1/{name}"))
    check(api.get(f"/v1/{name}/doc-2"))
    check(api.get(f"/v1/{name}/lookup?ids=" + "a" * 61_440))
    check(api.get(f"/v1/{name}/lookup"))
    check(api.put(name, "doc-9", {"nickname": 1}))
    check(api.post(f"/v1/{name}/lookup", json={"ids": [""]}))
    check(api.delete(name, "nope"))
    check(api.batch(name, [], ["nope"]))


def test_the_oauth2_scheme_names_the_flow_and_every_resource_as_a_scope(
    document: Document,
) -> None:
    scheme = document["components"]["securitySchemes"]["oauth2"]
    assert scheme["type"] == "oauth2"
    assert set(scheme["flows"]) == {"authorizationCode"}
    flow = scheme["flows"]["authorizationCode"]
    assert flow["authorizationUrl"] == "/oauth/authorize"
    assert flow["tokenUrl"] == flow["refreshUrl"] == "/oauth/token"
    assert list(flow["scopes"]) == [r.name for r in catalogue.RESOURCES]
    assert flow["scopes"]["checkins"].startswith("Read check-ins.")
    assert all(flow["scopes"].values())


def test_a_token_used_outside_its_scope_gets_the_documented_403(
    document: Document, api: Api, db: Engine
) -> None:
    strict = _strict(document)
    granted = connect(api.client, db, api.tenant.business.id, scope="checkins")
    headers = granted.read_headers()
    for response in (
        api.client.get("/v1/users", headers=headers),
        api.client.get("/v1/users/u-1", headers=headers),
        api.client.post("/v1/users/lookup", json={"ids": ["u-1"]}, headers=headers),
    ):
        assert response.status_code == 403, response.text
        assert_conforms(strict, response)


def test_a_problem_listing_more_than_100_places_conforms(document: Document, api: Api) -> None:
    locations = [record("locations", f"l-{i}", timezone="Nowhere/Zone") for i in range(101)]
    response = api.batch("locations", locations)
    assert_conforms(_strict(document), response)
    body = response.json()
    assert len(body["errors"]) == 100 and body["errors_not_listed"] == 1
    assert body["errors"][99] == {
        "detail": "'Nowhere/Zone' is not an IANA time zone (e.g. America/New_York).",
        "pointer": "/upsert/99/timezone",
        "index": 99,
    }


def test_rate_limited_and_limited_responses_conform_and_carry_their_headers(
    document: Document, db: Engine, db_url: str
) -> None:
    strict = _strict(document)
    tenant = new_tenant(db)
    one_each = {
        name: "1/hour"
        for name in ("read_rate_limit", "write_rate_limit", "auth_failure_rate_limit")
    }
    with (
        Server(Settings(database_url=db_url, **one_each)) as server,
        httpx.Client(
            base_url=server.base_url, headers={"X-Forwarded-For": "198.51.100.7"}
        ) as client,
    ):
        api = Api(client, tenant)
        responses = [
            (201, api.put("users", "u-1", record("users", "u-1"))),
            (429, api.put("users", "u-2", record("users", "u-2"))),
            (200, api.get("/v1/users/u-1")),
            (429, api.get("/v1/users")),
            (401, client.get("/v1/users")),
            (429, client.get("/v1/users")),
        ]
    for status, response in responses:
        assert response.status_code == status, response.text
        assert_conforms(strict, response)
        request = response.request
        documented = _operation(document, request.method, request.url.path)["responses"]
        named = documented[str(status)].get("headers", {})
        if status != 401:
            assert {"RateLimit", "RateLimit-Policy"} <= set(named)
        for header in named:
            if header != "Link":
                assert header.lower() in response.headers, (status, header)


def test_without_a_public_url_the_description_names_no_server(document: Document) -> None:
    """Relative to wherever it was fetched from, as OpenAPI's default "/" means."""
    assert "servers" not in document
