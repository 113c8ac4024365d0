"""The review UI service: the reviewers' workspace."""

from fastapi import APIRouter

from hitl_review_ui.pages import build_router as build_pages_router
from hitl_review_ui.pages import configure_app
from hitl_shared.service import ServiceSpec


def build_router() -> APIRouter:
    router = build_pages_router()
    # Imported here, like the pages' own sub-routers: it renders with the pages' templates.
    from hitl_review_ui.insights import build_insights_router

    router.include_router(build_insights_router())
    return router


service = ServiceSpec(
    name="review-ui",
    description="Review workspace for reviewers, leads and admins",
    default_port=8002,
    http_router=build_router,
    configure_app=configure_app,
    mount_order=90,
)
