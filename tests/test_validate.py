"""The validated batch: the one thing a write accepts, with problems placed by list, index, key and field.

Each edge names a place its own way (the API as a JSON Pointer, an import as a line, a
source as a row's key), so what is checked here is the place itself, before any edge.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from clubfeed import catalogue
from clubfeed.errors import ErrorItem, InvalidInput, Place
from clubfeed.ingest import validate
from clubfeed.ingest.write import apply_changes
from clubfeed.storage.engine import write_transaction
from tests.factories import new_business, record
from tests.feedkit import decoded

USERS = catalogue.get("users")
CHECKINS = catalogue.get("checkins")


def test_a_batch_comes_only_from_the_validator() -> None:
    with pytest.raises(TypeError, match=r"validate\.validated\(\)"):
        validate.Batch(USERS, (), ("u1",))
    batch = validate.validated(USERS, decoded(USERS, [record("users", "u1")]), ["u2"])
    assert (batch.resource, [r.id for r in batch.upserts], batch.deletes) == (
        USERS,
        ["u1"],
        ("u2",),
    )
    assert batch.single is False


def test_problems_name_their_list_index_key_and_field() -> None:
    upserts = decoded(
        USERS,
        [
            record("users", "u1"),
            record("users", "u2"),
            record("users", "u1"),
        ],
    )
    with pytest.raises(InvalidInput) as raised:
        validate.validated(USERS, upserts, ["u2", "summary"])
    assert [item.place for item in raised.value.errors] == [
        Place("upsert", 2, "u1", "id"),
        Place("delete", 0, "u2"),
        Place("delete", 1, "summary"),
    ]
    assert [(item.pointer, item.index) for item in raised.value.errors] == [
        ("/upsert/2/id", 2),
        ("/delete/0", 0),
        ("/delete/1", 1),
    ]
    assert raised.value.detail == (
        "Id 'u1' appears twice (also at upsert 0) at /upsert/2/id "
        "(2 more problems listed in errors). Nothing was written."
    )


def test_a_one_record_write_says_its_problems_of_the_record_itself() -> None:
    found = InvalidInput.listing([ErrorItem.at(Place("upsert", 0, "u1", "timezone"), "Bad zone.")])
    single = found.in_single_record()
    assert [(i.pointer, i.index, i.place) for i in single.errors] == [
        ("/timezone", None, Place("upsert", 0, "u1", "timezone"))
    ]
    assert single.detail == "Bad zone at /timezone. Nothing was written."
    plain = InvalidInput("Not a place.", [ErrorItem("Not a place.", "/id")])
    assert plain.in_single_record() is plain


def test_a_missing_reference_names_the_record_that_holds_it(db: Engine) -> None:
    business = new_business(db).id
    checkins = decoded(
        CHECKINS,
        [record("checkins", "c1", {"users": "ghost", "locations": "nowhere"})],
    )
    batch = validate.validated(CHECKINS, checkins, [])
    with pytest.raises(InvalidInput) as raised, write_transaction(db) as conn:
        apply_changes(conn, business_id=business, batch=batch)
    assert {item.place for item in raised.value.errors} == {
        Place("upsert", 0, "c1", "user_id"),
        Place("upsert", 0, "c1", "location_id"),
    }


def test_the_batch_limit_points_at_the_first_item_past_it() -> None:
    with pytest.raises(InvalidInput) as raised:
        validate.validated(USERS, [], [f"d{i}" for i in range(5)], limit=3)
    assert [item.place for item in raised.value.errors] == [Place("delete", 3)]
    many = decoded(USERS, [record("users", f"u{i}") for i in range(4)])
    with pytest.raises(InvalidInput) as raised:
        validate.validated(USERS, many, ["d1"], limit=3)
    assert [item.place for item in raised.value.errors] == [Place("upsert", 3)]
    assert len(validate.validated(USERS, many, ["d1"], limit=None).upserts) == 4
