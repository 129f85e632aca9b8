"""Every request timed, counted and logged once, by one pure ASGI middleware.

The middleware wraps `send` to see the status, and after the response reads where
routing put the request (`scope["route"]`) to name it by its template
(`/v1/checkins/{record_id}`), never by its path, which holds record ids. The line it
logs holds no query string (cursors, codes) and no header but the request id: the
callers' ids come from `request.state`, where `web.callers` puts them once the
credentials are checked.
"""

from __future__ import annotations

import re
import secrets
from time import perf_counter
from typing import Any

from fastapi import FastAPI
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from structlog.contextvars import bind_contextvars

from clubfeed.settings import Settings
from clubfeed.web import logs, metrics, problems

REQUEST_ID = b"x-request-id"
# A request id from the client is kept when it is 1 to 128 visible ASCII characters.
SANE_REQUEST_ID = re.compile(rb"[\x21-\x7e]{1,128}")
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
UNMATCHED = "unmatched"
_CONVERTER = re.compile(r":[^}]+}")


def install(app: FastAPI, settings: Settings, meter: metrics.Meter) -> None:
    """Add what the settings switch on: the middleware, and the `/metrics` page."""
    app.add_exception_handler(ClientDisconnect, problems.client_disconnected)
    if isinstance(meter, metrics.Prometheus):
        app.add_api_route("/metrics", metrics.endpoint(meter), include_in_schema=False)
    if settings.access_log or isinstance(meter, metrics.Prometheus):
        app.add_middleware(Observer, meter=meter, access_log=settings.access_log)


def request_id(headers: list[tuple[bytes, bytes]]) -> str:
    """The client's X-Request-ID if it is sane, else a new random one."""
    for name, value in headers:
        if name == REQUEST_ID:
            if SANE_REQUEST_ID.fullmatch(value):
                return value.decode("ascii")
            break
    return secrets.token_hex(16)


class Observer:
    """Times each HTTP request, reports it to the meter and logs its line."""

    def __init__(self, app: ASGIApp, *, meter: metrics.Meter, access_log: bool) -> None:
        self.app = app
        self.meter = meter
        self.access_log = access_log
        self._templates: dict[str, str] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = perf_counter()
        status = 0
        header: tuple[bytes, bytes] | None = None
        rid = ""
        if self.access_log:
            rid = request_id(scope["headers"])
            header = (REQUEST_ID, rid.encode())
            # Left bound when the request ends: uvicorn runs each request in a task of its
            # own, and its traceback of a failed request is logged after this returns.
            bind_contextvars(request_id=rid)
        # Shared with the Request objects of the routes, which write the caller's ids.
        caller: dict[str, Any] = scope.setdefault("state", {})

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if header is not None:
                    message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            seconds = perf_counter() - start
            # Not started: an exception reaches Starlette's outer handler, or the app
            # returned without a response; either way the client gets a 500.
            status = status or 500
            route = self._template(scope)
            method = scope["method"] if scope["method"] in METHODS else "other"
            self.meter.request(method, route, status, seconds)
            if self.access_log:
                client = scope.get("client")
                logs.access(
                    {
                        "method": method,
                        "route": route,
                        "status": status,
                        "duration_ms": round(seconds * 1000, 3),
                        "client": client[0] if client else None,
                        "integrator_id": caller.get("integrator_id"),
                        "business_id": caller.get("business_id"),
                    },
                    status=status,
                )

    def _template(self, scope: Scope) -> str:
        """The matched route's path, parameters without their converters; UNMATCHED if none."""
        route = scope.get("route")
        path: str | None = getattr(route, "path", None)
        if path is None:
            return UNMATCHED
        template = self._templates.get(path)
        if template is None:
            template = self._templates[path] = _CONVERTER.sub("}", path)
        return template
