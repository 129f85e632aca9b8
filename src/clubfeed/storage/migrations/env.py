"""Alembic environment: runs against the engine `clubfeed.storage.migrate` hands in."""

from __future__ import annotations

from alembic import context

from clubfeed.storage.schema import metadata

engine = context.config.attributes["engine"]

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
