"""The ingest service: the public API integrations send items to."""

from hitl_ingest.endpoints import build_router
from hitl_ingest.intake_route import ROUTES
from hitl_shared.service import ServiceSpec

service = ServiceSpec(
    name="ingest",
    description="Public API: integrations send items and read results",
    default_port=8001,
    http_router=build_router,
    asgi_routes=ROUTES,
    mount_order=10,
)
