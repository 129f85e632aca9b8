"""How uvicorn serves the app: timeouts, a connection limit, proxy headers, graceful shutdown,
and what `clubfeed serve` readies in its own process before uvicorn starts the workers.

uvicorn bounds keep-alive idle time and, with `timeout_graceful_shutdown`, how long
SIGTERM waits; it has no deadline for a request head (its keep-alive timer starts only
after a response, and any byte stops it), so a client sending half a head holds a
connection forever. `EdgeProtocol` adds that deadline to uvicorn's httptools protocol
(the parser `uvicorn[standard]` installs and picks), and answers requests beyond the
connection limit in problem+json. Stalled bodies are the app's: see `web/limits.py`.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import resource
import shutil
import sys
import tempfile
from http import HTTPStatus
from pathlib import Path
from typing import Any

import uvicorn
from starlette.responses import Response
from uvicorn._types import ASGI3Application, ASGIReceiveCallable, ASGISendCallable, Scope
from uvicorn.config import STARTUP_FAILURE
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors import Multiprocess

from clubfeed.settings import Settings
from clubfeed.web import compression, hosts, logs, metrics, ratelimit
from clubfeed.web.rfc9457 import problem_response, unavailable

FACTORY = "clubfeed.app:app_from_env"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# httptools buffers a head whole, however long: bound it (the longest query is 60 KiB).
MAX_HEAD_BYTES = 128 * 1024
# httptools parses a URL with 16-bit offsets.
MAX_URL_BYTES = 65_535
# File descriptors a process needs beyond its client connections: database pool, logs, files.
SPARE_FDS = 256


class EdgeConfig(uvicorn.Config):
    """uvicorn's Config plus the head deadline; picklable, so `--workers` processes get it."""

    def __init__(self, app: Any, *, header_timeout: int, **options: Any) -> None:
        # uvicorn's own proxy middleware is replaced by `ForwardedHeaders` in `load`.
        self.forwarded_headers = options.pop("proxy_headers", True)
        super().__init__(app, proxy_headers=False, http=f"{__name__}:EdgeProtocol", **options)
        self.header_timeout = header_timeout

    def load(self) -> None:
        super().load()
        if self.forwarded_headers:
            self.loaded_app = ForwardedHeaders(
                self.loaded_app, trusted_hosts=self.forwarded_allow_ips
            )


class ForwardedHeaders(ProxyHeadersMiddleware):
    """uvicorn's X-Forwarded-Proto/-For handling, plus X-Forwarded-Host from the same proxies.

    A trusted proxy's X-Forwarded-Host (its last value: the one that proxy set) becomes
    the Host header, which `web/hosts.py` then checks like any other; from anyone else
    the header is ignored.
    """

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if (
            scope["type"] == "http"
            and (client := scope["client"])
            and client[0] in self.trusted_hosts
        ):
            forwarded = [value for name, value in scope["headers"] if name == b"x-forwarded-host"]
            if forwarded:
                host = b",".join(forwarded).rsplit(b",", 1)[-1].strip()
                headers = [(n, v) for n, v in scope["headers"] if n != b"host"]
                scope["headers"] = [*headers, (b"host", host)]
        await super().__call__(scope, receive, send)


class EdgeProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline on every request head.

    The deadline runs from a new connection's start, or from the first byte of a later
    request (until then uvicorn's keep-alive timer runs), to the head's end; then the
    connection is closed unanswered, as a stalled client would not read an answer. A
    request begins where the parser says so, not at the first byte after a response:
    an endpoint may answer before its body has arrived, and the rest of that body is
    still that request's. A head over MAX_HEAD_BYTES gets 431, since httptools would
    buffer it without end. A URL over MAX_URL_BYTES gets 414, where httptools' URL parser
    (16-bit offsets) would fail and uvicorn answer a plain-text 400.
    Requests beyond the connection limit get a problem+json 503 with Retry-After,
    not uvicorn's plain-text one. On shutdown, a request whose body has still not
    arrived when the grace ends gets a 503 too, where uvicorn would cancel it into a
    500; it cannot have written anything, as writes read their whole body first.
    """

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        assert isinstance(config, EdgeConfig)
        self.header_timeout = config.header_timeout
        self.max_connections: int | None = config.limit_concurrency
        self.limit_concurrency = None  # checked here instead, to answer in problem+json
        self.shutdown_grace = config.timeout_graceful_shutdown
        self.head_timer: asyncio.TimerHandle | None = None
        self.head_bytes = 0  # received while a head is incomplete
        self.head_size = 0  # of the current head, as parsed
        self.url_size = 0  # of the current request's URL, as parsed

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_arrived()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # A head that begins within this chunk is counted from the next one: a chunk may
        # also hold the end of the previous request's body.
        counting = self.head_timer is not None
        super().data_received(data)
        if counting and self.head_timer is not None:
            self.head_bytes += len(data)
            if self.head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
                self.transport.write(_raw(_HEAD_TOO_LARGE))
                self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.head_size = 0
        self.url_size = 0
        if self.head_timer is None:
            self._await_head()

    def on_url(self, url: bytes) -> None:
        self.url_size += len(url)
        self.head_size += len(url)
        # Past the limit the rest is dropped and the request answered 414 (below).
        if self.url_size <= MAX_URL_BYTES:
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self.head_size += len(name) + len(value) + 4

    def on_headers_complete(self) -> None:
        self._head_arrived()
        limit = self.max_connections
        if self.head_size > MAX_HEAD_BYTES:
            self.app = _head_too_large
        elif self.url_size > MAX_URL_BYTES:
            self.url = b"/"
            self.app = _url_too_long
        elif limit is not None and (len(self.connections) > limit or len(self.tasks) >= limit):
            self.app = _busy
        else:
            self.app = self.config.loaded_app
        super().on_headers_complete()

    def shutdown(self) -> None:
        super().shutdown()
        if self.shutdown_grace is not None and not self.transport.is_closing():
            self.loop.call_later(self.shutdown_grace, self._body_too_late)

    def _body_too_late(self) -> None:
        cycle = self.cycle
        if cycle is None or cycle.response_started or not cycle.more_body:
            return
        self.transport.write(_raw(_SHUTTING_DOWN))
        # uvicorn's own flags: the app's sends are dropped, its receive says disconnect.
        cycle.disconnected = True
        cycle.message_event.set()
        self.transport.close()

    def _await_head(self) -> None:
        self._head_arrived()
        self.head_bytes = 0
        self.head_timer = self.loop.call_later(self.header_timeout, self._head_too_slow)

    def _head_arrived(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _head_too_slow(self) -> None:
        self.head_timer = None
        if not self.transport.is_closing():
            self.transport.close()


_BUSY = unavailable(
    "This server process is at its connection limit; retry in a second.",
    headers={"Connection": "close"},
)
_SHUTTING_DOWN = unavailable(
    "This server is shutting down and the request body had not arrived; retry.",
    headers={"Connection": "close"},
)
_HEAD_TOO_LARGE = problem_response(
    431,
    "Request header fields too large",
    f"The request line and headers are over {MAX_HEAD_BYTES:,} bytes; "
    "send long id lists to POST /v1/<resource>/lookup instead.",
    slug="headers-too-large",
    headers={"Connection": "close"},
)


_URL_TOO_LONG = problem_response(
    414,
    "URI too long",
    f"The URL is over {MAX_URL_BYTES:,} bytes; send long id lists to POST "
    "/v1/<resource>/lookup instead.",
    slug="uri-too-long",
    headers={"Connection": "close"},
)


def _raw(response: Response) -> bytes:
    """The response as bytes on the wire, for a connection the app no longer answers on."""
    status = HTTPStatus(response.status_code)
    head = [f"HTTP/1.1 {status.value} {status.phrase}\r\n".encode()]
    head += [name + b": " + value + b"\r\n" for name, value in response.raw_headers]
    return b"".join([*head, b"\r\n", bytes(response.body)])


def _answer(response: Response) -> ASGI3Application:
    """An ASGI app that sends `response`, for requests the app itself must not see."""

    async def app(_scope: Scope, _receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        start = response.raw_headers
        await send(
            {"type": "http.response.start", "status": response.status_code, "headers": start}
        )
        await send({"type": "http.response.body", "body": bytes(response.body), "more_body": False})

    return app


_busy = _answer(_BUSY)
_head_too_large = _answer(_HEAD_TOO_LARGE)
_url_too_long = _answer(_URL_TOO_LONG)


def config(app: Any, settings: Settings, *, host: str, port: int, **options: Any) -> EdgeConfig:
    """The uvicorn configuration for `app` (an ASGI app, or a factory's import string)."""
    return EdgeConfig(
        app,
        host=host,
        port=port,
        header_timeout=settings.header_timeout_s,
        timeout_keep_alive=settings.keepalive_timeout_s,
        limit_concurrency=settings.max_connections,
        timeout_graceful_shutdown=settings.shutdown_grace_s,
        # A failing start (a setting the app refuses as it builds) stops the server,
        # where "auto" would log it at INFO and serve 500s.
        lifespan="on",
        **options,
    )


def prepare(settings: Settings, workers: int) -> dict[str, Any]:
    """Check the settings, configure logs, give the workers an empty metrics directory.

    Returns uvicorn's options for logging: its own configuration and access log are
    replaced by ours (`web.logs`, `web.observe`). Several workers share metrics through
    files in PROMETHEUS_MULTIPROC_DIR: an operator's directory has its old `*.db` files
    removed (values of processes gone would otherwise still count); without one, a
    temporary directory is made and removed when this process exits. Raises ValueError
    for settings the server cannot start with.
    """
    metrics.check(settings)
    ratelimit.check(settings)
    compression.parse_codings(settings.compression)
    if settings.public_url is not None:
        hosts.check_public_url(settings.public_url)
    logs.configure(settings)
    directory = settings.metrics_dir
    if directory is None and workers > 1 and settings.metrics != "off":
        directory = tempfile.mkdtemp(prefix="clubfeed-metrics-")
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
    if directory is not None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        for stale in Path(directory).glob("*.db"):
            stale.unlink()
        # Worker processes are spawned after this, and read it like every setting.
        os.environ[MULTIPROC_ENV] = directory
    return {"log_config": None, "access_log": False}


def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    workers: int,
    forwarded_allow_ips: str,
    **options: Any,
) -> None:
    """Serve the app from `app_from_env` until SIGTERM or SIGINT (what `uvicorn.run` does).

    `options` are more of uvicorn's (those `prepare` returns).
    """
    edge = config(
        FACTORY,
        settings,
        host=host,
        port=port,
        factory=True,
        workers=workers,
        log_level="info",
        forwarded_allow_ips=forwarded_allow_ips,
        **options,
    )
    _allow_descriptors(settings.max_connections + SPARE_FDS)
    server = uvicorn.Server(edge)
    if workers > 1:
        Multiprocess(edge, sockets=[edge.bind_socket()]).run()
    else:
        server.run()
        if not server.started:
            sys.exit(STARTUP_FAILURE)


def _allow_descriptors(needed: int) -> None:
    """Raise the soft open-file limit (often 1,024) so the connection limit can be reached."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
