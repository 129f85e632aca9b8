"""The baseline: the check-in list written the way most FastAPI services write a list endpoint.

SQLAlchemy ORM objects in, a `response_model` of Pydantic v2 models out, times as
aware datetimes (as timestamp columns would arrive), `extra` as a JSON column.
It reads the same `checkins` table with the same keyset paging by change_seq:
a typical API would page with OFFSET, which would make deep pages slower still,
but the comparison is about per-record object costs, not paging algorithms.
It has no authentication: `business_id` is a query parameter.
"""

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Depends, FastAPI, Query
from pydantic import BaseModel
from sqlalchemy import BigInteger, Dialect, Engine, Text, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.types import TypeDecorator

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp column: the driver's value arrives as an aware datetime."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> int | None:
        return None if value is None else (value - EPOCH) // timedelta(microseconds=1)

    def process_result_value(self, value: int | None, dialect: Dialect) -> datetime | None:
        return None if value is None else EPOCH + timedelta(microseconds=value)


class JsonText(TypeDecorator[dict[str, Any]]):
    """A JSON column: the value arrives as a dict."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: dict[str, Any] | None, dialect: Dialect) -> str | None:
        return None if value is None else json.dumps(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> dict[str, Any] | None:
        return None if value is None else json.loads(value)


class Base(DeclarativeBase):
    pass


class Location(Base):
    __tablename__ = "locations"
    business_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    id: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str]
    timezone: Mapped[str]


class Checkin(Base):
    __tablename__ = "checkins"
    business_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    id: Mapped[str] = mapped_column(Text, primary_key=True)
    change_seq: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    modified_at: Mapped[datetime] = mapped_column(UtcDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    extra: Mapped[dict[str, Any]] = mapped_column(JsonText)
    checked_in_at: Mapped[datetime] = mapped_column(UtcDateTime)
    location_id: Mapped[str]
    membership_id: Mapped[str | None]
    user_id: Mapped[str]


class CheckinOut(BaseModel):
    id: str
    checked_in_at: datetime
    location_id: str
    membership_id: str | None
    user_id: str
    extra: dict[str, Any]
    created_at: datetime
    modified_at: datetime


class Page(BaseModel):
    data: list[CheckinOut]
    next_cursor: str | None
    consistent_until: datetime


def create_app(database_url: str) -> FastAPI:
    connect_args = {"check_same_thread": False} if database_url.startswith("sqlite") else {}
    engine: Engine = create_engine(database_url, connect_args=connect_args)
    app = FastAPI(title="typical check-ins")

    def get_session() -> Iterator[Session]:
        with Session(engine) as session:
            yield session

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/checkins", response_model=Page)
    def list_checkins(
        session: Annotated[Session, Depends(get_session)],
        business_id: int,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1_000,
        cursor: str | None = None,
    ) -> Page:
        after = int(cursor) if cursor else 0
        zones = {
            location.id: ZoneInfo(location.timezone)
            for location in session.scalars(
                select(Location).where(Location.business_id == business_id)
            )
        }
        rows = session.scalars(
            select(Checkin)
            .where(
                Checkin.business_id == business_id,
                Checkin.change_seq > after,
                Checkin.deleted_at.is_(None),
            )
            .order_by(Checkin.change_seq)
            .limit(limit + 1)
        ).all()
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(
            data=[
                CheckinOut(
                    id=row.id,
                    checked_in_at=row.checked_in_at.astimezone(zones[row.location_id]),
                    location_id=row.location_id,
                    membership_id=row.membership_id,
                    user_id=row.user_id,
                    extra=row.extra,
                    created_at=row.created_at,
                    modified_at=row.modified_at,
                )
                for row in rows
            ],
            next_cursor=str(rows[-1].change_seq) if more else None,
            consistent_until=datetime.now(UTC),
        )

    return app


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory`: the database URL comes from the benchmark."""
    return create_app(os.environ["BENCH_TYPICAL_DATABASE_URL"])
