"""Admin pages: users, API keys, workflows and the audit trail. Every change is audited."""

from __future__ import annotations

import difflib
import re
import uuid
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

import sqlalchemy as sa
import yaml
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from hitl_review_ui.auth import Reviewer
from hitl_review_ui.pages import templates
from hitl_review_ui.ui import NO_STORE, AdminDep, redirect
from hitl_shared.api_auth import forget_api_key
from hitl_shared.audit import record
from hitl_shared.bootstrap import create_api_key, create_user
from hitl_shared.db.models import ApiKey, AuditEvent, ReviewTask, User, Workflow, WorkflowVersion
from hitl_shared.db.types import utcnow
from hitl_shared.http import RuntimeDep, WorkDep
from hitl_shared.lifecycle import Role, TaskStatus
from hitl_shared.security import generate_password, hash_password

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,149}$")
ROLES = [r.value for r in Role]
AUDIT_PAGE = 200

MESSAGES = {
    "role_changed": "Role changed for {who}.",
    "deactivated": "{who} is deactivated: they are signed out and cannot sign in.",
    "reactivated": "{who} can sign in again.",
    "revoked": "API key {who} is revoked.",
}


class AdminError(Exception):
    """An admin action that would break a rule; the message is shown on the page."""


# ---- users ---------------------------------------------------------------------------------


async def _lock_active_admins(session: AsyncSession) -> list[uuid.UUID]:
    # Lock the admin rows so two admins demoting each other at once cannot both succeed.
    return list(
        (
            await session.scalars(
                sa.select(User.id)
                .where(User.role == Role.ADMIN.value, User.is_active.is_(True))
                .with_for_update()
            )
        ).all()
    )


