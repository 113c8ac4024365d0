"""The feedback service: records every human decision and serves the figures."""

from hitl_feedback.endpoints import build_router
from hitl_feedback.loop import recalibrate_workflow
from hitl_feedback.recording import record_feedback, refresh_queue_gauges, sweep_unrecorded
from hitl_feedback.theatre import refresh_theatre_gauges
from hitl_shared.jobs import RECALIBRATE, RECORD_FEEDBACK
from hitl_shared.service import ServiceSpec

service = ServiceSpec(
    name="feedback",
    description="Feedback analytics from human decisions",
    default_port=8003,
    jobs={RECORD_FEEDBACK: record_feedback, RECALIBRATE: recalibrate_workflow},
    sweepers=[sweep_unrecorded, refresh_queue_gauges, refresh_theatre_gauges],
    http_router=build_router,
    mount_order=30,
)
