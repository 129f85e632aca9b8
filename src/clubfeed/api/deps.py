"""What every route needs: the process's shared state, and a way to run blocking work."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from fastapi import Request
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from clubfeed.activity import Recorder
from clubfeed.feed.cursor import CursorSigner
from clubfeed.ratelimit import Limit
from clubfeed.settings import Settings

T = TypeVar("T")


@dataclass
class AppState:
    """Built once per process by the app factory; the signer is set when the app starts."""

    settings: Settings
    engine: Engine
    recorder: Recorder
    login_limit: Limit
    token_limit: Limit
    signer: CursorSigner | None = None


def state(request: Request) -> AppState:
    app_state: AppState = request.app.state.clubfeed
    return app_state


def signer(request: Request) -> CursorSigner:
    app_signer = state(request).signer
    assert app_signer is not None, "the app's lifespan sets the signer before serving"
    return app_signer


async def blocking(work: Callable[[], T]) -> T:
    """Run database work in the thread pool, keeping the event loop free for other requests."""
    return await run_in_threadpool(work)
