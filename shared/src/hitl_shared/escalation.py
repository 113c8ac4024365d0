"""Escalation to a lead, shared by the review UI (a reviewer escalates) and the router's
SLA sweeper (a task waited too long). An escalated task waits in the `escalated` queue,
which only leads and admins can claim, with its own deadline."""

from __future__ import annotations

from datetime import datetime

from hitl_shared.db.models import ReviewTask
from hitl_shared.lifecycle import ReviewLevel, TaskStatus
from hitl_shared.workflows.config import SLA

SLA_ESCALATOR = "sla"


def due_at(sla: SLA, level: str, start: datetime) -> datetime | None:
    span = sla.for_level(level)
    return start + span if span is not None else None


def escalate(task: ReviewTask, by: str, reason: str, at: datetime, sla: SLA) -> None:
    """Move ``task`` to the lead queue, unclaimed. The caller checks it may do so."""
    task.escalated_from = task.level
    task.escalated_by = by[:200]
    task.escalation_reason = reason[:4000]
    task.escalated_at = at
    task.level = ReviewLevel.ESCALATED.value
    task.status = TaskStatus.OPEN.value
    task.claimed_by = None
    task.claimed_at = None
    task.lock_expires_at = None
    task.due_at = due_at(sla, ReviewLevel.ESCALATED.value, at)
