"""Request limits enforced before any handler runs: body size and pace, query size, URL encoding."""

from __future__ import annotations

import asyncio
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clubfeed.web.rfc9457 import problem_response


class RequestLimits:
    """Refuse oversized bodies (413), oversized query strings (414) and non-UTF-8 URLs (400).

    A body that stalls for `body_timeout_s` between two chunks ends the request (408), so a
    slow client cannot hold a request, its connection or a shutdown open.
    """

    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, max_query_bytes: int, body_timeout_s: int
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_query_bytes = max_query_bytes
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query: bytes = scope.get("query_string", b"")
        if len(query) > self.max_query_bytes:
            await self._refuse(
                scope,
                receive,
                send,
                414,
                "URI too long",
                f"The query string is {len(query):,} bytes; the limit is {self.max_query_bytes:,}. "
                "Send long id lists to POST /v1/<resource>/lookup instead.",
                "uri-too-long",
            )
            return
        if (part := _not_utf8(scope)) is not None:
            await self._refuse(
                scope,
                receive,
                send,
                400,
                "Bad request",
                f"The {part} is not valid UTF-8 once percent-decoded; percent-encode "
                "the UTF-8 bytes of the text (e.g. é as %C3%A9).",
                "bad-request",
            )
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._refuse(
                scope,
                receive,
                send,
                413,
                "Content too large",
                self._too_large(),
                "content-too-large",
            )
            return
        await self.app(scope, self._counting(receive), send)

    def _too_large(self) -> str:
        return (
            f"The request body is larger than {self.max_body_bytes:,} bytes; "
            "split it into batches of at most 10,000 records."
        )

    def _counting(self, receive: Receive) -> Receive:
        """Count a body sent without Content-Length, stop it at the limit, and time its chunks."""
        seen = 0
        complete = False

        async def counted() -> Message:
            nonlocal seen, complete
            if complete:
                # After the body, receive() waits for a disconnect, which may take as long
                # as the response does.
                return await receive()
            try:
                async with asyncio.timeout(self.body_timeout_s):
                    message = await receive()
            except TimeoutError:
                raise BodyStalled(
                    f"The request body stalled: nothing arrived for {self.body_timeout_s} s. "
                    "Send the whole body without pausing, then retry."
                ) from None
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    raise BodyTooLarge(self._too_large())
            return message

        return counted

    @staticmethod
    async def _refuse(
        scope: Scope, receive: Receive, send: Send, status: int, title: str, detail: str, slug: str
    ) -> None:
        await problem_response(status, title, detail, slug=slug)(scope, receive, send)


def _not_utf8(scope: Scope) -> str | None:
    """Which part of the URL ("path" or "query string") is not UTF-8 once percent-decoded.

    The server has already decoded the path, replacing bad bytes with U+FFFD, so that
    `%ff` and `%fe` would name the same record: the raw path is checked instead.
    """
    parts = (
        ("path", scope.get("raw_path") or b""),
        ("query string", scope.get("query_string", b"")),
    )
    for name, raw in parts:
        try:
            unquote_to_bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            return name
    return None


class BodyTooLarge(Exception):
    """A streamed body passed the limit; answered 413 by the app's handler."""


class BodyStalled(Exception):
    """A body paused past the body timeout; answered 408 (and the connection closed)."""
