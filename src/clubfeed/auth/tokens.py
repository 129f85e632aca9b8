"""OAuth grants, authorization codes and tokens, stored only as SHA-256 hashes.

A grant is one approval by a business admin; its codes and tokens hang off it, so
revoking the grant (reuse of a spent code or refresh token, the business revoking
the app) kills every token it produced at once.

Codes and refresh tokens are single use. A request first finds one (`find_code`,
`find_refresh`), is validated in full, and only then spends it with a conditional
UPDATE (`spend_code`, `spend_refresh`): a request that fails validation (a wrong
PKCE verifier, say) leaves it usable by its rightful holder, and of two racing
requests only one can win. Presenting a spent one again revokes its grant, with one
exception: a refresh token its own client presents again within a grace window. Real
clients share one session across threads and workers, and several of them refresh at
once; each then gets the pair the first refresh produced (kept sealed under the old
refresh token, which only its holder has), not a revoked grant.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy import Connection, Row, Select, delete, insert, or_, select, update

from clubfeed.auth.credentials import new_token, token_hash
from clubfeed.auth.sealing import Sealer
from clubfeed.storage.schema import oauth_codes, oauth_grants, oauth_tokens
from clubfeed.timefmt import now_us

log = logging.getLogger(__name__)

ACCESS_PREFIX = "cfa_"
REFRESH_PREFIX = "cfr_"

_SUCCESSOR_LABEL = b"clubfeed refresh successor v1"
# How far find_refresh follows successors (each presented again within the window).
_MAX_HOPS = 8
_USED = (
    "This refresh token was already used; the grant was revoked for safety. "
    "Ask the business to connect the app again."
)
_REVOKED = (
    "The business revoked this app's access (or a leaked token was reused); "
    "ask the business to connect the app again."
)
_ENDED = (
    "This refresh token was already used, and the access token that use gave has been "
    "revoked or has expired since; refresh with the refresh token that came with it."
)
_TOO_FAR = (
    f"This refresh token was already used, and so were the next {_MAX_HOPS - 1} that "
    "replaced it; refresh with the newest refresh token you were given."
)
_NOT_OURS = (
    "This refresh token is not one this server issued to your client; use the newest "
    "refresh token you were given, or ask the business to connect the app again."
)
CODE_PREFIX = "cfac_"
_US = 1_000_000


@dataclass(frozen=True)
class Grant:
    id: int
    business_id: int
    integrator_id: int
    scope: str


@dataclass(frozen=True)
class Code:
    """A live authorization code; `redirect_uri` is as the authorization request sent it ("" if omitted)."""

    grant: Grant
    digest: bytes
    redirect_uri: str
    code_challenge: str


@dataclass(frozen=True)
class TokenRecord:
    id: int
    grant: Grant


@dataclass(frozen=True)
class Pair:
    """A live token pair handed out again: the successor of a refresh token presented twice."""

    record: TokenRecord
    access_token: str
    refresh_token: str
    access_expires_at: int


class Refused(Exception):
    """A code or refresh token that cannot be used; the message says why, for the client."""


@dataclass(frozen=True)
class Revocable:
    """A token found for revocation, and whether the string was its refresh token."""

    record: TokenRecord
    is_refresh: bool


def create_grant(
    conn: Connection, *, business_id: int, integrator_id: int, admin_id: int, scope: str
) -> Grant:
    grant_id: int = conn.execute(
        insert(oauth_grants)
        .values(
            business_id=business_id,
            integrator_id=integrator_id,
            admin_id=admin_id,
            scope=scope,
            created_at=now_us(),
        )
        .returning(oauth_grants.c.id)
    ).scalar_one()
    return Grant(grant_id, business_id, integrator_id, scope)


def new_code() -> str:
    return new_token(CODE_PREFIX)


def store_code(
    conn: Connection,
    grant: Grant,
    code: str,
    *,
    redirect_uri: str,
    code_challenge: str,
    ttl_s: int,
) -> None:
    """Keep `code` (as its hash), bound to the grant's integrator, the redirect URI and the PKCE challenge."""
    conn.execute(
        insert(oauth_codes).values(
            code_hash=token_hash(code),
            grant_id=grant.id,
            integrator_id=grant.integrator_id,
            redirect_uri=redirect_uri,
            code_challenge=code_challenge,
            expires_at=now_us() + ttl_s * _US,
        )
    )


def _grant(row: Row[*tuple[Any, ...]]) -> Grant:
    return Grant(row.grant_id, row.business_id, row.integrator_id, row.scope)


