"""The review UI service: the reviewers' workspace."""

from hitl_review_ui.pages import build_router, configure_app
from hitl_shared.service import ServiceSpec

service = ServiceSpec(
    name="review-ui",
    description="Review workspace for reviewers, leads and admins",
    default_port=8002,
    http_router=build_router,
    configure_app=configure_app,
    mount_order=90,
)
