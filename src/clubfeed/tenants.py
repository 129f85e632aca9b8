"""Businesses as the features see them: naming one for a person."""

from __future__ import annotations

from sqlalchemy import Connection, select

from clubfeed.storage.schema import businesses


def business_name(conn: Connection, *, business_id: int) -> str | None:
    """The business's display name, or None if there is no such business."""
    name: str | None = conn.execute(
        select(businesses.c.name).where(businesses.c.id == business_id)
    ).scalar()
    return name
