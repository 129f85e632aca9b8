"""The /v1 resource routes found in one dict lookup, not by trying every route in turn.

FastAPI keeps each included router whole and asks them one by one, and a route's
request handler then solves its (empty) dependencies: together about a fifth of a
small request's CPU. The resource routes take nothing but the `Request`, so this
table finds one by its path's literal part and method and calls its endpoint
directly; the exception handlers still apply, since it sits where the router does.
Anything else (another method, so 405 with `Allow`, or another path) goes to the
router as before, so the two cannot disagree on what exists.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

_PARAMETER = "{"


def _key(path: str) -> tuple[str, ...]:
    """A route path's literal segments, up to its one parameter, which ends it."""
    literal, _, _ = path.partition(_PARAMETER)
    return tuple(literal.split("/"))


def _takes_only_request(route: APIRoute) -> bool:
    dependant = route.dependant
    return dependant.request_param_name is not None and not (
        dependant.dependencies
        or dependant.path_params
        or dependant.query_params
        or dependant.header_params
        or dependant.cookie_params
        or dependant.body_params
    )


class Dispatch:
    """Serve `routes` directly; pass every other request on to `app` (the router)."""

    def __init__(self, app: ASGIApp, routes: Iterable[APIRoute]) -> None:
        self.app = app
        self._table: dict[tuple[tuple[str, ...], str], APIRoute] = {}
        for route in routes:
            if not _takes_only_request(route):
                raise ValueError(f"{route.path} takes more than the request; route it normally")
            for method in route.methods or ():
                self._table[_key(route.path), method] = route

    def find(self, scope: Scope) -> APIRoute | None:
        """The route for the request's method and path, or None to leave it to the router."""
        path: str = scope["path"]
        # "/v1/users/u 1/x" is ("", "v1", "users", "") for the record route, whose
        # parameter takes the rest, slashes included; exact paths are tried first.
        segments = tuple(path.split("/"))
        method: str = scope["method"]
        route = self._table.get((segments, method))
        if route is None and len(segments) > 3:
            route = self._table.get(((*segments[:3], ""), method))
        return route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.find(scope) if scope["type"] == "http" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        match, child_scope = route.matches(scope)
        if match is not Match.FULL:
            await self.app(scope, receive, send)
            return
        scope.update(child_scope)
        response: Any = await route.endpoint(Request(scope, receive, send))
        await response(scope, receive, send)
