"""What every route needs: the process's shared state, and one way to run database work.

Database work is blocking (SQLAlchemy Core on sqlite3 or psycopg), so it runs in the
thread pool; `read` and `write` are the one place a request meets a connection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from fastapi import Request
from sqlalchemy import Connection, Engine
from starlette.concurrency import run_in_threadpool

from clubfeed.activity import Recorder
from clubfeed.feed.cursor import CursorSigner
from clubfeed.settings import Settings
from clubfeed.storage.engine import read_connection, write_transaction
from clubfeed.web.metrics import Meter
from clubfeed.web.ratelimit import ApiLimits, Limit

T = TypeVar("T")


@dataclass
class AppState:
    """Built once per process by the app factory; the signer is set when the app starts."""

    settings: Settings
    engine: Engine
    recorder: Recorder
    login_limit: Limit
    token_limit: Limit
    api_limits: ApiLimits
    signer: CursorSigner | None = None
    meter: Meter = field(default_factory=Meter)


def state(request: Request) -> AppState:
    app_state: AppState = request.app.state.clubfeed
    return app_state


def signer(request: Request) -> CursorSigner:
    app_signer = state(request).signer
    assert app_signer is not None, "the app's lifespan sets the signer before serving"
    return app_signer


async def blocking(work: Callable[[], T]) -> T:
    """Run blocking work in the thread pool, keeping the event loop free for other requests."""
    return await run_in_threadpool(work)


async def read(request: Request, work: Callable[[Connection], T], *, fresh: bool = False) -> T:
    """Run `work` on a read connection, off the event loop.

    `fresh` first writes this process's buffered API activity, so last use and
    activity include the requests this process has just served.
    """
    app_state = state(request)

    def run() -> T:
        if fresh:
            app_state.recorder.flush()
        with read_connection(app_state.engine) as conn:
            return work(conn)

    return await blocking(run)


async def write(request: Request, work: Callable[[Connection], T]) -> T:
    """Run `work` in one write transaction, off the event loop."""
    engine = state(request).engine

    def run() -> T:
        with write_transaction(engine) as conn:
            return work(conn)

    return await blocking(run)
