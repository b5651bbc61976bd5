"""The hosted checkout page (issue 3): served at /checkout/{payment_id}."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
