"""The application factory: settings in, a FastAPI app out (nothing is read at import).

The one module that composes the web features (`api`, `console`, `oauth`) on the
shared edge (`web`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException

import clubfeed
from clubfeed import catalogue
from clubfeed.activity import Recorder
from clubfeed.api import feed_routes, ingest_routes, me_routes, openapi, schemas
from clubfeed.console import routes as console_routes
from clubfeed.errors import ClubfeedError
from clubfeed.feed.cursor import CursorSigner, load_key
from clubfeed.oauth import routes as oauth_routes
from clubfeed.settings import Settings
from clubfeed.storage.engine import make_engine, write_transaction
from clubfeed.storage.outages import CommitFailed
from clubfeed.web import compression, health, logs, metrics, observe, pages, problems, ratelimit
from clubfeed.web.buckets import Policy, open_buckets
from clubfeed.web.compression import Compression
from clubfeed.web.dispatch import Dispatch
from clubfeed.web.head import HeadAsGet
from clubfeed.web.headers import ApiHeaders
from clubfeed.web.hosts import AllowedHosts, check_public_url
from clubfeed.web.limits import BodyStalled, BodyTooLarge, RequestLimits
from clubfeed.web.state import AppState, blocking

DESCRIPTION = """
Gym and studio data for loyalty integrators: users, locations, memberships, check-ins,
referrals, sales, classes, appointments and their categories.

**Reading** (integrators) needs two credentials: your integrator key in `X-Integrator-Key`,
and, as `Authorization: Bearer`, the business's shared secret or an OAuth access token the
business granted you (authorization code with PKCE, at `/oauth/authorize` and `/oauth/token`).

**Writing** (the POS) needs the business's ingest key as `Authorization: Bearer <key>`.

Every list pages by an opaque `cursor` (up to 10,000 records a page) and says
`consistent_until`: start your next `modified_since` window there and you will never
miss or repeat a change, deletes included. Errors are RFC 9457 problem+json; while the
database is unavailable, every endpoint but /healthz (and this description) answers 503
with Retry-After.

Responses carry `X-Request-ID` (unless the operator turned request logs off): the one
you sent, if it is 1 to 128 visible ASCII characters, or one made for the request. Quote
it to the operator when asking about a request.
"""


def create_app(settings: Settings) -> FastAPI:
    """Build the API for one process; the database must already be migrated."""
    meter = metrics.meter(settings)
    engine = make_engine(
        settings.database_url,
        pool_size=settings.pool_size,
        timeout_s=settings.db_timeout_s,
        poolclass=meter.pool_class(),
    )
    meter.watch(engine)
    meter.show_sources(settings.database_url)
    buckets = open_buckets(settings.rate_limit_storage, settings.rate_limit_prefix)
    app_state = AppState(
        settings=settings,
        engine=engine,
        recorder=Recorder(engine, settings.activity_flush_s, meter.activity_dropped),
        login_limit=ratelimit.Limit(buckets, Policy.parse("login", settings.login_rate_limit)),
        token_limit=ratelimit.Limit(buckets, Policy.parse("oauth", settings.token_rate_limit)),
        api_limits=ratelimit.ApiLimits(buckets, settings),
        meter=meter,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        def load() -> bytes:
            with write_transaction(engine) as conn:
                return load_key(conn, settings.secret_key)

        app_state.signer = CursorSigner(await blocking(load))
        app_state.recorder.start()
        yield
        await blocking(app_state.recorder.stop)
        engine.dispose()
        meter.close()

    # FastAPIOffline serves the Swagger UI and ReDoc assets itself: /docs works with
    # no third-party CDN, as on an air-gapped deployment.
    app = FastAPIOffline(
        title="clubfeed",
        version=clubfeed.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=openapi.operation_id,
    )
    app.state.clubfeed = app_state
    # Innermost first: each add_middleware wraps the ones before it.
    app.add_middleware(Compression, codings=compression.parse_codings(settings.compression))
    app.add_middleware(HeadAsGet)
    app.add_middleware(problems.Unexpected)
    app.add_middleware(
        RequestLimits,
        max_body_bytes=settings.max_body_bytes,
        max_query_bytes=settings.max_query_bytes,
        body_timeout_s=settings.body_timeout_s,
    )
    app.add_middleware(ratelimit.RateLimitHeaders)
    app.add_middleware(ApiHeaders)
    app.add_middleware(AllowedHosts, allowed=settings.allowed_hosts, public_url=settings.public_url)
    observe.install(app, settings, meter)
    app.add_exception_handler(ClubfeedError, problems.domain_error)
    app.add_exception_handler(HTTPException, problems.http_error)
    app.add_exception_handler(BodyTooLarge, problems.body_too_large)
    app.add_exception_handler(BodyStalled, problems.body_stalled)
    app.add_exception_handler(ratelimit.RateLimited, ratelimit.too_many_requests)
    app.add_exception_handler(SQLAlchemyError, problems.database_error)
    app.add_exception_handler(CommitFailed, problems.database_error)
    app.add_exception_handler(Exception, problems.unexpected_error)

    app.include_router(health.router)
    resource_routers = [me_routes.router] + [
        make(resource)
        for resource in catalogue.RESOURCES
        for make in (ingest_routes.router, feed_routes.router)
    ]
    for resource_router in resource_routers:
        app.include_router(resource_router)
    app.include_router(oauth_routes.router)
    app.include_router(console_routes.router)
    app.mount(pages.STATIC_URL, StaticFiles(directory=pages.STATIC_DIR), name="static")
    app.router.middleware_stack = Dispatch(
        app.router.middleware_stack,
        [route for r in resource_routers for route in r.routes if isinstance(route, APIRoute)],
    )

    def custom_openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            schema.setdefault("components", {})
            for key, value in schemas.components().items():
                schema["components"].setdefault(key, {}).update(value)
            openapi.add_head_operations(schema)
            if settings.public_url is not None:
                # Generated clients take their base URL from here.
                schema["servers"] = [{"url": check_public_url(settings.public_url)}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = custom_openapi  # type: ignore[method-assign]
    return app


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` and worker processes: settings from CLUBFEED_* variables."""
    settings = Settings.from_env()
    logs.configure(settings)
    return create_app(settings)