def find_code(conn: Connection, code: str, integrator_id: int, *, ttl_s: int) -> Code:
    """The live code `integrator_id` holds; Refused (saying why) if unknown, another's,
    expired, revoked or spent.

    A spent code presented again by its integrator revokes its grant: RFC 6749
    §4.1.2 says the tokens it produced should die, since the code may have leaked.
    """
    digest = token_hash(code)
    row = conn.execute(
        select(
            oauth_codes.c.grant_id,
            oauth_codes.c.redirect_uri,
            oauth_codes.c.code_challenge,
            oauth_codes.c.expires_at,
            oauth_codes.c.used_at,
            oauth_grants.c.business_id,
            oauth_grants.c.integrator_id,
            oauth_grants.c.scope,
            oauth_grants.c.revoked_at,
        )
        .join(oauth_grants, oauth_grants.c.id == oauth_codes.c.grant_id)
        .where(oauth_codes.c.code_hash == digest, oauth_codes.c.integrator_id == integrator_id)
    ).first()
    if row is None:
        raise Refused(
            "This authorization code is not one this server issued to your client; send the "
            "code from the redirect exactly, with the client it was issued to."
        )
    if row.used_at is not None:
        _revoke_for_reuse(conn, row.grant_id, "authorization code")
        raise Refused(
            "This authorization code was already used, so the tokens it gave were revoked "
            "for safety; send the admin through /oauth/authorize again."
        )
    if row.expires_at <= now_us():
        raise Refused(
            f"The authorization code expired (codes live {ttl_s} s); exchange it as soon as "
            "the redirect arrives, or send the admin through /oauth/authorize again."
        )
    if row.revoked_at is not None:
        raise Refused(_REVOKED)
    return Code(_grant(row), digest, row.redirect_uri, row.code_challenge)


def spend_code(conn: Connection, code: Code) -> bool:
    """Mark the code used; False (and its grant revoked) if another request spent it first."""
    claimed = conn.execute(
        update(oauth_codes)
        .where(oauth_codes.c.code_hash == code.digest, oauth_codes.c.used_at.is_(None))
        .values(used_at=now_us())
    ).rowcount
    if claimed != 1:
        _revoke_for_reuse(conn, code.grant.id, "authorization code")
    return claimed == 1


def new_token_pair() -> tuple[str, str]:
    """A fresh (access token, refresh token)."""
    return new_token(ACCESS_PREFIX), new_token(REFRESH_PREFIX)


def store_tokens(
    conn: Connection, grant: Grant, *, access_token: str, refresh_token: str, ttl_s: int
) -> None:
    """Keep a token pair (as hashes); the access token lives `ttl_s` seconds."""
    now = now_us()
    conn.execute(
        insert(oauth_tokens).values(
            grant_id=grant.id,
            access_hash=token_hash(access_token),
            refresh_hash=token_hash(refresh_token),
            access_expires_at=now + ttl_s * _US,
            created_at=now,
        )
    )


def _token_query() -> Select[Any]:
    return select(
        oauth_tokens.c.id,
        oauth_tokens.c.grant_id,
        oauth_tokens.c.access_hash,
        oauth_tokens.c.access_expires_at,
        oauth_tokens.c.refreshed_at,
        oauth_tokens.c.revoked_at,
        oauth_tokens.c.successor_sealed,
        oauth_grants.c.business_id,
        oauth_grants.c.integrator_id,
        oauth_grants.c.scope,
        oauth_grants.c.revoked_at.label("grant_revoked_at"),
    ).join(oauth_grants, oauth_grants.c.id == oauth_tokens.c.grant_id)


def _successor_of(token: str, sealed: bytes | None) -> tuple[str, str] | None:
    plain = None if sealed is None else Sealer.of(token, _SUCCESSOR_LABEL).open(sealed)
    if plain is None:
        return None
    access, refresh = msgspec.json.decode(plain, type=tuple[str, str])
    return access, refresh


def find_refresh(
    conn: Connection, token: str, integrator_id: int, *, grace_s: float
) -> TokenRecord | Pair:
    """The live refresh token `integrator_id` holds, or the pair its use already produced.

    Rotation makes reuse detectable: an old refresh token presented again means two
    parties hold it, so the whole grant is revoked (RFC 9700 §4.14.2), unless the
    same client presents it within `grace_s` of its use, when the pair that use
    produced (or that pair's own successor, if it too was refreshed since) is
    handed out again, as long as its access token still works: a dead one is
    refused, as is a line longer than `_MAX_HOPS` tokens, neither revoking the
    grant (the newest refresh token goes on working). Refused, with the reason, for
    anything else.
    """
    now = now_us()
    access: str | None = None
    for _ in range(_MAX_HOPS):
        row = conn.execute(
            _token_query().where(
                oauth_tokens.c.refresh_hash == token_hash(token),
                oauth_grants.c.integrator_id == integrator_id,
            )
        ).first()
        if row is None:
            raise Refused(_NOT_OURS)
        if row.grant_revoked_at is not None:
            raise Refused(_REVOKED)
        if row.refreshed_at is not None:
            successor = _successor_of(token, row.successor_sealed)
            if successor is None or row.refreshed_at < now - round(grace_s * _US):
                _revoke_for_reuse(conn, row.grant_id, "refresh token")
                raise Refused(_USED)
            access, token = successor
            continue
        if row.revoked_at is not None:
            raise Refused(_REVOKED)
        record = TokenRecord(row.id, _grant(row))
        if access is None:
            return record
        if row.access_expires_at <= now:  # ended by /oauth/revoke, or expired
            raise Refused(_ENDED)
        return Pair(record, access, token, row.access_expires_at)
    raise Refused(_TOO_FAR)


