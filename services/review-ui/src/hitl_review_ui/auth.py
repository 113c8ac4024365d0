"""Reviewer sign-in: argon2 passwords, a signed session cookie, CSRF tokens, lockout."""

from __future__ import annotations

import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, Request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.ext.asyncio import AsyncSession

from hitl_shared.audit import record
from hitl_shared.db.models import User
from hitl_shared.db.types import utcnow
from hitl_shared.http import RuntimeDep, WorkDep
from hitl_shared.lifecycle import Role
from hitl_shared.security import verify_password

COOKIE = "hitl_session"
SESSION_MAX_AGE = 12 * 3600
MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)


class LoginRequired(Exception):
    """Raised by page dependencies; the app turns it into a redirect to the sign-in page."""


class Forbidden(Exception):
    pass


class CsrfFailed(Exception):
    pass


@dataclass
class Reviewer:
    id: uuid.UUID
    username: str
    role: str
    csrf: str

    @property
    def is_lead(self) -> bool:
        return self.role in (Role.LEAD.value, Role.ADMIN.value)

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN.value


def serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt="hitl-review-session")


def session_cookie(secret: str, user: User) -> str:
    return serializer(secret).dumps({"uid": str(user.id), "csrf": secrets.token_urlsafe(24)})


def read_session(secret: str, cookie: str | None) -> dict[str, Any] | None:
    if not cookie:
        return None
    try:
        data = serializer(secret).loads(cookie, max_age=SESSION_MAX_AGE)
    except BadSignature:
        return None
    return data if isinstance(data, dict) else None


async def authenticate(
    session: AsyncSession, username: str, password: str
) -> tuple[User | None, str]:
    """Returns the user, or None and a message for the sign-in page."""
    generic = "That username and password do not match. Check both and try again."
    user = (
        await session.execute(sa.select(User).where(User.username == username.strip()))
    ).scalar_one_or_none()
    if user is None:
        # Same work as a real check, so timing does not reveal which usernames exist.
        verify_password(_DUMMY_HASH, password)
        return None, generic
    now = utcnow()
    if user.locked_until is not None and user.locked_until > now:
        minutes = max(1, int((user.locked_until - now).total_seconds() // 60) + 1)
        return None, (
            f"Too many failed sign-ins: this account is locked for {minutes} more minute(s)."
        )
    if not user.is_active:
        verify_password(_DUMMY_HASH, password)
        return None, "This account has been deactivated; ask an admin."
    if not verify_password(user.password_hash, password):
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILED_LOGINS:
            user.locked_until = now + LOCKOUT
            user.failed_logins = 0
            await record(session, user.username, "user.locked_out")
            return None, "Too many failed sign-ins: this account is locked for 15 minutes."
        return None, generic
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    await record(session, user.username, "user.signed_in")
    return user, ""


_DUMMY_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$KSLRmljuh5EDA86N9zHBkQ$"
    "Cotgk3yGQXmJsLka72SoIdNtw/6ML0s4GoPoIktxkZo"
)


async def current_reviewer(request: Request, runtime: RuntimeDep, work: WorkDep) -> Reviewer:
    """The signed-in reviewer, read in the request's own transaction (no second connection)."""
    data = read_session(runtime.settings.secret_key, request.cookies.get(COOKIE))
    if data is None:
        raise LoginRequired()
    try:
        uid = uuid.UUID(str(data.get("uid")))
    except ValueError:
        raise LoginRequired() from None
    user = await work.session.get(User, uid)
    if user is None or not user.is_active:
        raise LoginRequired()
    reviewer = Reviewer(user.id, user.username, user.role, str(data.get("csrf", "")))
    if request.method == "POST":
        form = await request.form()
        sent = str(form.get("csrf_token", "")) or request.headers.get("x-csrf-token", "")
        if not sent or not hmac.compare_digest(sent, reviewer.csrf):
            raise CsrfFailed()
    return reviewer


ReviewerDep = Annotated[Reviewer, Depends(current_reviewer)]


async def require_lead(reviewer: ReviewerDep) -> Reviewer:
    if not reviewer.is_lead:
        raise Forbidden()
    return reviewer


LeadDep = Annotated[Reviewer, Depends(require_lead)]
