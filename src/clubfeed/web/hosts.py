"""Where clients reach this server: the public URL, or a Host header it answers for.

A Host header is the client's to choose. Echoed into a `Link` or an OAuth issuer it
would send pollers and apps wherever a client, or a DNS-rebinding page in a browser,
wants. So a request's Host must name one of the allowed hosts (400 otherwise, as
Django's ALLOWED_HOSTS does: a misconfiguration fails loudly at set-up, never as wrong
links), and every absolute URL the server writes comes from `next_page_link` or
`public_base`: the
configured `CLUBFEED_PUBLIC_URL` when set, else the request's own (checked) URL.
A trusted proxy's X-Forwarded-Host has become Host before this runs (`web/serving.py`).
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote_to_bytes, urlsplit

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from clubfeed.web.rfc9457 import problem_response
from clubfeed.web.state import state

# Probes and scrapers address a process by its IP; these answers hold no URLs.
UNCHECKED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_HOST = re.compile(r"(?P<name>[a-z0-9._-]+|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?")


def check_public_url(url: str) -> str:
    """`url` without a trailing slash, if it is an absolute http(s) URL with no query."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(
            f"CLUBFEED_PUBLIC_URL must look like https://api.example.com (optionally with a "
            f"path), not {url!r}"
        )
    return url.rstrip("/")


class AllowedHosts:
    """Answer only requests whose Host is allowed; others get 400 problem+json."""

    def __init__(self, app: ASGIApp, *, allowed: tuple[str, ...], public_url: str | None) -> None:
        self.app = app
        names = {name.lower() for name in allowed}
        if public_url is not None:
            names.add(urlsplit(check_public_url(public_url)).hostname or "")
        self.any = "*" in names
        self.names = frozenset(name for name in names if not name.startswith("*."))
        self.suffixes = tuple(name[1:] for name in names if name.startswith("*."))

    def allows(self, host: str) -> bool:
        match = _HOST.fullmatch(host.lower())
        if match is None:
            return False
        name = match["name"].strip("[]")
        return self.any or name in self.names or name.endswith(self.suffixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in UNCHECKED_PATHS:
            host = next((value for name, value in scope["headers"] if name == b"host"), None)
            # Without a Host (HTTP/1.0), URLs are built from the listening address.
            if host is not None and not self.allows(host.decode("latin-1")):
                response = problem_response(
                    400,
                    "Bad request",
                    f"This server does not answer for the host {host.decode('latin-1')!r}. "
                    "Use its public address; its operator lists the names it answers for "
                    "in CLUBFEED_ALLOWED_HOSTS or CLUBFEED_PUBLIC_URL.",
                    slug="bad-request",
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def next_page_link(request: Request, cursor: str) -> str:
    """The `Link` to the next page: this request's URL, as its client should reach it (the
    public URL's scheme, host and prefix), with `cursor` in place of any cursor it had.

    The other parameters stay as the client wrote them; built by hand, since parsing and
    re-encoding the query was a tenth of a one-record page's CPU.
    """
    configured = state(request).settings.public_url
    url = request.url
    base = f"{url.scheme}://{url.netloc}" if configured is None else check_public_url(configured)
    kept = [
        pair
        for pair in request.scope["query_string"].split(b"&")
        if pair and unquote_to_bytes(pair.partition(b"=")[0]) != b"cursor"
    ]
    kept.append(b"cursor=" + quote(cursor, safe="").encode())
    return f'<{base}{url.path}?{b"&".join(kept).decode("latin-1")}>; rel="next"'


def public_base(request: Request) -> str:
    """The base URL clients reach this server at, without a trailing slash."""
    configured = state(request).settings.public_url
    if configured is not None:
        return check_public_url(configured)
    return str(request.base_url).rstrip("/")
