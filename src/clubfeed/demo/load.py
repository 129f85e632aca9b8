"""`clubfeed demo`: load the demo chain once, through ingest, and hand out fresh credentials.

Credentials are kept only as hashes, so an earlier run's cannot be shown again:
every run issues new ones, and those printed before stop working.
"""

from __future__ import annotations

import json
import secrets
import shlex
import time
from dataclasses import dataclass

import msgspec
from argon2 import PasswordHasher
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import Connection, Engine, func, select, update

from clubfeed import catalogue, tenants
from clubfeed.auth import admins, credentials
from clubfeed.demo.chain import SITES
from clubfeed.demo.generate import WRITE_ORDER, generate
from clubfeed.demo.people import user_id
from clubfeed.ingest import validate
from clubfeed.ingest.write import apply_changes
from clubfeed.storage.engine import read_connection, write_transaction
from clubfeed.storage.schema import RESOURCE_TABLES, businesses, integrators
from clubfeed.storage.schema import admins as admin_table

DEMO_BUSINESS_NAME = "Harbour & Pine Fitness (demo)"
# The business carries this name until its last record is written, so an
# interrupted load is finished by the next run rather than taken for done.
LOADING_NAME = f"{DEMO_BUSINESS_NAME} [loading]"
DEMO_INTEGRATOR_NAME = "Demo Loyalty (demo)"
DEMO_ADMIN_EMAIL = "owner@harbour-and-pine.example"
# Nothing listens here: catch the redirect with `python3 -m http.server 8400`, or read
# the code from the browser's address bar.
DEMO_REDIRECT_URI = "http://127.0.0.1:8400/callback"
DEFAULT_BASE_URL = "http://127.0.0.1:8000"
BATCH = validate.MAX_BATCH


@dataclass(frozen=True)
class DemoCredentials:
    """What reads and writes the demo business; valid until the next `clubfeed demo`."""

    business_id: int
    shared_secret: str
    ingest_key: str
    integrator_id: int
    integrator_key: str
    client_id: str
    client_secret: str
    admin_password: str


def ensure_demo(
    engine: Engine,
    console: Console,
    *,
    hasher: PasswordHasher,
    base_url: str = DEFAULT_BASE_URL,
) -> DemoCredentials:
    """Load the demo chain unless it is loaded, then re-issue and print its credentials."""
    business_id, loaded = _claim_business(engine)
    if loaded:
        console.print(
            f"The demo chain is already loaded (business {business_id}); not loading it again."
        )
    else:
        _load(engine, business_id, console)
        with write_transaction(engine) as conn:
            conn.execute(
                update(businesses)
                .where(businesses.c.id == business_id)
                .values(name=DEMO_BUSINESS_NAME)
            )
    with write_transaction(engine) as conn:
        demo = _issue_credentials(conn, business_id, hasher)
    with read_connection(engine) as conn:
        counts = _counts(conn, business_id)
    _report(console, demo, counts, base_url)
    return demo


def _claim_business(engine: Engine) -> tuple[int, bool]:
    """The demo business's id and whether its data is all written; created if there is none."""
    with write_transaction(engine) as conn:
        rows = tenants.named(conn, (DEMO_BUSINESS_NAME, LOADING_NAME))
        for row in rows:
            if row.name == DEMO_BUSINESS_NAME:
                return row.id, True
        if rows:
            return rows[0].id, False
        return tenants.create_business(conn, LOADING_NAME).id, False


