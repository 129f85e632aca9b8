"""Tables: the service's own, plus one per catalogue resource.

Every key starts with `business_id`, so a Citus cluster can distribute every
table by tenant and keep each transaction on one shard. Times the server
computes with are integer microseconds since the Unix epoch, UTC.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeEngine

from clubfeed import catalogue
from clubfeed.catalogue import Kind, Resource

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

businesses = Table(
    "businesses",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("name", Text, nullable=False),
    Column("shared_secret_hash", LargeBinary(32), nullable=False, unique=True),
    Column("ingest_key_hash", LargeBinary(32), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
    # A rotated credential keeps working until `..._until` (microseconds) when given an overlap.
    Column("previous_shared_secret_hash", LargeBinary(32), nullable=True, unique=True),
    Column("previous_shared_secret_until", BigInteger, nullable=True),
    Column("previous_ingest_key_hash", LargeBinary(32), nullable=True, unique=True),
    Column("previous_ingest_key_until", BigInteger, nullable=True),
)

integrators = Table(
    "integrators",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("name", Text, nullable=False),
    Column("key_hash", LargeBinary(32), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
    # OAuth 2 client registration: redirect URIs match exactly (a JSON list of strings).
    Column("client_id", Text, nullable=True, unique=True),
    Column("client_secret_hash", LargeBinary(32), nullable=True),
    Column("redirect_uris", Text, nullable=False, server_default="[]"),
    Column("previous_key_hash", LargeBinary(32), nullable=True, unique=True),
    Column("previous_key_until", BigInteger, nullable=True),
)

change_clock = Table(
    "change_clock",
    metadata,
    Column("business_id", BigInteger, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("last_us", BigInteger, nullable=False),
)

# Per resource, tombstones older than `purged_until_us` were purged: range queries of
# that resource from before it get 410. Per resource, so that purging one resource's
# deletes does not refuse a poller's bookmark in a quiet resource.
purge_points = Table(
    "purge_points",
    metadata,
    Column("business_id", BigInteger, nullable=False),
    Column("resource", Text, nullable=False),
    Column("purged_until_us", BigInteger, nullable=False),
    PrimaryKeyConstraint("business_id", "resource"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("business_id", BigInteger, nullable=False),
    Column("key", Text, nullable=False),
    Column("request_hash", LargeBinary(32), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("response_body", LargeBinary, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("business_id", "key"),
)


def _serial() -> Column[int]:
    return Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )


admins = Table(
    "admins",
    metadata,
    _serial(),
    Column("business_id", BigInteger, nullable=False, index=True),
    Column("email", Text, nullable=False, unique=True),  # stored lowercased
    Column("password_hash", Text, nullable=False),  # argon2id
    Column("created_at", BigInteger, nullable=False),
)

admin_sessions = Table(
    "admin_sessions",
    metadata,
    Column("token_hash", LargeBinary(32), primary_key=True),
    Column("admin_id", BigInteger, nullable=False),
    Column("csrf_token", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)

# A message for the next page after a console form, shown once (see auth/flashes.py).
console_flashes = Table(
    "console_flashes",
    metadata,
    _serial(),
    Column("session_hash", LargeBinary(32), nullable=False, index=True),
    Column("sealed", LargeBinary, nullable=False),  # AES-GCM under a key only the cookie gives
    Column("expires_at", BigInteger, nullable=False),
)

connections = Table(
    "connections",
    metadata,
    Column("business_id", BigInteger, nullable=False),
    Column("integrator_id", BigInteger, nullable=False),
    # One row per way in ("oauth", "shared_secret"): each is revoked and shown on its own.
    Column("via", Text, nullable=False),
    Column("scope", Text, nullable=False),  # resource names, space-separated
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    Column("last_used_at", BigInteger, nullable=True),
    PrimaryKeyConstraint("business_id", "integrator_id", "via"),
)

oauth_grants = Table(
    "oauth_grants",
    metadata,
    _serial(),
    Column("business_id", BigInteger, nullable=False),
    Column("integrator_id", BigInteger, nullable=False),
    Column("admin_id", BigInteger, nullable=False),
    Column("scope", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    Index("ix_oauth_grants_business_id_integrator_id", "business_id", "integrator_id"),
)

oauth_codes = Table(
    "oauth_codes",
    metadata,
    Column("code_hash", LargeBinary(32), primary_key=True),
    Column("grant_id", BigInteger, nullable=False),
    Column("integrator_id", BigInteger, nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("code_challenge", Text, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("used_at", BigInteger, nullable=True),
)

oauth_tokens = Table(
    "oauth_tokens",
    metadata,
    _serial(),
    Column("grant_id", BigInteger, nullable=False, index=True),
    Column("access_hash", LargeBinary(32), nullable=False, unique=True),
    Column("refresh_hash", LargeBinary(32), nullable=False, unique=True),
    Column("access_expires_at", BigInteger, nullable=False),
    Column("refreshed_at", BigInteger, nullable=True),  # the refresh token was used (rotated)
    # The pair that use produced, sealed under this refresh token (auth/tokens.py).
    Column("successor_sealed", LargeBinary, nullable=True),
    Column("revoked_at", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
)

api_activity = Table(
    "api_activity",
    metadata,
    _serial(),
    Column("business_id", BigInteger, nullable=False),
    Column("integrator_id", BigInteger, nullable=False),
    Column("at_us", BigInteger, nullable=False),
    Column("method", Text, nullable=False),
    Column("path", Text, nullable=False),
    Column("status", Integer, nullable=False),
    Column("via", Text, nullable=False),
    Index("ix_api_activity_business_id_at_us", "business_id", "at_us"),
)

server_secrets = Table(
    "server_secrets",
    metadata,
    Column("name", Text, primary_key=True),
    Column("value", LargeBinary, nullable=False),
)

_COLUMN_TYPES: dict[Kind, type[TypeEngine[Any]]] = {
    Kind.TEXT: Text,
    Kind.REF: Text,
    Kind.TIMEZONE: Text,
    Kind.DECIMAL: Text,  # exact, and the same on both databases
    Kind.DATE: Date,
    Kind.DATETIME: BigInteger,  # microseconds since the epoch, UTC
    Kind.BOOL: Boolean,
}


def _resource_table(resource: Resource) -> Table:
    """A resource's table: its fields as columns plus the feed's bookkeeping.

    `body` holds the record's JSON exactly as the feed serves it (or its tombstone),
    rendered once at write time so that a page is the rows' bodies joined.
    """
    name = resource.table
    columns: list[Column[object]] = [
        Column("business_id", BigInteger, nullable=False),
        Column("id", Text, nullable=False),
        Column("change_seq", BigInteger, nullable=False),
        Column("created_at", BigInteger, nullable=False),
        Column("modified_at", BigInteger, nullable=False),
        Column("deleted_at", BigInteger, nullable=True),
        Column("body", Text, nullable=False),
        Column("extra", Text, nullable=False),
        # The version's checksum halves and id bucket (feed/summary.py; zeros for a
        # tombstone): what it adds to summary_buckets, kept so that a write can take the
        # old version's share back out.
        Column("sum_hi", BigInteger, nullable=False, server_default="0"),
        Column("sum_lo", BigInteger, nullable=False, server_default="0"),
        Column("id_bucket", Integer, nullable=False, server_default="0"),
    ]
    columns += [Column(f.name, _COLUMN_TYPES[f.kind], nullable=f.nullable) for f in resource.fields]
    table = Table(
        name,
        metadata,
        *columns,
        PrimaryKeyConstraint("business_id", "id"),
        UniqueConstraint("business_id", "change_seq"),
    )
    Index(
        f"ix_{name}_business_id_modified_at_change_seq",
        table.c.business_id,
        table.c.modified_at,
        table.c.change_seq,
    )
    for filter_name in resource.filters:
        Index(
            f"ix_{name}_business_id_{filter_name}_change_seq",
            table.c.business_id,
            table.c[filter_name],
            table.c.change_seq,
        )
    return table


RESOURCE_TABLES: dict[str, Table] = {r.name: _resource_table(r) for r in catalogue.RESOURCES}

summary_buckets = Table(
    "summary_buckets",
    metadata,
    Column("business_id", BigInteger, nullable=False),
    Column("resource", Text, nullable=False),
    Column("bucket", Integer, nullable=False),  # of 65,536, by id (feed/summary.py)
    # Over the bucket's live records: how many, and their checksum halves' sums.
    Column("records", BigInteger, nullable=False),
    Column("sum_hi", BigInteger, nullable=False),
    Column("sum_lo", BigInteger, nullable=False),
    PrimaryKeyConstraint("business_id", "resource", "bucket"),
    # SQLite keeps the rows in their key's b-tree: a summary reads one b-tree, not two.
    sqlite_with_rowid=False,
    # Writes update these rows over and over; room on each page lets PostgreSQL do it in
    # place (a HOT update: no new index entry), which measured 2-3x faster than full pages.
    postgresql_with={"fillfactor": 50},
)

# What `clubfeed source run` keeps between passes (sources/state.py), so that a restart
# resumes where the last run stopped. Values read from the source (watermarks, keys) are
# stored as typed JSON, since a source's keys and stamps may be integers, text or times.
source_cursors = Table(
    "source_cursors",
    metadata,
    Column("mapping", Text, nullable=False),
    Column("resource", Text, nullable=False),
    Column("phase", Text, nullable=False),  # "backfill", then "follow"
    Column("backfill_limit", Text, nullable=True),
    Column("backfill_after", Text, nullable=True),
    Column("watermark", Text, nullable=True),
    Column("guarantee", Text, nullable=True),  # "transactions" or "fixed lag"
    Column("held_since", BigInteger, nullable=True),
    Column("caught_up_at", BigInteger, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("last_error_at", BigInteger, nullable=True),
    Column("reconciled_at", BigInteger, nullable=True),
    Column("reconcile_seconds", BigInteger, nullable=True),  # in milliseconds
    Column("reconcile_repaired", BigInteger, nullable=True),
    Column("reconcile_deleted", BigInteger, nullable=True),
    PrimaryKeyConstraint("mapping", "resource"),
)

source_counts = Table(
    "source_counts",
    metadata,
    Column("mapping", Text, nullable=False),
    Column("resource", Text, nullable=False),
    Column("business_id", BigInteger, nullable=False),
    Column("created", BigInteger, nullable=False),
    Column("updated", BigInteger, nullable=False),
    Column("unchanged", BigInteger, nullable=False),
    Column("deleted", BigInteger, nullable=False),
    PrimaryKeyConstraint("mapping", "resource", "business_id"),
)

# Rows skipped for a value that cannot convert, or held for a reference clubfeed does not
# have yet; removed once the row is written (or gone from the source).
source_problems = Table(
    "source_problems",
    metadata,
    Column("mapping", Text, nullable=False),
    Column("resource", Text, nullable=False),
    Column("tenant", Text, nullable=False),  # "" for a source of one business
    Column("source_key", Text, nullable=False),  # typed JSON
    Column("kind", Text, nullable=False),  # "value", "reference" or "tenant"
    Column("business_id", BigInteger, nullable=True),
    Column("column_name", Text, nullable=True),
    Column("detail", Text, nullable=False),
    Column("seen_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("mapping", "resource", "tenant", "source_key"),
)

source_tenants = Table(
    "source_tenants",
    metadata,
    Column("mapping", Text, nullable=False),
    Column("tenant", Text, nullable=False),
    Column("business_id", BigInteger, nullable=False),
    PrimaryKeyConstraint("mapping", "tenant"),
)
