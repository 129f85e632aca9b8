"""Businesses and integrators as the features see them: naming one for a person."""

from __future__ import annotations

from sqlalchemy import Connection, select

from clubfeed.storage.schema import businesses, integrators


def business_name(conn: Connection, *, business_id: int) -> str | None:
    """The business's display name, or None if there is no such business."""
    name: str | None = conn.execute(
        select(businesses.c.name).where(businesses.c.id == business_id)
    ).scalar()
    return name


def business_ids(conn: Connection, *, only: int | None = None) -> list[int]:
    """Every business's id in order, or just `only` if that business exists (else none)."""
    query = select(businesses.c.id).order_by(businesses.c.id)
    if only is not None:
        query = query.where(businesses.c.id == only)
    return list(conn.execute(query).scalars())


def integrator_name(conn: Connection, *, integrator_id: int) -> str | None:
    """The integrator's name, or None if there is no such integrator."""
    name: str | None = conn.execute(
        select(integrators.c.name).where(integrators.c.id == integrator_id)
    ).scalar()
    return name