async def _user(session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await session.get(User, user_id, with_for_update=True)
    if user is None:
        raise AdminError("There is no such user.")
    return user


async def add_user(
    session: AsyncSession, actor: Reviewer, username: str, role: str
) -> tuple[User, str]:
    username = username.strip()
    if not USERNAME.match(username):
        raise AdminError(
            "A username is 1 to 150 letters, digits, dots, dashes, underscores or @, "
            "starting with a letter or digit."
        )
    if role not in ROLES:
        raise AdminError(f"Choose a role: {', '.join(ROLES)}.")
    taken = await session.scalar(sa.select(User.id).where(User.username == username))
    if taken is not None:
        raise AdminError(f"A user named {username} already exists.")
    password = generate_password()
    user = await create_user(session, username, password, Role(role), actor=actor.username)
    return user, password


async def change_role(
    session: AsyncSession, actor: Reviewer, user_id: uuid.UUID, role: str
) -> User:
    if role not in ROLES:
        raise AdminError(f"Choose a role: {', '.join(ROLES)}.")
    admins = await _lock_active_admins(session)
    user = await _user(session, user_id)
    if user.role == role:
        return user
    if user.role == Role.ADMIN.value and admins == [user.id]:
        raise AdminError("This is the last active admin: make someone else an admin first.")
    before = user.role
    user.role = role
    await record(
        session,
        actor.username,
        "user.role_changed",
        details={"username": user.username, "from": before, "to": role},
    )
    await session.flush()
    return user


async def set_active(
    session: AsyncSession, actor: Reviewer, user_id: uuid.UUID, active: bool
) -> User:
    admins = await _lock_active_admins(session)
    user = await _user(session, user_id)
    if user.is_active == active:
        return user
    details: dict[str, Any] = {"username": user.username}
    if not active:
        if user.id == actor.id:
            raise AdminError("You cannot deactivate yourself.")
        if user.role == Role.ADMIN.value and admins == [user.id]:
            raise AdminError("This is the last active admin and cannot be deactivated.")
        # Their locked tasks go straight back to the queues instead of waiting for expiry.
        released = await session.execute(
            sa.update(ReviewTask)
            .where(ReviewTask.claimed_by == user.id, ReviewTask.status == TaskStatus.CLAIMED.value)
            .values(
                status=TaskStatus.OPEN.value,
                claimed_by=None,
                claimed_at=None,
                lock_expires_at=None,
            )
            .execution_options(synchronize_session=False)
        )
        details["released_tasks"] = int(getattr(released, "rowcount", 0) or 0)
    else:
        user.failed_logins = 0
        user.locked_until = None
    user.is_active = active
    await record(
        session,
        actor.username,
        "user.reactivated" if active else "user.deactivated",
        details=details,
    )
    await session.flush()
    return user


async def reset_password(
    session: AsyncSession, actor: Reviewer, user_id: uuid.UUID
) -> tuple[User, str]:
    user = await _user(session, user_id)
    password = generate_password()
    user.password_hash = hash_password(password)
    user.failed_logins = 0
    user.locked_until = None
    await record(
        session, actor.username, "user.password_reset", details={"username": user.username}
    )
    await session.flush()
    return user, password


# ---- API keys ------------------------------------------------------------------------------


async def add_api_key(
    session: AsyncSession, actor: Reviewer, name: str, workflows: list[str]
) -> tuple[ApiKey, str]:
    name = name.strip()
    if not name or len(name) > 200:
        raise AdminError("Give the key a name of up to 200 characters (who or what uses it).")
    known = set((await session.scalars(sa.select(Workflow.name))).all())
    unknown = sorted(set(workflows) - known)
    if unknown:
        raise AdminError(f"Unknown workflow(s): {', '.join(unknown)}.")
    row, key = await create_api_key(
        session, name, workflows=sorted(set(workflows)) or None, actor=actor.username
    )
    return row, key


async def revoke_api_key(session: AsyncSession, actor: Reviewer, key_id: uuid.UUID) -> ApiKey:
    row = await session.get(ApiKey, key_id, with_for_update=True)
    if row is None:
        raise AdminError("There is no such API key.")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        await record(
            session,
            actor.username,
            "api_key.revoked",
            details={"name": row.name, "prefix": row.prefix},
        )
        await session.flush()
    return row


# ---- workflows -----------------------------------------------------------------------------


@dataclass
class VersionView:
    version: WorkflowVersion
    text: str  # the YAML as applied, or the stored configuration as YAML
    changes: list[str]  # unified diff against the previous version's configuration

    @property
    def thresholds(self) -> dict[str, Any]:
        routing = self.version.config.get("routing") or {}
        return dict(routing.get("thresholds") or {})

    @property
    def provider(self) -> str:
        p = self.version.config.get("provider") or {}
        return str(p.get("name", "local")) + (f" · {p['model']}" if p.get("model") else "")


def _config_yaml(config: dict[str, Any]) -> str:
    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True)


async def workflow_versions(session: AsyncSession, wf: Workflow) -> list[VersionView]:
    versions = (
        await session.scalars(
            sa.select(WorkflowVersion)
            .where(WorkflowVersion.workflow_id == wf.id)
            .order_by(WorkflowVersion.version)
        )
    ).all()
    out: list[VersionView] = []
    previous: str | None = None
    for v in versions:
        normalised = _config_yaml(v.config)
        changes = (
            list(
                difflib.unified_diff(
                    previous.splitlines(),
                    normalised.splitlines(),
                    f"version {v.version - 1}",
                    f"version {v.version}",
                    lineterm="",
                    n=1,
                )
            )
            if previous is not None
            else []
        )
        out.append(VersionView(v, v.source or normalised, changes))
        previous = normalised
    out.reverse()  # newest first
    return out


# ---- pages ---------------------------------------------------------------------------------


