"""Headers every /v1 response carries: records and credentials' answers are private.

`no-store` keeps a tenant's records out of shared and browser caches; `nosniff` stops
a browser from reading JSON as anything else. Problem responses carry the same pair
(`web/rfc9457.py`), since some are sent outside the middleware stack (500s, 503s).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PRIVATE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
_RAW = [(name.lower().encode(), value.encode()) for name, value in PRIVATE.items()]
_NAMES = frozenset(name for name, _ in _RAW)


class ApiHeaders:
    """Set `PRIVATE` on every response under /v1, whatever produced it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not (path == "/v1" or path.startswith("/v1/")):
            await self.app(scope, receive, send)
            return

        async def send_private(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                message["headers"] = [h for h in headers if h[0] not in _NAMES] + _RAW
            await send(message)

        await self.app(scope, receive, send_private)
