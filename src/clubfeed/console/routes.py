"""The business console: login, overview, shared secret, connected apps, activity."""

from __future__ import annotations

from fastapi import APIRouter

from clubfeed.console import apps, login, overview, secret

router = APIRouter(include_in_schema=False)
for feature in (login, overview, secret, apps):
    router.include_router(feature.router)
