"""JSON responses compressed as the client's Accept-Encoding allows: zstd, br or gzip.

A 10,000-record page is about 2.6 MB of JSON and compresses some twelvefold. Levels
are picked for speed, since a page must not cost much more to send than to build:
zstd at level 1 and gzip through ISA-L (python-isal) at level 1 take 2 ms or so for
such a page where zlib's default takes 19; brotli at quality 1 is about as fast and
as small as zstd (measured in `make bench`). Bodies under MIN_BYTES go as they are: a
frame's overhead outweighs what little they save.

Only whole bodies sent in one message are compressed (every JSON answer of this API);
a streamed body goes untouched. Large bodies are compressed off the event loop. A
strong ETag names one representation, so a compressed answer's tag gets the coding
as a suffix (`"…-zstd"`); `identity_tag` takes it off again to compare.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Final

import brotli
import zstandard
from isal import igzip
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MIN_BYTES: Final = 1024
# Larger bodies are compressed in the thread pool (the codecs release the GIL).
OFF_LOOP_BYTES: Final = 64 * 1024
CODINGS: Final = ("zstd", "br", "gzip")
"""What the server offers, in its order of preference when the client ranks them equal."""

_JSON_TYPES = (b"application/json", b"application/problem+json")
# A ZstdCompressor must not be used by two threads at once (it releases the GIL while it
# works: shared, concurrent large pages crashed the process), so each thread has its own.
_zstd = threading.local()


def _compress_zstd(body: bytes) -> bytes:
    compressor: zstandard.ZstdCompressor | None = getattr(_zstd, "compressor", None)
    if compressor is None:
        compressor = _zstd.compressor = zstandard.ZstdCompressor(level=1)
    return compressor.compress(body)


def _compress_br(body: bytes) -> bytes:
    compressed: bytes = brotli.compress(body, quality=1)
    return compressed


def _compress_gzip(body: bytes) -> bytes:
    return igzip.compress(body, compresslevel=1, mtime=0)


_COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "zstd": _compress_zstd,
    "br": _compress_br,
    "gzip": _compress_gzip,
}


def parse_codings(value: str) -> tuple[str, ...]:
    """The CLUBFEED_COMPRESSION setting: "off", or some of zstd, br, gzip in order of preference."""
    if value.strip().lower() == "off":
        return ()
    codings = tuple(part.strip().lower() for part in value.split(",") if part.strip())
    unknown = [c for c in codings if c not in CODINGS]
    if unknown or not codings:
        raise ValueError(
            f"CLUBFEED_COMPRESSION must be 'off' or a list of {', '.join(CODINGS)}; got {value!r}"
        )
    return codings


def choose(accept_encoding: str | None, offered: tuple[str, ...]) -> str | None:
    """The coding to answer in: the offered one the client weighs highest (RFC 9110 §12.5.3).

    Ties go to the server's order; q=0 refuses a coding, and `*` stands for any not named.
    """
    if not accept_encoding:
        return None
    weights: dict[str, float] = {}
    for item in accept_encoding.split(","):
        name, _, params = item.strip().partition(";")
        weight = 1.0
        for param in params.split(";"):
            key, _, number = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = float(number)
                except ValueError:
                    weight = 0.0
        if name:
            weights[name.strip().lower()] = weight
    star = weights.get("*", 0.0)
    best, best_weight = None, 0.0
    for coding in offered:
        weight = weights.get(coding, star)
        if weight > best_weight:
            best, best_weight = coding, weight
    return best


def identity_tag(tag: str) -> str:
    """An entity tag as the uncompressed representation has it (suffix taken off)."""
    for coding in CODINGS:
        suffix = f'-{coding}"'
        if tag.endswith(suffix):
            return tag[: -len(suffix)] + '"'
    return tag


class Compression:
    """Compress each whole JSON body of MIN_BYTES or more in the coding the client prefers."""

    def __init__(self, app: ASGIApp, *, codings: tuple[str, ...]) -> None:
        self.app = app
        self.codings = codings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.codings:
            await self.app(scope, receive, send)
            return
        coding = choose(Headers(scope=scope).get("accept-encoding"), self.codings)
        start: Message | None = None

        async def compressing(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            begun, start = start, None
            headers = MutableHeaders(raw=list(begun.get("headers", [])))
            if _compressible(headers):
                headers.add_vary_header("Accept-Encoding")
            body: bytes = message.get("body", b"")
            if (
                coding is None
                or message.get("more_body", False)
                or len(body) < MIN_BYTES
                or not _compressible(headers)
            ):
                await send({**begun, "headers": headers.raw})
                await send(message)
                return
            compress = _COMPRESSORS[coding]
            if len(body) >= OFF_LOOP_BYTES:
                body = await run_in_threadpool(compress, body)
            else:
                body = compress(body)
            headers["Content-Encoding"] = coding
            headers["Content-Length"] = str(len(body))
            if (tag := headers.get("etag")) is not None and tag.endswith('"'):
                headers["ETag"] = f'{tag[:-1]}-{coding}"'
            await send({**begun, "headers": headers.raw})
            await send({**message, "body": body})

        await self.app(scope, receive, compressing)


def _compressible(headers: MutableHeaders) -> bool:
    media_type = headers.get("content-type", "").encode("latin-1").split(b";")[0].strip()
    return media_type in _JSON_TYPES and "content-encoding" not in headers
