"""Prometheus metrics. Every service exposes them at /metrics; workers on a small HTTP port."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

ITEMS_INGESTED = Counter(
    "hitl_items_ingested_total", "Items accepted by the ingest API", ["workflow"]
)
INTAKE_BATCH = Histogram(
    "hitl_ingest_batch_items",
    "Items stored per group commit by the ingest service",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
INGEST_REJECTED = Counter(
    "hitl_ingest_rejected_total", "Ingest requests refused, by HTTP status", ["status"]
)
AI_RESULTS = Counter(
    "hitl_ai_results_total", "Items processed by the AI", ["workflow", "provider", "result"]
)
AI_CONFIDENCE = Histogram(
    "hitl_ai_confidence",
    "Calibrated confidence of AI results",
    ["workflow"],
    buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 1.0),
)
AI_LATENCY = Histogram(
    "hitl_ai_latency_seconds", "Time the provider took per item", ["workflow", "provider"]
)
AI_TOKENS = Counter(
    "hitl_ai_tokens_total",
    "Tokens sent to and received from LLM providers",
    ["workflow", "provider", "direction"],
)
AI_COST = Counter(
    "hitl_ai_cost_usd_total",
    "Estimated LLM cost from the workflow's token prices",
    ["workflow", "provider"],
)
ITEMS_ROUTED = Counter(
    "hitl_items_routed_total", "Routing decisions by review level", ["workflow", "level"]
)
REVIEW_DECISIONS = Counter(
    "hitl_review_decisions_total",
    "Human decisions by level and outcome",
    ["workflow", "level", "outcome"],
)
REVIEW_ACTIVE_SECONDS = Histogram(
    "hitl_review_active_seconds",
    "Active, visible time a reviewer spent on one item",
    ["workflow", "level", "outcome"],
    buckets=(1, 2, 3, 5, 8, 13, 20, 30, 45, 60, 90, 120, 180, 300, 600),
)
REVIEW_SECONDS_PER_KCHAR = Histogram(
    "hitl_review_seconds_per_1k_chars",
    "Approval time per 1,000 characters to read; near zero means approving without reading",
    ["workflow", "level"],
    buckets=(0.5, 1, 2, 4, 8, 15, 30, 60, 120),
)
AI_AGREEMENT = Counter(
    "hitl_ai_human_agreement_total",
    "Human decisions on AI output: whether the AI was right",
    ["workflow", "level", "ai_correct"],
)
REVIEW_QUEUE_OPEN = Gauge(
    "hitl_review_queue_open", "Review tasks waiting for a human", ["workflow", "level"]
)
REVIEW_QUEUE_OLDEST = Gauge(
    "hitl_review_queue_oldest_seconds", "Age of the oldest open review task", ["workflow", "level"]
)
CALIBRATION_ECE = Gauge(
    "hitl_calibration_ece",
    "Expected calibration error of calibrated confidence on recent decisions (out of fold)",
    ["workflow"],
)
LIGHT_BAND_ACCURACY_LOW = Gauge(
    "hitl_light_band_accuracy_lower_bound",
    "95% lower bound of AI accuracy in the recommended light band",
    ["workflow"],
)
REVIEWER_INSTANT_SHARE = Gauge(
    "hitl_reviewer_instant_approval_share",
    "Share of a reviewer's approvals (last 30 days) made in under 2 seconds",
    ["reviewer"],
)
REVIEWER_INSTANT_STREAK = Gauge(
    "hitl_reviewer_longest_instant_streak",
    "Longest run of consecutive instant approvals by a reviewer (last 30 days)",
    ["reviewer"],
)
REVIEWER_FLAGGED = Gauge(
    "hitl_reviewer_theatre_flag",
    "1 while a review-theatre detector flags the reviewer",
    ["reviewer", "flag"],
)
ROUTING_AUDIT_SAMPLES = Counter(
    "hitl_routing_audit_samples_total",
    "Items drawn as a random audit sample into full review, by the band they came from",
    ["workflow", "band"],
)
ROUTING_SHADOW = Counter(
    "hitl_routing_shadow_total",
    "Items routed in shadow mode, by the level the policy would have chosen",
    ["workflow", "shadow_level"],
)
ROUTING_RULE_MATCHES = Counter(
    "hitl_routing_rule_matches_total", "Risk rules that matched an item", ["workflow", "rule"]
)
CANARIES_PLACED = Counter(
    "hitl_canaries_placed_total", "Known-wrong canary items placed in review queues", ["workflow"]
)
CANARY_RESULTS = Counter(
    "hitl_canary_results_total",
    "Canaries decided: caught means the reviewer did not approve the known-wrong answer",
    ["workflow", "caught"],
)
SLA_BREACHES = Counter(
    "hitl_sla_breaches_total",
    "Review tasks that passed their due time, by the level they were waiting at",
    ["workflow", "level"],
)
ESCALATIONS = Counter(
    "hitl_escalations_total",
    "Tasks escalated to a lead, by source (reviewer or sla)",
    ["workflow", "source"],
)
BATCH_DECISIONS = Counter(
    "hitl_batch_decisions_total",
    "Items decided on the batch review page, by action (approved or sent to review)",
    ["workflow", "action"],
)
JOB_RUNS = Counter("hitl_job_runs_total", "Jobs run", ["job", "result"])
JOB_SECONDS = Histogram("hitl_job_duration_seconds", "Job run time", ["job"])
ENQUEUE_FAILURES = Counter(
    "hitl_enqueue_failures_total", "Wake-up messages that could not be sent (sweeper repairs)"
)
SWEEP_REQUEUED = Counter(
    "hitl_sweeper_requeued_total", "Stuck work re-enqueued by a sweeper", ["job"]
)
WEBHOOK_DELIVERIES = Counter(
    "hitl_webhook_deliveries_total", "Webhook delivery attempts", ["result"]
)

__all__ = [
    "CONTENT_TYPE_LATEST",
    "REGISTRY",
    "generate_latest",
    "start_http_server",
]
