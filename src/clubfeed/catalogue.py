"""The resource catalogue: one declaration per resource.

Everything resource-specific — table columns, ingest validation, rendering,
OpenAPI schemas, filters and the tests' factories — is derived from these
declarations, so adding a field is one line here (plus its migration).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum


class Kind(Enum):
    """The value types a field can hold; each maps to a column, a decoder and a JSON form."""

    TEXT = "text"
    DATE = "date"
    DATETIME = "datetime"
    BOOL = "bool"
    DECIMAL = "decimal"
    REF = "ref"
    TIMEZONE = "timezone"


@dataclass(frozen=True, eq=False)
class Field:
    """One field of a resource.

    `ref` names the resource a REF field points to. `nullable` fields may be
    omitted or null in a write; the others must be present.
    """

    name: str
    kind: Kind
    nullable: bool = True
    ref: str | None = None
    description: str = ""


@dataclass(frozen=True, eq=False)
class Resource:
    """A resource: its URL name, table, fields and list filters.

    Declarations are singletons compared by identity (eq=False), which keeps them
    cheap to use as cache keys on hot paths.

    `filters` are field names a list may be narrowed by (`?location_id=…`).
    Datetime fields of a resource that has a `location_id` are rendered in that
    location's local offset (see `has_local_times`).
    """

    name: str
    table: str
    description: str
    fields: tuple[Field, ...]
    filters: tuple[str, ...] = ()
    example_id: str = "1001"
    label: str = ""
    field_by_name: dict[str, Field] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "field_by_name", {f.name: f for f in self.fields})

    def __reduce__(self) -> tuple[Callable[[str], Resource], tuple[str]]:
        """Pickled by name, so another process (a backfill worker) gets the same singleton."""
        return get, (self.name,)

    @property
    def title(self) -> str:
        """The resource as a gym owner says it ("Class attendances"), for pages people read."""
        return self.label or self.name.replace("-", " ").capitalize()

    @property
    def type_name(self) -> str:
        """The resource as a type name: "sales-categories" → "SalesCategories"."""
        return "".join(part.title() for part in self.name.split("-"))

    @property
    def one_type_name(self) -> str:
        """One record's type name: "sales-categories" → "SalesCategory", "classes" → "Class"."""
        plural = self.type_name
        if plural.endswith("ies"):
            return plural[:-3] + "y"
        if plural.endswith("sses"):
            return plural[:-2]
        return plural.removesuffix("s")

    @property
    def refs(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.kind is Kind.REF)

    @property
    def has_local_times(self) -> bool:
        return "location_id" in self.field_by_name and any(
            f.kind is Kind.DATETIME for f in self.fields
        )


def _text(name: str, nullable: bool = True, description: str = "") -> Field:
    return Field(name, Kind.TEXT, nullable, description=description)


def _ref(name: str, target: str, nullable: bool = True, description: str = "") -> Field:
    return Field(name, Kind.REF, nullable, ref=target, description=description)


def _dt(name: str, nullable: bool = False, description: str = "") -> Field:
    return Field(name, Kind.DATETIME, nullable, description=description)


def _date(name: str, nullable: bool = True, description: str = "") -> Field:
    return Field(name, Kind.DATE, nullable, description=description)


def _bool(name: str, description: str = "") -> Field:
    return Field(name, Kind.BOOL, False, description=description)


