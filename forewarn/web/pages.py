"""The one router of the node's pages: the public portal and the console."""

from __future__ import annotations

from fastapi import APIRouter

from forewarn.web import console, portal

router = APIRouter(include_in_schema=False)
router.include_router(console.router)
router.include_router(portal.router)
