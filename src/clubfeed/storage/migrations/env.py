"""Alembic environment: runs against the engine `clubfeed.storage.migrate` hands in."""

from __future__ import annotations

from alembic import context

from clubfeed.storage.schema import metadata

engine = context.config.attributes["engine"]

with engine.connect() as connection:
    # A migration writes: on SQLite it takes the write lock at BEGIN, so it waits its turn
    # behind a running server's writers; a read transaction that later writes would fail
    # at once with "database is locked" (SQLite cannot wait there without a deadlock).
    connection.execution_options(sqlite_begin="IMMEDIATE")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
