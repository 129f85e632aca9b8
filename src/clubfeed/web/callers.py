"""Who is calling /v1: the reader or writer a request's credentials name, checked first.

Credentials are checked before the request is looked at (and before a body is read),
so a caller without them learns nothing but 401 and cannot make the server buffer a
large body. Rate limits come first and right after: an address over its limit of
failed credentials is refused before they are looked up, and a caller once known spends
from its bucket (`web.ratelimit`). Every authenticated read is recorded (without
blocking) for the console.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from fastapi import Request
from sqlalchemy import Connection

from clubfeed import activity
from clubfeed.auth import guard
from clubfeed.errors import ClubfeedError
from clubfeed.storage import outages
from clubfeed.storage.engine import read_connection
from clubfeed.timefmt import now_us
from clubfeed.web.rfc9457 import status_for
from clubfeed.web.state import blocking, state

T = TypeVar("T")


async def as_reader(
    request: Request,
    resource: str | None,
    work: Callable[[Connection, guard.Reader, bytes], T],
    *,
    with_body: bool = False,
) -> T:
    """Authenticate the reader of `resource` (None: of any), then run `work(conn, reader, body)`.

    Without a body, authentication and the work share one pooled connection.
    """
    app_state = state(request)
    limits = app_state.api_limits
    address = limits.address(request)
    who: guard.Reader | None = None
    body = b""

    def admit(conn: Connection) -> guard.Reader:
        reader = limits.authenticated(
            address, lambda: guard.reader(conn, request.headers, resource)
        )
        limits.read(request, reader.integrator_id)
        return reader

    if with_body:

        def authenticate() -> guard.Reader:
            with read_connection(app_state.engine) as conn:
                return _noted(request, admit(conn))

        who = await blocking(authenticate)
        body = await request.body()

    def run() -> T:
        with read_connection(app_state.engine) as conn:
            reader = who or _noted(request, admit(conn))
            status = 200
            try:
                return work(conn, reader, body)
            except ClubfeedError as exc:
                status = status_for(exc)
                raise
            except Exception as exc:
                # Anything else answers 503 while the database is unavailable, else 500.
                status = 503 if outages.unavailable(exc) else 500
                raise
            finally:
                app_state.recorder.record(
                    activity.Event(
                        reader.business_id,
                        reader.integrator_id,
                        reader.via,
                        now_us(),
                        request.method,
                        request.url.path,
                        status,
                    )
                )

    return await blocking(run)


async def writer(request: Request) -> int:
    """The business whose ingest key the request carries; Unauthenticated otherwise."""
    app_state = state(request)
    limits = app_state.api_limits
    address = limits.address(request)

    def authenticate() -> int:
        with read_connection(app_state.engine) as conn:
            business_id = limits.authenticated(address, lambda: guard.writer(conn, request.headers))
        limits.write(request, business_id)
        return business_id

    business_id = await blocking(authenticate)
    request.state.business_id = business_id
    return business_id


def _noted(request: Request, reader: guard.Reader) -> guard.Reader:
    """Put the reader's ids on the request, for its log line (`web.observe`)."""
    request.state.business_id = reader.business_id
    request.state.integrator_id = reader.integrator_id
    return reader
