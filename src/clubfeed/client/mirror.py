"""A local copy of a business: one table per resource, kept by `clubfeed pull`.

Each resource's table is named like the resource with `_` for `-` (`sales_categories`),
with `id` as its key, a column per field, `created_at`, `modified_at` and `extra` (JSON),
times as the server wrote them. `clubfeed_bookmarks` holds where each resource's next
pull starts. Every pull is applied in one transaction with its bookmark, so a copy is
always exactly the server's state at its bookmark, and an interrupted pull is simply
pulled again. SQLite comes with Python; a PostgreSQL copy needs psycopg.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple, Protocol
from urllib.parse import urlsplit

import msgspec

from clubfeed import catalogue
from clubfeed.catalogue import Kind, Resource
from clubfeed.client.pages import Bookmark, stamp


def database_errors() -> tuple[type[Exception], ...]:
    """The errors the copy's database may raise (psycopg's only if it is installed)."""
    import sqlite3

    try:
        import psycopg
    except ModuleNotFoundError:
        return (sqlite3.Error,)
    return (sqlite3.Error, psycopg.Error)


_SQLITE_TYPES = {Kind.BOOL: "INTEGER", Kind.DECIMAL: "TEXT"}
_PG_TYPES = {
    Kind.BOOL: "boolean",
    Kind.DECIMAL: "numeric",
    Kind.DATE: "date",
    Kind.DATETIME: "timestamptz",
}


def table_name(resource: str) -> str:
    return resource.replace("-", "_")


def _columns(resource: Resource) -> list[str]:
    return ["id", "created_at", "modified_at", *(f.name for f in resource.fields), "extra"]


class Rows(NamedTuple):
    """One page, ready for the copy: its records as rows in column order (`extra` as its
    JSON text), and the ids its tombstones delete. A query serves each id once, so the
    two apply in either order."""

    upserts: list[tuple[Any, ...]]
    deletes: list[tuple[str]]


def _row_type(resource: Resource) -> type[msgspec.Struct]:
    """A page item as the copy stores it, its fields in column order: values as served
    (times, dates and prices as their text, which both databases take), `extra` as its
    raw JSON, and `deleted` last. Every field may be absent, so a tombstone decodes too."""
    fields: list[tuple[str, Any, Any]] = [
        ("id", str, msgspec.NODEFAULT),
        ("created_at", str | None, None),
        ("modified_at", str, msgspec.NODEFAULT),
    ]
    fields += [
        (f.name, (bool if f.kind is Kind.BOOL else str) | None, None) for f in resource.fields
    ]
    fields += [("extra", msgspec.Raw, msgspec.Raw(b"{}")), ("deleted", bool, False)]
    return msgspec.defstruct(f"{resource.one_type_name}Row", fields, kw_only=True)


def _page_decoder(resource: Resource) -> msgspec.json.Decoder[Any]:
    row = _row_type(resource)
    page = msgspec.defstruct(
        f"{resource.type_name}Page",
        [("data", list[row]), ("next_cursor", str | None), ("consistent_until", str)],  # type: ignore[valid-type]
    )
    return msgspec.json.Decoder(page)


_DECODERS = {r.name: _page_decoder(r) for r in catalogue.RESOURCES}


def decode_rows(resource: str, body: bytes) -> tuple[Rows, str | None, str]:
    """A list page's body as the copy's rows (a `PageDecoder` for `Client.pages`)."""
    page = _DECODERS[resource].decode(body)
    rows = list(map(msgspec.structs.astuple, page.data))
    upserts = [(*row[:-2], bytes(row[-2]).decode()) for row in rows if not row[-1]]
    deletes = [(row[0],) for row in rows if row[-1]]
    return Rows(upserts, deletes), page.next_cursor, page.consistent_until


class _Cursor(Protocol):
    def execute(self, sql: str, params: Any = ..., /) -> Any: ...
    def executemany(self, sql: str, params: Any, /) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class Mirror:
    """The copy's database: `sqlite:///path` or `postgresql://…` (psycopg)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.url = url
        self.postgres = parts.scheme.split("+")[0] in ("postgresql", "postgres")
        if self.postgres:
            try:
                import psycopg
            except ModuleNotFoundError:
                raise ValueError(
                    "a PostgreSQL copy needs psycopg: pip install 'psycopg[binary]'"
                ) from None
            libpq = "postgresql" + url[url.index("://") :]  # without a +driver
            self._conn: Any = psycopg.connect(libpq, autocommit=False)
            self._mark = "%s"
        elif parts.scheme == "sqlite":
            import sqlite3

            path = url.removeprefix("sqlite:///")
            if not path or path == url:
                raise ValueError("a SQLite copy is a file: sqlite:///path/to/copy.db")
            self._conn = sqlite3.connect(path, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            # WAL's usual setting: a commit is not flushed to disk until a checkpoint, so
            # a power cut may lose the last pulls (and their bookmarks with them), never
            # the copy's consistency.
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._mark = "?"
        else:
            raise ValueError(f"the copy must be sqlite:///… or postgresql://…, not {url!r}")
        self._create()

    def close(self) -> None:
        self._conn.close()

    def _type(self, kind: Kind) -> str:
        return (_PG_TYPES if self.postgres else _SQLITE_TYPES).get(kind, "text")

    def _create(self) -> None:
        """The tables, and any column a newer catalogue added to a copy made before it."""
        stamp_type = "timestamptz" if self.postgres else "text"
        extra_type = "jsonb" if self.postgres else "text"
        with self.transaction() as cur:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS clubfeed_bookmarks "
                "(resource text PRIMARY KEY, modified_since text NOT NULL)"
            )
            for resource in catalogue.RESOURCES:
                table = table_name(resource.name)
                fields = ", ".join(f'"{f.name}" {self._type(f.kind)}' for f in resource.fields)
                cur.execute(
                    f"CREATE TABLE IF NOT EXISTS {table} (id text PRIMARY KEY, "
                    f"created_at {stamp_type} NOT NULL, modified_at {stamp_type} NOT NULL, "
                    f"{fields}, extra {extra_type} NOT NULL)"
                )
                have = self._columns_of(cur, table)
                for f in resource.fields:
                    if f.name not in have:
                        cur.execute(
                            f'ALTER TABLE {table} ADD COLUMN "{f.name}" {self._type(f.kind)}'
                        )

    def _columns_of(self, cur: _Cursor, table: str) -> set[str]:
        if self.postgres:
            cur.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = %s",
                (table,),
            )
            return {row[0] for row in cur.fetchall()}
        cur.execute(f"PRAGMA table_info({table})")
        return {row[1] for row in cur.fetchall()}

    @contextmanager
    def transaction(self) -> Iterator[_Cursor]:
        """A cursor in one transaction, committed at the end (rolled back on error)."""
        cur = self._conn.cursor()
        try:
            if not self.postgres:
                cur.execute("BEGIN IMMEDIATE")
            yield cur
            self._conn.commit() if self.postgres else cur.execute("COMMIT")
        except BaseException:
            self._conn.rollback()
            raise
        finally:
            cur.close()

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Rows of one query, taking no write lock (SQLite reads in autocommit)."""
        cur = self._conn.cursor()
        try:
            cur.execute(sql, params)
            return list(cur.fetchall())
        finally:
            cur.close()
            if self.postgres:
                self._conn.rollback()  # end the read's transaction

    def bookmark(self, resource: str) -> Bookmark | None:
        found = self._read(
            f"SELECT modified_since FROM clubfeed_bookmarks WHERE resource = {self._mark}",
            (resource,),
        )
        return Bookmark(resource, found[0][0]) if found else None

    def apply(
        self, resource: str, pages: Iterable[Rows | Bookmark], *, replace: bool
    ) -> tuple[int, int, Bookmark | None]:
        """Apply a pull's pages (from `decode_rows`) in one transaction (`replace`: a
        complete transfer, which empties the table first); the records and tombstones
        applied, and the bookmark."""
        columns = _columns(catalogue.get(resource))
        table = table_name(resource)
        marks = ", ".join([self._mark] * len(columns))
        names = ", ".join(f'"{c}"' for c in columns)
        updates = ", ".join(f'"{c}" = excluded."{c}"' for c in columns[1:])
        # An upsert in a transfer too: a server that sent an id twice leaves its last.
        upsert = f"INSERT INTO {table} ({names}) VALUES ({marks}) ON CONFLICT (id) DO UPDATE SET {updates}"
        delete = f"DELETE FROM {table} WHERE id = {self._mark}"
        records = tombstones = 0
        saved: Bookmark | None = None
        with self.transaction() as cur:
            if replace:
                cur.execute(f"DELETE FROM {table}")
            for page in pages:
                if isinstance(page, Bookmark):
                    saved = page
                    continue
                if page.upserts:
                    cur.executemany(upsert, page.upserts)
                if page.deletes:
                    cur.executemany(delete, page.deletes)
                records += len(page.upserts)
                tombstones += len(page.deletes)
            if saved is not None:
                cur.execute(
                    "INSERT INTO clubfeed_bookmarks (resource, modified_since) VALUES "
                    f"({self._mark}, {self._mark}) ON CONFLICT (resource) DO UPDATE "
                    "SET modified_since = excluded.modified_since",
                    (resource, saved.modified_since),
                )
        return records, tombstones, saved

    def versions(self, resource: str) -> list[tuple[str, str]]:
        """Every (id, modified_at) of the copy, modified_at as the server wrote it."""
        rows = self._read(f"SELECT id, modified_at FROM {table_name(resource)}")
        return [(i, m if isinstance(m, str) else stamp(m)) for i, m in rows]

    def count(self, resource: str) -> int:
        return int(self._read(f"SELECT count(*) FROM {table_name(resource)}")[0][0])