RESOURCES: tuple[Resource, ...] = (
    Resource(
        "locations",
        "locations",
        "A gym, studio or club site. Its IANA time zone sets the offset of every event time at it.",
        (
            _text("name", False),
            _text("street_address"),
            _text("city"),
            _text("state"),
            _text("zip_code"),
            _text("country", description="ISO 3166-1 alpha-2 code, e.g. US"),
            Field(
                "timezone",
                Kind.TIMEZONE,
                False,
                description="IANA time zone, e.g. America/New_York",
            ),
        ),
        example_id="loc-1",
    ),
    Resource(
        "users",
        "users",
        "A member or client. Children may name a parent user.",
        (
            _text("email"),
            _text("first_name", False),
            _text("last_name", False),
            _text("phone"),
            _date("birth_date"),
            _bool("is_child"),
            _ref("parent_id", "users", description="The parent's user id, for a child"),
            _ref("home_location_id", "locations"),
        ),
        filters=("home_location_id",),
        example_id="u-1001",
    ),
    Resource(
        "memberships",
        "memberships",
        "A membership or package a user holds.",
        (
            _ref("user_id", "users", False),
            _text("membership_type", False, "e.g. monthly, annual, class-pack"),
            _text("status", False, "e.g. active, frozen, cancelled, expired"),
            _date("join_date", False),
            _date("cancellation_date"),
            _ref("home_location_id", "locations"),
        ),
        filters=("user_id", "home_location_id"),
        example_id="m-1001",
    ),
    Resource(
        "checkins",
        "checkins",
        "A visit: a user checking in at a location.",
        (
            _dt("checked_in_at"),
            _ref("location_id", "locations", False),
            _ref("membership_id", "memberships", description="Null for a walk-in"),
            _ref("user_id", "users", False),
        ),
        filters=("location_id", "user_id"),
        example_id="c-1001",
        label="Check-ins",
    ),
    Resource(
        "referrals",
        "referrals",
        "A member referring someone, who may not be a user yet.",
        (
            _ref("referrer_user_id", "users", False),
            _ref("referee_user_id", "users", description="Null until the referee becomes a user"),
            _text("referee_email"),
            _dt("referred_at"),
        ),
        filters=("referrer_user_id",),
        example_id="r-1001",
    ),
    Resource(
        "sales-categories",
        "sales_categories",
        "A category of things sold (e.g. Retail, Personal training).",
        (_text("name", False), _ref("location_id", "locations", description="Null if chain-wide")),
        filters=("location_id",),
        example_id="sc-1",
    ),
    Resource(
        "sales-subcategories",
        "sales_subcategories",
        "A subcategory of a sales category.",
        (
            _text("name", False),
            _ref("category_id", "sales-categories", False),
            _ref("location_id", "locations", description="Null if chain-wide"),
        ),
        filters=("location_id",),
        example_id="ss-1",
    ),
    Resource(
        "sales",
        "sales",
        "One line item of a sale; `id` is the line item's key, `sale_id` groups a receipt.",
        (
            _text("sale_id", False),
            _ref("category_id", "sales-categories"),
            _text("category_name"),
            _ref("subcategory_id", "sales-subcategories"),
            _text("subcategory_name"),
            _text("payment_type", description="e.g. card, cash, account"),
            Field("pre_tax_price", Kind.DECIMAL, False, description="Exact decimal, as a string"),
            _ref("user_id", "users", description="Null for an anonymous sale"),
            _ref("membership_id", "memberships"),
            _ref("location_id", "locations", False),
            _dt("sold_at"),
        ),
        filters=("location_id", "user_id"),
        example_id="li-1001",
        label="Sales (line items)",
    ),
    Resource(
        "classes",
        "classes",
        "A scheduled class (e.g. Spin, Yoga).",
        (_text("name", False), _ref("location_id", "locations", False)),
        filters=("location_id",),
        example_id="cl-1",
    ),
    Resource(
        "class-attendances",
        "class_attendances",
        "A user booked into, and possibly attending, a class.",
        (
            _ref("class_id", "classes", False),
            _text("class_name"),
            _ref("user_id", "users", False),
            _ref("membership_id", "memberships"),
            _ref("location_id", "locations", False),
            _dt("class_at"),
            _dt("checked_in_at", nullable=True),
            _bool("attended"),
        ),
        filters=("location_id", "user_id"),
        example_id="ca-1001",
    ),
    Resource(
        "appointment-categories",
        "appointment_categories",
        "A kind of appointment (e.g. Personal training, Massage).",
        (_text("name", False), _ref("location_id", "locations", description="Null if chain-wide")),
        filters=("location_id",),
        example_id="ac-1",
    ),
    Resource(
        "appointments",
        "appointments",
        "A one-to-one booking with staff.",
        (
            _ref("appointment_category_id", "appointment-categories"),
            _ref("location_id", "locations", False),
            _ref("user_id", "users", False),
            _ref("membership_id", "memberships"),
            _dt("appointment_at"),
            _dt("checked_in_at", nullable=True),
            _bool("attended"),
        ),
        filters=("location_id", "user_id"),
        example_id="ap-1001",
    ),
)

BY_NAME: dict[str, Resource] = {r.name: r for r in RESOURCES}
NAMES: tuple[str, ...] = tuple(BY_NAME)
"""Every resource name, in catalogue order (also the OAuth scopes)."""

SERVER_FIELDS = ("created_at", "modified_at", "deleted")
"""Fields the server owns: accepted in a write (so a record read can be written back) and ignored."""

MAX_ID_LENGTH = 64
RESERVED_IDS = ("batch", "lookup", "summary")
"""Path segments that name endpoints (`/v1/users/batch`), so they cannot be record ids."""


def id_pattern(also_excluding: str = "") -> str:
    """What an id is: 1–64 characters, no control character, not reserved.

    (A lone surrogate cannot arrive: msgspec refuses one in JSON, and paths and queries
    must be UTF-8.)

    Stated as a regular expression (in the syntax shared by Python and JSON Schema) so that
    the OpenAPI description says exactly what the validator accepts; `also_excluding`
    narrows it for ids inside a list that those characters separate.
    """
    char = rf"[^\u0000-\u001f\u007f-\u009f{re.escape(also_excluding)}]"
    return rf"^(?!(?:{'|'.join(RESERVED_IDS)})$){char}{{1,{MAX_ID_LENGTH}}}$"


ID_PATTERN = id_pattern()
ID_RE = re.compile(ID_PATTERN)


def id_problem(record_id: str) -> str | None:
    """What is wrong with `record_id` as an id (which part of the pattern it breaks), or None."""
    if ID_RE.fullmatch(record_id):
        return None
    if not record_id or len(record_id) > MAX_ID_LENGTH:
        return f"An id must be 1 to {MAX_ID_LENGTH} characters long."
    if record_id in RESERVED_IDS:
        return f"{record_id!r} cannot be an id: /v1/<resource>/{record_id} is an endpoint."
    return "An id may not hold control characters (U+0000–U+001F, U+007F–U+009F)."


def get(name: str) -> Resource:
    """The resource called `name`; KeyError if there is none."""
    return BY_NAME[name]


def dependents_with_local_times() -> tuple[Resource, ...]:
    """Resources whose rendered event times depend on a location's time zone."""
    return tuple(r for r in RESOURCES if r.has_local_times)
