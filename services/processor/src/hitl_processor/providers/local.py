"""The local provider: no network, no key. It learns from every human decision on the workflow."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from hitl_processor.local_model import TextClassifier
from hitl_processor.providers.base import AIOutcome
from hitl_processor.text import item_text
from hitl_shared.db.models import FeedbackRecord, Item, ModelSnapshot
from hitl_shared.runtime import Runtime
from hitl_shared.work import Work
from hitl_shared.workflows.config import WorkflowConfig

RECHECK_SECONDS = 5.0
MAX_TRAINING_EXAMPLES = 20_000


@dataclass
class LoadedModel:
    snapshot_id: uuid.UUID | None
    classifier: TextClassifier
    checked_at: float


def _needs_retrain(trained: int, available: int) -> bool:
    # Retrain early while examples are scarce (each one matters), then in ~10% steps.
    return available - trained >= max(5, trained // 10)


async def training_examples(
    session: AsyncSession, workflow_id: Any, config: WorkflowConfig
) -> tuple[list[str], list[str]]:
    texts = [ex.text for ex in config.examples]
    labels = [ex.label for ex in config.examples]
    known = set(config.label_names)
    rows = (
        await session.execute(
            sa.select(Item.input, FeedbackRecord.final_label)
            .join(Item, Item.id == FeedbackRecord.item_id)
            .where(
                FeedbackRecord.workflow_id == workflow_id,
                FeedbackRecord.final_label.is_not(None),
            )
            .order_by(FeedbackRecord.created_at.desc())
            .limit(MAX_TRAINING_EXAMPLES)
        )
    ).all()
    for data, label in rows:
        if label in known:
            texts.append(item_text(config, data))
            labels.append(label)
    return texts, labels


async def available_examples(
    session: AsyncSession, workflow_id: Any, config: WorkflowConfig
) -> int:
    n = await session.scalar(
        sa.select(sa.func.count())
        .select_from(FeedbackRecord)
        .where(
            FeedbackRecord.workflow_id == workflow_id,
            FeedbackRecord.final_label.in_(config.label_names),
        )
    )
    return len(config.examples) + int(n or 0)


class LocalProvider:
    name = "local"

    async def model_for(
        self, session: AsyncSession, runtime: Runtime, workflow_id: Any, config: WorkflowConfig
    ) -> TextClassifier:
        cache: dict[Any, LoadedModel] = runtime.state.setdefault("processor.local_models", {})
        loaded = cache.get(workflow_id)
        now = time.monotonic()
        if (
            loaded is not None
            and now - loaded.checked_at < RECHECK_SECONDS
            and loaded.classifier.labels == config.label_names
        ):
            return loaded.classifier
        available = await available_examples(session, workflow_id, config)
        latest = (
            await session.execute(
                sa.select(ModelSnapshot)
                .where(
                    ModelSnapshot.workflow_id == workflow_id, ModelSnapshot.provider == self.name
                )
                .order_by(ModelSnapshot.created_at.desc())
                .limit(1)
            )
        ).scalar_one_or_none()
        if latest is not None and not _needs_retrain(latest.examples, available):
            if loaded is None or loaded.snapshot_id != latest.id:
                classifier = await asyncio.to_thread(TextClassifier.from_bytes, latest.blob)
                loaded = LoadedModel(latest.id, classifier, now)
            if loaded.classifier.labels == config.label_names:
                loaded.checked_at = now
                cache[workflow_id] = loaded
                return loaded.classifier
        texts, labels = await training_examples(session, workflow_id, config)
        descriptions = {label.name: label.description for label in config.labels}
        classifier = await asyncio.to_thread(
            TextClassifier.train, texts, labels, config.label_names, descriptions
        )
        snapshot = ModelSnapshot(
            workflow_id=workflow_id,
            provider=self.name,
            examples=len(texts),
            blob=classifier.to_bytes(),
        )
        session.add(snapshot)
        await session.flush()
        cache[workflow_id] = LoadedModel(snapshot.id, classifier, now)
        return classifier

    async def run(
        self, work: Work, runtime: Runtime, workflow_id: Any, config: WorkflowConfig, text: str
    ) -> AIOutcome:
        start = time.perf_counter()
        classifier = await self.model_for(work.session, runtime, workflow_id, config)
        probs = classifier.predict_proba([text])[0]
        order = np.argsort(-probs)
        best = int(order[0])
        label = classifier.labels[best]
        alternatives = {
            classifier.labels[int(i)]: round(float(probs[int(i)]), 4) for i in order[:3]
        }
        confidence = float(probs[best])
        return AIOutcome(
            output={"label": label, "scores": alternatives},
            raw_confidence=confidence,
            confidence=confidence,
            provider=self.name,
            model=f"{classifier.model_name} ({classifier.n_examples} examples)",
            prompt_version="",
            latency_ms=(time.perf_counter() - start) * 1000,
        )