def _load(engine: Engine, business_id: int, console: Console) -> None:
    """Write every demo record as the POS would: validated, in transactions of up to 10,000."""
    started = time.perf_counter()
    with console.status("Generating the demo chain…"):
        records = generate()
    generated = time.perf_counter()
    total = sum(len(batch) for batch in records.values())
    columns = (
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("loading", total=total)
        for name in WRITE_ORDER:
            resource = catalogue.get(name)
            record_type = validate.record_type(resource)
            progress.update(task, description=f"loading {name}")
            for start in range(0, len(records[name]), BATCH):
                batch = [
                    msgspec.convert(r, record_type) for r in records[name][start : start + BATCH]
                ]
                checked = validate.validated(resource, batch, [])
                with write_transaction(engine) as conn:
                    apply_changes(conn, business_id=business_id, batch=checked)
                progress.advance(task, len(batch))
        progress.update(task, description="loaded")
    finished = time.perf_counter()
    console.print(
        f"Loaded {total:,} demo records in {finished - started:.1f} s "
        f"(generated in {generated - started:.1f} s, written in {finished - generated:.1f} s)."
    )


def _issue_credentials(
    conn: Connection, business_id: int, hasher: PasswordHasher
) -> DemoCredentials:
    """Fresh credentials of every kind; the previous ones stop working."""
    secret = credentials.rotate_shared_secret(conn, business_id)
    ingest_key = credentials.rotate_ingest_key(conn, business_id)
    integrator_id = conn.execute(
        select(integrators.c.id)
        .where(integrators.c.name == DEMO_INTEGRATOR_NAME)
        .order_by(integrators.c.id)
    ).scalar()
    if integrator_id is None:
        integrator_id = credentials.create_integrator(conn, DEMO_INTEGRATOR_NAME).id
    integrator_key = credentials.rotate_integrator_key(conn, integrator_id)
    assert secret and ingest_key and integrator_key, "both rows exist in this transaction"
    client_id, client_secret = credentials.set_oauth_client(
        conn, integrator_id, (DEMO_REDIRECT_URI,)
    )
    password = secrets.token_urlsafe(12)
    admin_id = conn.execute(
        select(admin_table.c.id).where(admin_table.c.email == DEMO_ADMIN_EMAIL)
    ).scalar()
    if admin_id is None:
        admins.create(
            conn, hasher, business_id=business_id, email=DEMO_ADMIN_EMAIL, password=password
        )
    else:
        admins.store_hash(conn, admin_id, hasher.hash(password))
    return DemoCredentials(
        business_id,
        secret,
        ingest_key,
        integrator_id,
        integrator_key,
        client_id,
        client_secret,
        password,
    )


def _counts(conn: Connection, business_id: int) -> dict[str, int]:
    counts = {}
    for name in WRITE_ORDER:
        table = RESOURCE_TABLES[name]
        counts[name] = conn.execute(
            select(func.count())
            .select_from(table)
            .where(table.c.business_id == business_id, table.c.deleted_at.is_(None))
        ).scalar_one()
    return counts


def _report(console: Console, demo: DemoCredentials, counts: dict[str, int], base_url: str) -> None:
    console.print(f"[bold]{escape(DEMO_BUSINESS_NAME)}[/bold], business {demo.business_id}:")
    table = Table()
    table.add_column("resource")
    table.add_column("records", justify="right")
    for name, count in counts.items():
        table.add_row(name, f"{count:,}")
    console.print(table)

    def line(text: str) -> None:
        # Never wrapped or styled, so that keys and commands paste back intact.
        console.print(text, markup=False, highlight=False, soft_wrap=True)

    console.print(
        "[bold]New credentials[/bold], issued on every run: only their hashes are stored, "
        "so the ones printed by an earlier run have just stopped working."
    )
    line(f"  business id     {demo.business_id}")
    line(
        f"  shared secret   {demo.shared_secret}   (integrators read with it: Authorization: Bearer)"
    )
    line(f"  ingest key      {demo.ingest_key}   (the POS writes with it: Authorization: Bearer)")
    line(f"  integrator key  {demo.integrator_key}   ({DEMO_INTEGRATOR_NAME}: X-Integrator-Key)")
    console.print(
        "[bold]Read[/bold] check-ins, a page of three (start the API with `clubfeed serve`):"
    )
    line(
        f"curl -sS {shlex.quote(base_url + '/v1/checkins?limit=3')} "
        f"-H {shlex.quote('X-Integrator-Key: ' + demo.integrator_key)} "
        f"-H {shlex.quote('Authorization: Bearer ' + demo.shared_secret)}"
    )
    console.print("[bold]Write[/bold] a check-in as the POS would:")
    body = {
        "checked_in_at": "2026-11-30T18:05:00-05:00",
        "location_id": SITES[0].id,
        "user_id": user_id(0),
        "extra": {"method": "curl"},
    }
    line(
        f"curl -sS -X PUT {shlex.quote(base_url + '/v1/checkins/ci-curl-1')} "
        f"-H {shlex.quote('Authorization: Bearer ' + demo.ingest_key)} "
        f"-H 'Content-Type: application/json' "
        f"-d {shlex.quote(json.dumps(body, separators=(',', ':')))}"
    )
    console.print("[bold]Copy[/bold] the whole business into a local SQLite file, and check it:")
    line(
        f"clubfeed pull {shlex.quote(base_url)} --integrator-key {demo.integrator_key} "
        f"--token {demo.shared_secret} --to sqlite:///demo-copy.db --verify"
    )
    console.print("[bold]Console[/bold] (the gym owner's side):")
    line(f"  {base_url}/console   {DEMO_ADMIN_EMAIL} / {demo.admin_password}")
    console.print(
        "[bold]OAuth[/bold]: the demo integrator's client (see README, Connect with OAuth):"
    )
    line(f"  client_id       {demo.client_id}")
    line(f"  client_secret   {demo.client_secret}")
    line(f"  redirect URI    {DEMO_REDIRECT_URI}")
