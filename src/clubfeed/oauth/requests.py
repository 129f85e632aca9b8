"""The Starlette → Authlib request adapter.

`Incoming` is read on the event loop (the body must be awaited); Authlib then runs
in the thread pool on an `OAuthRequest` built from it, so the worker thread never
touches Starlette's request object.
"""

from __future__ import annotations

import base64
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl

from authlib.oauth2.rfc6749 import OAuth2Payload, OAuth2Request
from fastapi import Request

from clubfeed.web.ratelimit import client_address

FORM = "application/x-www-form-urlencoded"
Params = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Incoming:
    """What OAuth needs of an HTTP request: its URL, headers, parameters and origin."""

    method: str
    url: str
    headers: Mapping[str, str]
    cookies: Mapping[str, str]
    query: Params
    form: Params
    form_ok: bool
    client_ip: str  # the rate-limit key of its address (web.ratelimit.client_address)


async def incoming(request: Request) -> Incoming:
    """Read a request; `form_ok` is False when it has a body that is not form-encoded."""
    form: Params = ()
    form_ok = True
    if request.method == "POST":
        body = await request.body()
        media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media_type == FORM:
            # Percent-escapes that are not UTF-8 decode to U+FFFD and so match nothing.
            form = tuple(
                parse_qsl(body.decode("latin-1"), keep_blank_values=True, errors="replace")
            )
        else:
            form_ok = not body
    return Incoming(
        method=request.method,
        url=str(request.url),
        headers=request.headers,
        cookies=request.cookies,
        query=tuple(request.query_params.multi_items()),
        form=form,
        form_ok=form_ok,
        client_ip=client_address(request),
    )


def repeated(params: Params) -> str | None:
    """The first parameter sent more than once (RFC 6749 §3.1, §3.2 forbid it), if any."""
    seen: set[str] = set()
    for name, value in params:
        if value and name in seen:
            return name
        if value:
            seen.add(name)
    return None


def basic_credentials(headers: Mapping[str, str]) -> str | None:
    """The credentials of an `Authorization: Basic` header, as sent; None if it is not Basic."""
    scheme, _, credentials = headers.get("authorization", "").strip().partition(" ")
    return credentials.strip() if scheme.lower() == "basic" else None


def well_formed_basic(credentials: str) -> bool:
    """Whether Basic credentials are base64 of UTF-8 `client_id:client_secret` (RFC 7617 §2).

    Authlib decodes them as UTF-8 unguarded (other bytes raise) and skips characters
    that are not base64, so anything else must be refused before it gets there.
    """
    try:
        decoded = base64.b64decode(credentials, validate=True).decode()
    except ValueError:  # not base64 (binascii.Error), or not UTF-8 (UnicodeDecodeError)
        return False
    return ":" in decoded


class Payload(OAuth2Payload):
    """Parameters as Authlib reads them; an empty one counts as omitted (RFC 6749 §3.1)."""

    def __init__(self, params: Sequence[tuple[str, str]]) -> None:
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for name, value in params:
            if value:
                self._datalist[name].append(value)
        self._data = {name: values[0] for name, values in self._datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class OAuthRequest(OAuth2Request):
    """An Authlib request over `params`: the query of an authorization request, else the form.

    Authlib raises InsecureTransportError here unless the URL is https (or http on loopback).
    """

    def __init__(self, incoming: Incoming, params: Params) -> None:
        super().__init__(incoming.method, incoming.url, headers=incoming.headers)
        self.incoming = incoming
        self.payload = Payload(params)

    @property
    def args(self) -> dict[str, str]:
        return self.payload.data

    @property
    def form(self) -> dict[str, str]:
        return self.payload.data
