"""The item lifecycle as one explicit state machine, and the other domain vocabularies."""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol


class ItemStatus(StrEnum):
    RECEIVED = "received"  # accepted by ingest, waiting for the AI
    PROCESSED = "processed"  # AI finished, waiting for routing
    IN_REVIEW = "in_review"  # waiting for a human
    COMPLETED = "completed"  # final decision made
    CANCELLED = "cancelled"


TRANSITIONS: dict[ItemStatus, frozenset[ItemStatus]] = {
    ItemStatus.RECEIVED: frozenset({ItemStatus.PROCESSED, ItemStatus.CANCELLED}),
    ItemStatus.PROCESSED: frozenset(
        {ItemStatus.IN_REVIEW, ItemStatus.COMPLETED, ItemStatus.CANCELLED}
    ),
    ItemStatus.IN_REVIEW: frozenset({ItemStatus.COMPLETED, ItemStatus.CANCELLED}),
    ItemStatus.COMPLETED: frozenset(),
    ItemStatus.CANCELLED: frozenset(),
}

# What integrations see: internal steps before a human is involved are all "pending".
PUBLIC_STATUS: dict[ItemStatus, str] = {
    ItemStatus.RECEIVED: "pending",
    ItemStatus.PROCESSED: "pending",
    ItemStatus.IN_REVIEW: "in_review",
    ItemStatus.COMPLETED: "completed",
    ItemStatus.CANCELLED: "cancelled",
}


class IllegalTransition(Exception):
    def __init__(self, current: str, target: str) -> None:
        super().__init__(f"an item cannot go from {current!r} to {target!r}")
        self.current = current
        self.target = target


class HasStatus(Protocol):
    status: str


def can_transition(current: str, target: str) -> bool:
    return ItemStatus(target) in TRANSITIONS[ItemStatus(current)]


def transition(item: HasStatus, target: ItemStatus) -> None:
    """Move ``item`` to ``target`` or raise ``IllegalTransition``."""
    if not can_transition(item.status, target):
        raise IllegalTransition(item.status, target)
    item.status = target.value


class ReviewLevel(StrEnum):
    AUTO = "auto"  # approved by the system (only where a workflow allows it)
    BATCH = "batch"  # low-confidence declines, approved as a group on the batch page
    LIGHT = "light"
    FULL = "full"
    MANUAL = "manual"
    ESCALATED = "escalated"


class TaskStatus(StrEnum):
    OPEN = "open"
    CLAIMED = "claimed"
    DONE = "done"
    CANCELLED = "cancelled"


class Outcome(StrEnum):
    APPROVED = "approved"
    EDITED = "edited"
    REJECTED = "rejected"


class Role(StrEnum):
    REVIEWER = "reviewer"
    LEAD = "lead"
    ADMIN = "admin"
