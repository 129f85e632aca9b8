"""OpenAPI descriptions of the OAuth endpoints, which read their own parameters."""

from __future__ import annotations

from typing import Any

from clubfeed.oauth.clients import GRANT_TYPES, SCOPES

Schema = dict[str, Any]

_STRING: Schema = {"type": "string"}
_ERROR: Schema = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "An RFC 6749 §5.2 error code"},
        "error_description": _STRING,
    },
}
_RETRY_AFTER: Schema = {"description": "Seconds to wait", "schema": {"type": "integer"}}
_NO_STORE = {
    "Cache-Control": {"description": "no-store", "schema": _STRING},
    "Pragma": {"description": "no-cache", "schema": _STRING},
}


def _json(description: str, schema: Schema, **headers: Schema) -> Schema:
    return {
        "description": description,
        "headers": {**_NO_STORE, **headers},
        "content": {"application/json": {"schema": schema}},
    }


def _form(schema: Schema) -> Schema:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/x-www-form-urlencoded": {"schema": schema}},
        }
    }


_CLIENT_CREDENTIALS: dict[str, Schema] = {
    "client_id": {**_STRING, "description": "With client_secret_post (or use HTTP Basic)"},
    "client_secret": {**_STRING, "description": "With client_secret_post (or use HTTP Basic)"},
}

_CLIENT_ERRORS: dict[int | str, Schema] = {
    400: _json("A malformed request, or a code or refresh token that is not valid", _ERROR),
    401: _json(
        "The client's credentials are missing or wrong",
        _ERROR,
        **{"WWW-Authenticate": {"description": "Basic", "schema": _STRING}},
    ),
    429: _json(
        "Too many requests from this client (or, unauthenticated, from this address)",
        _ERROR,
        **{"Retry-After": _RETRY_AFTER},
    ),
    503: _json(
        "error temporarily_unavailable: the database is unavailable for now; nothing was "
        "changed, unless error_description says the commit itself failed",
        _ERROR,
        **{"Retry-After": _RETRY_AFTER},
    ),
}

TOKEN_REQUEST = _form(
    {
        "type": "object",
        "required": ["grant_type"],
        "properties": {
            "grant_type": {"type": "string", "enum": list(GRANT_TYPES)},
            "code": {**_STRING, "description": "authorization_code: the code from the redirect"},
            "redirect_uri": {
                **_STRING,
                "description": "authorization_code: as sent to /oauth/authorize, if it was sent",
            },
            "code_verifier": {
                **_STRING,
                "description": "authorization_code: the PKCE verifier (43 to 128 characters)",
            },
            "refresh_token": {**_STRING, "description": "refresh_token: the latest refresh token"},
            **_CLIENT_CREDENTIALS,
        },
    }
)

TOKEN_RESPONSES: dict[int | str, Schema] = {
    200: _json(
        "Tokens: the access token lives expires_in seconds; the refresh token is good once",
        {
            "type": "object",
            "required": ["access_token", "token_type", "expires_in", "refresh_token", "scope"],
            "properties": {
                "access_token": _STRING,
                "token_type": {"type": "string", "enum": ["Bearer"]},
                "expires_in": {"type": "integer"},
                "refresh_token": _STRING,
                "scope": {**_STRING, "description": "Resource names separated by spaces"},
            },
        },
    ),
    **_CLIENT_ERRORS,
}

REVOKE_REQUEST = _form(
    {
        "type": "object",
        "required": ["token"],
        "properties": {
            "token": {**_STRING, "description": "An access or refresh token"},
            "token_type_hint": {
                **_STRING,
                "description": "Ignored: access and refresh tokens are both looked up",
            },
            **_CLIENT_CREDENTIALS,
        },
    }
)

REVOKE_RESPONSES: dict[int | str, Schema] = {
    200: _json(
        "Revoked, or not a token this client holds (RFC 7009 §2.2)",
        {"type": "object", "maxProperties": 0},
    ),
    **_CLIENT_ERRORS,
}

METADATA_RESPONSES: dict[int | str, Schema] = {
    200: {
        "description": "RFC 8414 authorization server metadata",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["issuer", "authorization_endpoint", "token_endpoint"],
                    "properties": {
                        "issuer": _STRING,
                        "authorization_endpoint": _STRING,
                        "token_endpoint": _STRING,
                        "revocation_endpoint": _STRING,
                        "response_types_supported": {"type": "array", "items": _STRING},
                        "response_modes_supported": {"type": "array", "items": _STRING},
                        "grant_types_supported": {"type": "array", "items": _STRING},
                        "code_challenge_methods_supported": {"type": "array", "items": _STRING},
                        "token_endpoint_auth_methods_supported": {
                            "type": "array",
                            "items": _STRING,
                        },
                        "revocation_endpoint_auth_methods_supported": {
                            "type": "array",
                            "items": _STRING,
                        },
                        "scopes_supported": {"type": "array", "items": _STRING},
                        "service_documentation": _STRING,
                    },
                }
            }
        },
    }
}


def _query(name: str, description: str, schema: Schema, required: bool = False) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
    }


AUTHORIZE_PARAMETERS = {
    "parameters": [
        _query("response_type", "Always code", {"type": "string", "enum": ["code"]}, True),
        _query("client_id", "Your client_id", _STRING, True),
        _query(
            "redirect_uri",
            "One of your registered redirect URIs, exactly; may be left out if you registered one",
            _STRING,
        ),
        _query(
            "scope",
            "Resource names separated by spaces; all resources if left out",
            {"type": "string", "example": " ".join(SCOPES[:3])},
        ),
        _query("state", "Echoed back to your redirect URI; use it against CSRF", _STRING),
        _query(
            "code_challenge",
            "PKCE: BASE64URL(SHA256(code_verifier)), required of every client",
            _STRING,
            True,
        ),
        _query("code_challenge_method", "Always S256", {"type": "string", "enum": ["S256"]}, True),
    ]
}

_HTML = {"text/html": {"schema": _STRING}}
AUTHORIZE_RESPONSES: dict[int | str, Schema] = {
    200: {"description": "The consent page, for the business's logged-in admin", "content": _HTML},
    303: {
        "description": (
            "To the login page (and back) if no admin is logged in; to your redirect URI "
            "with code and state once the admin approves, or with error and state when the "
            "admin denies or the request is invalid"
        ),
        "headers": {"Location": {"schema": _STRING}},
    },
    400: {
        "description": (
            "An error page, never a redirect, when the client is unknown, the redirect URI "
            "is not registered exactly, or a parameter is repeated"
        ),
        "content": _HTML,
    },
    503: {
        "description": "A page saying the service is briefly unavailable (its database is down)",
        "headers": {"Retry-After": _RETRY_AFTER},
        "content": _HTML,
    },
}

# The consent page's own form: a browser posts it, with the session cookie, back to the
# authorization request's URL, so its query is the authorization request again.
CONSENT_REQUEST = {
    **AUTHORIZE_PARAMETERS,
    **_form(
        {
            "type": "object",
            "required": ["decision", "csrf_token"],
            "properties": {
                "decision": {"type": "string", "enum": ["approve", "deny"]},
                "csrf_token": {**_STRING, "description": "The consent page's security token"},
            },
        }
    ),
}
CONSENT_RESPONSES: dict[int | str, Schema] = {
    303: AUTHORIZE_RESPONSES[303],
    400: AUTHORIZE_RESPONSES[400],
    403: {
        "description": "An error page when the form lacks this session's security token",
        "content": _HTML,
    },
    503: AUTHORIZE_RESPONSES[503],
}
