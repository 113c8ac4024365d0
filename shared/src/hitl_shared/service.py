"""How a service declares itself. The ``hitl`` command finds services through the
``hitl.services`` entry-point group, so this package never imports them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from fastapi import APIRouter, FastAPI
from starlette.types import ASGIApp

if TYPE_CHECKING:
    from hitl_shared.runtime import Runtime
    from hitl_shared.work import Work

JobFn = Callable[["Work", "Runtime", str], Awaitable[None]]
SweepFn = Callable[["Work", "Runtime"], Awaitable[int]]
HookFn = Callable[["Runtime"], Awaitable[None]]


@dataclass
class ServiceSpec:
    name: str
    description: str
    default_port: int = 0
    jobs: dict[str, JobFn] = field(default_factory=dict)
    # Periodic repair: find work stuck in a transitional state and re-enqueue it.
    sweepers: list[SweepFn] = field(default_factory=list)
    http_router: Callable[[], APIRouter] | None = None
    # Hot paths served as bare ASGI handlers ahead of the framework's routing, keyed by
    # (method, path); the body-size limit still applies. Keep a declared route for the docs.
    asgi_routes: dict[tuple[str, str], ASGIApp] = field(default_factory=dict)
    on_startup: list[HookFn] = field(default_factory=list)
    # Exception handlers, static files and the like that the service's routes rely on.
    configure_app: Callable[[FastAPI], None] | None = None
    # Order in the embedded app: the review UI's catch-all pages go last.
    mount_order: int = 50


SERVICE_ORDER = ["ingest", "processor", "router", "review-ui", "feedback"]


def discover_services() -> dict[str, ServiceSpec]:
    found: dict[str, ServiceSpec] = {}
    for ep in entry_points(group="hitl.services"):
        spec = ep.load()
        if not isinstance(spec, ServiceSpec):
            raise TypeError(f"entry point {ep.name} does not point at a ServiceSpec")
        found[ep.name] = spec
    missing = [name for name in SERVICE_ORDER if name not in found]
    if missing:
        raise RuntimeError(
            f"services not installed: {', '.join(missing)}; run `uv sync --all-packages`"
        )
    return {name: found[name] for name in sorted(found, key=_order)}


def load_service(name: str) -> ServiceSpec:
    """One service only: a distributed process does not import (or pay for) the others."""
    for ep in entry_points(group="hitl.services", name=name):
        spec = ep.load()
        if isinstance(spec, ServiceSpec):
            return spec
    raise RuntimeError(f"service {name!r} is not installed; run `uv sync --all-packages`")


def _order(name: str) -> int:
    return SERVICE_ORDER.index(name) if name in SERVICE_ORDER else len(SERVICE_ORDER)