async def _users_page(
    request: Request,
    session: AsyncSession,
    admin: Reviewer,
    *,
    error: str | None = None,
    message: str | None = None,
    shown_password: tuple[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    users = (await session.scalars(sa.select(User).order_by(User.username))).all()
    return templates.TemplateResponse(
        request,
        "admin_users.html",
        {
            "reviewer": admin,
            "users": users,
            "roles": ROLES,
            "error": error,
            "message": message,
            "shown_password": shown_password,
            "now": utcnow(),
        },
        status_code=status_code,
        headers=NO_STORE,
    )


async def _keys_page(
    request: Request,
    session: AsyncSession,
    admin: Reviewer,
    *,
    error: str | None = None,
    message: str | None = None,
    shown_key: tuple[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    keys = (
        await session.scalars(
            sa.select(ApiKey).order_by(ApiKey.revoked_at.is_not(None), ApiKey.created_at.desc())
        )
    ).all()
    workflows = (await session.scalars(sa.select(Workflow.name).order_by(Workflow.name))).all()
    return templates.TemplateResponse(
        request,
        "admin_keys.html",
        {
            "reviewer": admin,
            "keys": keys,
            "workflows": workflows,
            "error": error,
            "message": message,
            "shown_key": shown_key,
        },
        status_code=status_code,
        headers=NO_STORE,
    )


def _message(msg: str | None, who: str) -> str | None:
    template = MESSAGES.get(msg or "")
    return template.format(who=who) if template else None


def build_admin_router() -> APIRouter:
    router = APIRouter(prefix="/admin", include_in_schema=False)

    @router.get("")
    async def admin_home(admin: AdminDep) -> Response:
        return redirect("/admin/users")

    @router.get("/users", response_class=HTMLResponse)
    async def users_page(
        request: Request, admin: AdminDep, work: WorkDep, msg: str = "", who: str = ""
    ) -> Response:
        return await _users_page(request, work.session, admin, message=_message(msg, who))

    @router.post("/users", response_class=HTMLResponse)
    async def create_user_action(
        request: Request,
        admin: AdminDep,
        work: WorkDep,
        username: Annotated[str, Form(max_length=200)] = "",
        role: Annotated[str, Form()] = Role.REVIEWER.value,
    ) -> Response:
        try:
            user, password = await add_user(work.session, admin, username, role)
        except AdminError as e:
            await work.rollback()
            return await _users_page(request, work.session, admin, error=str(e), status_code=422)
        await work.commit()
        # Shown in this response only; it is stored as an argon2 hash and cannot be shown again.
        return await _users_page(
            request,
            work.session,
            admin,
            message=f"Created {user.role} {user.username}.",
            shown_password=(user.username, password),
        )

    async def _user_action(
        request: Request, admin: Reviewer, work: Any, action: str, user_id: uuid.UUID, **kw: Any
    ) -> Response:
        session = work.session
        try:
            if action == "role":
                user = await change_role(session, admin, user_id, kw["role"])
            elif action == "password":
                user, password = await reset_password(session, admin, user_id)
                await work.commit()
                return await _users_page(
                    request,
                    session,
                    admin,
                    message=f"New password for {user.username}.",
                    shown_password=(user.username, password),
                )
            else:
                user = await set_active(session, admin, user_id, action == "reactivate")
        except AdminError as e:
            await work.rollback()
            return await _users_page(request, session, admin, error=str(e), status_code=409)
        await work.commit()
        msg = {"role": "role_changed", "deactivate": "deactivated", "reactivate": "reactivated"}
        return redirect("/admin/users?" + urlencode({"msg": msg[action], "who": user.username}))

    @router.post("/users/{user_id}/role")
    async def role_action(
        request: Request,
        user_id: uuid.UUID,
        admin: AdminDep,
        work: WorkDep,
        role: Annotated[str, Form()],
    ) -> Response:
        return await _user_action(request, admin, work, "role", user_id, role=role)

    @router.post("/users/{user_id}/deactivate")
    async def deactivate_action(
        request: Request, user_id: uuid.UUID, admin: AdminDep, work: WorkDep
    ) -> Response:
        return await _user_action(request, admin, work, "deactivate", user_id)

    @router.post("/users/{user_id}/reactivate")
    async def reactivate_action(
        request: Request, user_id: uuid.UUID, admin: AdminDep, work: WorkDep
    ) -> Response:
        return await _user_action(request, admin, work, "reactivate", user_id)

    @router.post("/users/{user_id}/password")
    async def password_action(
        request: Request, user_id: uuid.UUID, admin: AdminDep, work: WorkDep
    ) -> Response:
        return await _user_action(request, admin, work, "password", user_id)

    @router.get("/api-keys", response_class=HTMLResponse)
    async def keys_page(
        request: Request, admin: AdminDep, work: WorkDep, msg: str = "", who: str = ""
    ) -> Response:
        return await _keys_page(request, work.session, admin, message=_message(msg, who))

    @router.post("/api-keys", response_class=HTMLResponse)
    async def create_key_action(
        request: Request,
        admin: AdminDep,
        work: WorkDep,
        name: Annotated[str, Form(max_length=400)] = "",
        workflows: Annotated[list[str] | None, Form()] = None,
    ) -> Response:
        try:
            row, key = await add_api_key(work.session, admin, name, workflows or [])
        except AdminError as e:
            await work.rollback()
            return await _keys_page(request, work.session, admin, error=str(e), status_code=422)
        await work.commit()
        return await _keys_page(
            request,
            work.session,
            admin,
            message=f"Created API key {row.name}.",
            shown_key=(row.name, key),
        )

    @router.post("/api-keys/{key_id}/revoke")
    async def revoke_key_action(
        request: Request, key_id: uuid.UUID, admin: AdminDep, work: WorkDep, runtime: RuntimeDep
    ) -> Response:
        try:
            row = await revoke_api_key(work.session, admin, key_id)
        except AdminError as e:
            await work.rollback()
            return await _keys_page(request, work.session, admin, error=str(e), status_code=404)
        await work.commit()
        forget_api_key(runtime, row.key_hash)
        return redirect("/admin/api-keys?" + urlencode({"msg": "revoked", "who": row.name}))

    @router.get("/workflows", response_class=HTMLResponse)
    async def workflows_page(request: Request, admin: AdminDep, work: WorkDep) -> Response:
        workflows = (await work.session.scalars(sa.select(Workflow).order_by(Workflow.name))).all()
        return templates.TemplateResponse(
            request, "admin_workflows.html", {"reviewer": admin, "workflows": workflows}
        )

    @router.get("/workflows/{name}", response_class=HTMLResponse)
    async def workflow_page(
        request: Request, name: str, admin: AdminDep, work: WorkDep
    ) -> Response:
        wf = await work.session.scalar(sa.select(Workflow).where(Workflow.name == name))
        if wf is None:
            return templates.TemplateResponse(
                request,
                "error.html",
                {"reviewer": admin, "title": "No such workflow", "message": f"{name} is unknown."},
                status_code=404,
            )
        versions = await workflow_versions(work.session, wf)
        return templates.TemplateResponse(
            request, "admin_workflow.html", {"reviewer": admin, "wf": wf, "versions": versions}
        )

    @router.get("/audit", response_class=HTMLResponse)
    async def audit_page(
        request: Request, admin: AdminDep, work: WorkDep, actor: str = "", action: str = ""
    ) -> Response:
        q = sa.select(AuditEvent)
        if actor:
            q = q.where(AuditEvent.actor == actor)
        if action:
            q = q.where(AuditEvent.action.startswith(action, autoescape=True))
        events = (
            await work.session.scalars(q.order_by(AuditEvent.id.desc()).limit(AUDIT_PAGE))
        ).all()
        return templates.TemplateResponse(
            request,
            "admin_audit.html",
            {"reviewer": admin, "events": events, "actor": actor, "action": action},
        )

    return router
