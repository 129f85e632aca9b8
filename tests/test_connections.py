"""An app's two ways in, OAuth and the shared secret, are granted and revoked apart."""

from __future__ import annotations

import httpx
from sqlalchemy import Engine

from clubfeed.auth import connections, credentials
from clubfeed.storage.engine import read_connection, write_transaction
from tests.conftest import Server
from tests.factories import Tenant
from tests.oauthkit import REDIRECT_URI, connect, feed_status


def _as_app(db: Engine, tenant: Tenant) -> credentials.NewIntegrator:
    """The tenant's integrator, given OAuth client credentials: one app, both ways in."""
    with write_transaction(db) as conn:
        client_id, secret = credentials.set_oauth_client(
            conn, tenant.integrator.id, (REDIRECT_URI,)
        )
    app = tenant.integrator
    return credentials.NewIntegrator(app.id, app.name, app.key, client_id, secret, (REDIRECT_URI,))


def _flush(server: Server) -> None:
    """Write the server's buffered activity now (it makes a shared-secret channel's row)."""
    server.server.config.app.state.clubfeed.recorder.flush()


def _channels(db: Engine, tenant: Tenant) -> dict[str, bool]:
    """The integrator's channels into the business: via → revoked."""
    with read_connection(db) as conn:
        views = connections.of_business(conn, tenant.business.id)
    return {
        v.via: v.revoked_at is not None for v in views if v.integrator_id == tenant.integrator.id
    }


def test_approving_oauth_never_reopens_a_revoked_shared_secret(
    client: httpx.Client, db: Engine, tenant: Tenant, server: Server
) -> None:
    """The owner cut the app's shared-secret reads; approving it for check-ins only must not
    give back everything through the secret."""
    assert feed_status(client, tenant.read_headers, "users") == 200
    _flush(server)
    with write_transaction(db) as conn:
        assert connections.revoke(
            conn,
            business_id=tenant.business.id,
            integrator_id=tenant.integrator.id,
            via=connections.VIA_SHARED_SECRET,
        )
    assert feed_status(client, tenant.read_headers, "users") == 401

    granted = connect(client, db, tenant.business.id, app=_as_app(db, tenant), scope="checkins")

    assert feed_status(client, tenant.read_headers, "users") == 401
    assert feed_status(client, tenant.read_headers, "checkins") == 401
    assert feed_status(client, granted.read_headers(), "checkins") == 200
    assert feed_status(client, granted.read_headers(), "users") == 403
    assert _channels(db, tenant) == {"shared_secret": True, "oauth": False}


def test_revoking_one_channel_leaves_the_other_and_the_whole_app_ends_both(
    client: httpx.Client, db: Engine, tenant: Tenant, server: Server
) -> None:
    granted = connect(client, db, tenant.business.id, app=_as_app(db, tenant), scope="checkins")
    assert feed_status(client, tenant.read_headers) == 200
    _flush(server)
    assert _channels(db, tenant) == {"oauth": False, "shared_secret": False}

    with write_transaction(db) as conn:
        connections.revoke(
            conn,
            business_id=tenant.business.id,
            integrator_id=tenant.integrator.id,
            via=connections.VIA_OAUTH,
        )
    assert feed_status(client, granted.read_headers()) == 401
    assert feed_status(client, tenant.read_headers) == 200

    with write_transaction(db) as conn:
        connections.revoke(conn, business_id=tenant.business.id, integrator_id=tenant.integrator.id)
    assert feed_status(client, tenant.read_headers) == 401
    assert _channels(db, tenant) == {"oauth": True, "shared_secret": True}
