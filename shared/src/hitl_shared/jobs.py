"""Job names and the queue each one runs on. Jobs carry IDs only; the database holds the rest."""

from __future__ import annotations

PROCESS_ITEM = "process_item"
ROUTE_ITEM = "route_item"
DELIVER_WEBHOOK = "deliver_webhook"
RECORD_FEEDBACK = "record_feedback"
RECALIBRATE = "recalibrate_workflow"

# Which worker (service) runs each job.
JOB_SERVICE: dict[str, str] = {
    PROCESS_ITEM: "processor",
    ROUTE_ITEM: "router",
    DELIVER_WEBHOOK: "router",
    RECORD_FEEDBACK: "feedback",
    RECALIBRATE: "feedback",
}


def queue_name(prefix: str, service: str) -> str:
    return f"{prefix}:queue:{service}"


def job_id(job: str, arg: str) -> str:
    """Deterministic, so a repeated enqueue of the same work is a no-op while it is queued."""
    return f"{job}:{arg}"
