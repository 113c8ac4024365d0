"""What the pages share: display filters, the reading-speed yardstick, the admin role."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends
from fastapi.responses import RedirectResponse

from hitl_review_ui.auth import Forbidden, Reviewer, ReviewerDep

# Careful reading runs at about 250 words (~1,500 characters) a minute: 40 s per 1,000 chars.
READING_SECONDS_PER_1000_CHARS = 40.0


def reading_seconds(chars: int) -> float:
    return chars / 1000 * READING_SECONDS_PER_1000_CHARS


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


def seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 10:
        return f"{value:.1f} s"
    if value < 120:
        return f"{value:.0f} s"
    return f"{value / 60:.1f} min"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


def num(value: float | int | None) -> str:
    """A number as people write it: 100 not 100.0, 0.5 not 0.50000."""
    if value is None:
        return ""
    f = float(value)
    return str(int(f)) if f.is_integer() else f"{f:g}"


FILTERS = {"when": when, "seconds": seconds, "percent": percent, "num": num}


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


# Pages that show a password or an API key once must never be kept by a cache or a proxy.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


async def require_admin(reviewer: ReviewerDep) -> Reviewer:
    if not reviewer.is_admin:
        raise Forbidden()
    return reviewer


AdminDep = Annotated[Reviewer, Depends(require_admin)]

__all__ = ["FILTERS", "NO_STORE", "AdminDep", "reading_seconds", "redirect"]
