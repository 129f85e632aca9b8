"""Business admins: the gym owners who log in to the console and approve OAuth requests."""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher
from sqlalchemy import Connection, delete, insert, select, update

from clubfeed import tenants
from clubfeed.auth import passwords
from clubfeed.storage.schema import admin_sessions, admins
from clubfeed.timefmt import now_us


@dataclass(frozen=True)
class Admin:
    id: int
    business_id: int
    email: str


class AdminExists(ValueError):
    """An admin with this email exists already (emails are unique across businesses)."""


def normalize_email(email: str) -> str:
    return email.strip().lower()


def create(
    conn: Connection, ph: PasswordHasher, *, business_id: int, email: str, password: str
) -> Admin:
    """Create an admin of `business_id`; ValueError if the business or the password won't do."""
    email = normalize_email(email)
    if "@" not in email:
        raise ValueError(f"{email!r} is not an email address.")
    if (weak := passwords.check_strength(password)) is not None:
        raise ValueError(weak)
    if not tenants.exists(conn, business_id):
        raise ValueError(f"There is no business {business_id}.")
    if conn.execute(select(admins.c.id).where(admins.c.email == email)).first() is not None:
        raise AdminExists(f"An admin with email {email} exists already.")
    admin_id: int = conn.execute(
        insert(admins)
        .values(
            business_id=business_id,
            email=email,
            password_hash=ph.hash(password),
            created_at=now_us(),
        )
        .returning(admins.c.id)
    ).scalar_one()
    return Admin(admin_id, business_id, email)


@dataclass(frozen=True)
class Listed:
    """An admin as `clubfeed admin list` shows it."""

    id: int
    business_id: int
    email: str
    created_at: int


def listed(conn: Connection, business_id: int | None = None) -> list[Listed]:
    """Every admin (of one business, if given), by business then email."""
    query = select(admins.c.id, admins.c.business_id, admins.c.email, admins.c.created_at)
    if business_id is not None:
        query = query.where(admins.c.business_id == business_id)
    rows = conn.execute(query.order_by(admins.c.business_id, admins.c.email))
    return [Listed(r.id, r.business_id, r.email, r.created_at) for r in rows]


def by_email(conn: Connection, email: str) -> Admin | None:
    row = conn.execute(
        select(admins.c.id, admins.c.business_id, admins.c.email).where(
            admins.c.email == normalize_email(email)
        )
    ).first()
    return None if row is None else Admin(row.id, row.business_id, row.email)


def _end_sessions(conn: Connection, admin_id: int) -> int:
    return conn.execute(
        delete(admin_sessions).where(admin_sessions.c.admin_id == admin_id)
    ).rowcount


def reset_password(conn: Connection, ph: PasswordHasher, admin: Admin, password: str) -> int:
    """Give `admin` a new password and end its console sessions (how many were live or not).

    ValueError if the password is too weak; nothing changes then.
    """
    if (weak := passwords.check_strength(password)) is not None:
        raise ValueError(weak)
    store_hash(conn, admin.id, ph.hash(password))
    return _end_sessions(conn, admin.id)


def remove(conn: Connection, admin: Admin) -> int:
    """Delete `admin` and its console sessions; returns how many sessions ended.

    The OAuth grants it approved stay: the business approved them, not the person.
    """
    ended = _end_sessions(conn, admin.id)
    conn.execute(delete(admins).where(admins.c.id == admin.id))
    return ended


@dataclass(frozen=True)
class Login:
    """A verified login; `new_hash` is set when the stored hash used older parameters."""

    admin: Admin
    new_hash: str | None


def authenticate(conn: Connection, ph: PasswordHasher, email: str, password: str) -> Login | None:
    """Verify an admin's email and password without writing anything, or None.

    An unknown email costs a hash verification too, so timing does not tell which
    emails have accounts. The slow hashing happens here, on a read connection, so
    no write lock is held while it runs; `store_hash` saves an upgraded hash.
    """
    row = conn.execute(
        select(admins.c.id, admins.c.business_id, admins.c.email, admins.c.password_hash).where(
            admins.c.email == normalize_email(email)
        )
    ).first()
    if row is None:
        passwords.verify(ph, _dummy_hash(ph), password)
        return None
    if not passwords.verify(ph, row.password_hash, password):
        return None
    new_hash = ph.hash(password) if ph.check_needs_rehash(row.password_hash) else None
    return Login(Admin(row.id, row.business_id, row.email), new_hash)


def store_hash(conn: Connection, admin_id: int, password_hash: str) -> None:
    conn.execute(update(admins).where(admins.c.id == admin_id).values(password_hash=password_hash))


_DUMMY: dict[tuple[int, int], str] = {}


def _dummy_hash(ph: PasswordHasher) -> str:
    key = (ph.time_cost, ph.memory_cost)
    if key not in _DUMMY:
        _DUMMY[key] = ph.hash("not a password anyone has")
    return _DUMMY[key]
