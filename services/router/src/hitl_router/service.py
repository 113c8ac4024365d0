"""The router service: confidence routing into review queues, and delivery of decisions."""

from hitl_router.delivery import deliver_webhook, sweep_due_deliveries
from hitl_router.routing import (
    route_item,
    sweep_expired_locks,
    sweep_overdue_tasks,
    sweep_processed,
)
from hitl_shared.jobs import DELIVER_WEBHOOK, ROUTE_ITEM
from hitl_shared.service import ServiceSpec

service = ServiceSpec(
    name="router",
    description="Routes items to review levels and delivers decisions to integrations",
    jobs={ROUTE_ITEM: route_item, DELIVER_WEBHOOK: deliver_webhook},
    sweepers=[sweep_processed, sweep_expired_locks, sweep_overdue_tasks, sweep_due_deliveries],
)
