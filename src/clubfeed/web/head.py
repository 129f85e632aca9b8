"""HEAD answered on every GET route of the API, as GET is but without the body (RFC 9110 §9.3.2).

FastAPI routes GET alone, so a HEAD (a load balancer's probe, a client checking an
ETag) met 405. The request goes down as a GET; the status and headers come back as
they are, Content-Length included, and the body is dropped. The scope is the
request's own, changed in place and changed back as the response starts, so what
the layers write into it (its route, its rate-limit fields) reaches the layers
outside, and the server, its log line and its metrics see a HEAD. The console is left
out: some of its GETs show a one-time secret and spend it, which a HEAD (a browser's
prefetch, a link checker) must never do.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clubfeed.web import pages


class HeadAsGet:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD" or pages.is_console(scope["path"]):
            await self.app(scope, receive, send)
            return

        async def without_body(message: Message) -> None:
            scope["method"] = "HEAD"
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        scope["method"] = "GET"
        try:
            await self.app(scope, receive, without_body)
        finally:
            scope["method"] = "HEAD"


def with_head(methods: set[str], path: str) -> set[str]:
    """The methods a path answers, HEAD included wherever GET is (outside the console)."""
    return methods | {"HEAD"} if "GET" in methods and not pages.is_console(path) else methods