def spend_refresh(
    conn: Connection, record: TokenRecord, token: str, successor: tuple[str, str]
) -> bool:
    """Mark the refresh token used, keep its successor pair sealed, end its access token.

    False if another request spent it first: `find_refresh` then says what that
    request produced (or revokes the grant, past the grace window).
    """
    sealed = Sealer.of(token, _SUCCESSOR_LABEL).seal(msgspec.json.encode(successor))
    claimed = conn.execute(
        update(oauth_tokens)
        .where(oauth_tokens.c.id == record.id, oauth_tokens.c.refreshed_at.is_(None))
        .values(refreshed_at=now_us(), successor_sealed=sealed)
    ).rowcount
    if claimed != 1:
        return False
    # The access token of a rotated pair dies with it.
    revoke_token(conn, record.id)
    return True


@dataclass(frozen=True)
class Access:
    """What a live access token speaks for, and until when (µs)."""

    grant: Grant
    expires_at: int


def find_access(conn: Connection, token: str) -> Access | None:
    """The grant a live access token speaks for, or None (unknown, expired or revoked)."""
    row = conn.execute(
        _token_query().where(oauth_tokens.c.access_hash == token_hash(token))
    ).first()
    if row is None or row.revoked_at is not None or row.grant_revoked_at is not None:
        return None
    if row.access_expires_at <= now_us():
        return None
    return Access(_grant(row), row.access_expires_at)


def find_for_revocation(conn: Connection, token: str, integrator_id: int) -> Revocable | None:
    """The live token pair a token string belongs to, if `integrator_id` holds it.

    A pair already rotated or revoked counts as unknown: revoking a dead token must
    change nothing (RFC 7009 §2.2), least of all the grant its successor lives on.
    Reuse of a spent refresh token is detected where it can do harm, at the token endpoint.
    """
    digest = token_hash(token)
    row = conn.execute(
        _token_query().where(
            (oauth_tokens.c.access_hash == digest) | (oauth_tokens.c.refresh_hash == digest),
            oauth_grants.c.integrator_id == integrator_id,
        )
    ).first()
    if row is None or row.refreshed_at is not None or row.revoked_at is not None:
        return None
    return Revocable(TokenRecord(row.id, _grant(row)), is_refresh=row.access_hash != digest)


def end_access(conn: Connection, token_id: int) -> None:
    """End an access token now, leaving its refresh token usable (RFC 7009 §2.1 allows either)."""
    now = now_us()
    conn.execute(
        update(oauth_tokens)
        .where(oauth_tokens.c.id == token_id, oauth_tokens.c.access_expires_at > now)
        .values(access_expires_at=now)
    )


def revoke_token(conn: Connection, token_id: int) -> None:
    """Revoke an access and refresh token pair."""
    conn.execute(
        update(oauth_tokens)
        .where(oauth_tokens.c.id == token_id, oauth_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now_us())
    )


def revoke_grant(conn: Connection, grant_id: int) -> None:
    """Revoke a grant; its tokens stop working because lookups check the grant."""
    conn.execute(
        update(oauth_grants)
        .where(oauth_grants.c.id == grant_id, oauth_grants.c.revoked_at.is_(None))
        .values(revoked_at=now_us())
    )


def _revoke_for_reuse(conn: Connection, grant_id: int, what: str) -> None:
    log.warning("A spent %s was presented again: grant %d revoked.", what, grant_id)
    revoke_grant(conn, grant_id)


def revoke_grants_of(conn: Connection, business_id: int, integrator_id: int) -> None:
    """Revoke every grant a business gave an integrator (the business revoked the app)."""
    conn.execute(
        update(oauth_grants)
        .where(
            oauth_grants.c.business_id == business_id,
            oauth_grants.c.integrator_id == integrator_id,
            oauth_grants.c.revoked_at.is_(None),
        )
        .values(revoked_at=now_us())
    )


def forget_spent(conn: Connection, before_us: int) -> int:
    """Delete codes and tokens that stopped working before `before_us`; how many rows went.

    A code expires within a minute; a token pair is dead once its access token has
    expired and its refresh token was spent or revoked, or its grant revoked. Kept a
    while after, they let reuse be detected (and the grant revoked); after that, a
    reused one is merely unknown.
    """
    codes = conn.execute(delete(oauth_codes).where(oauth_codes.c.expires_at < before_us)).rowcount
    dead_grants = select(oauth_grants.c.id).where(oauth_grants.c.revoked_at < before_us)
    pairs = conn.execute(
        delete(oauth_tokens).where(
            oauth_tokens.c.access_expires_at < before_us,
            or_(
                oauth_tokens.c.refreshed_at < before_us,
                oauth_tokens.c.revoked_at < before_us,
                oauth_tokens.c.grant_id.in_(dead_grants),
            ),
        )
    ).rowcount
    return codes + pairs
