"""The migrations build exactly the schema the catalogue declares, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from clubfeed import catalogue
from clubfeed.storage.schema import metadata


def test_migrated_database_matches_the_declared_schema(db: Engine) -> None:
    with db.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), metadata
        )
    assert diff == []


def test_every_resource_table_is_keyed_by_business(db: Engine) -> None:
    inspector = inspect(db)
    for resource in catalogue.RESOURCES:
        assert inspector.get_pk_constraint(resource.table)["constrained_columns"] == [
            "business_id",
            "id",
        ]
        uniques = [u["column_names"] for u in inspector.get_unique_constraints(resource.table)]
        assert ["business_id", "change_seq"] in uniques
