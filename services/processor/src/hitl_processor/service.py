"""The processor service: runs each item's AI task."""

from hitl_processor.processing import process_item, sweep_received
from hitl_shared.jobs import PROCESS_ITEM
from hitl_shared.service import ServiceSpec

service = ServiceSpec(
    name="processor",
    description="AI processing: output and confidence for each item",
    jobs={PROCESS_ITEM: process_item},
    sweepers=[sweep_received],
)
