"""The local provider: no network, no key. It learns from every human decision on the workflow."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from hitl_processor.local_model import TextClassifier
from hitl_processor.local_model.extractor import FieldExtractor
from hitl_processor.local_model.labelset import LabelSetClassifier
from hitl_processor.local_model.neighbours import (
    DRAFTER_NAME,
    SCORER_NAME,
    NeighbourModel,
    build,
    predict_draft,
    predict_score,
)
from hitl_processor.providers.base import AIOutcome
from hitl_processor.text import item_text
from hitl_shared.db.models import FeedbackRecord, Item, ModelSnapshot
from hitl_shared.runtime import Runtime
from hitl_shared.work import Work
from hitl_shared.workflows.config import WorkflowConfig
from hitl_shared.workflows.tasks import example_answer, label_set, output_errors

RECHECK_SECONDS = 5.0
MAX_TRAINING_EXAMPLES = 20_000


Model = TextClassifier | LabelSetClassifier | FieldExtractor | NeighbourModel


@dataclass
class LoadedModel:
    snapshot_id: uuid.UUID | None
    model: Model
    signature: str
    checked_at: float


def _needs_retrain(trained: int, available: int) -> bool:
    # Retrain early while examples are scarce (each one matters), then in ~10% steps.
    return available - trained >= max(5, trained // 10)


def signature(config: WorkflowConfig) -> str:
    """What a trained model depends on besides its examples: retrain when it changes."""
    task = config.task_type
    if task == "classify":
        basis: object = [config.label_names, "multi"] if config.multi_label else config.label_names
    elif task == "score":
        basis = config.scale.model_dump() if config.scale else None
    elif task == "extract":
        basis = config.output_schema
    else:
        basis = "draft"
    digest = hashlib.sha256(json.dumps([task, basis], sort_keys=True).encode()).hexdigest()
    return f"{task}:{digest[:16]}"


async def training_examples(
    session: AsyncSession, workflow_id: Any, config: WorkflowConfig
) -> tuple[list[str], list[dict[str, Any]]]:
    """(item text, final answer) for the operator's examples and every reviewed item whose
    answer fits the workflow as it is now, most recent first."""
    texts: list[str] = []
    answers: list[dict[str, Any]] = []
    for ex in config.examples:
        example = example_answer(config, ex)
        if example is not None:
            texts.append(ex.text)
            answers.append(example)
    rows = (
        await session.execute(
            sa.select(Item.input, FeedbackRecord.final_answer, FeedbackRecord.final_label)
            .join(Item, Item.id == FeedbackRecord.item_id)
            .where(
                FeedbackRecord.workflow_id == workflow_id,
                sa.or_(
                    FeedbackRecord.final_answer.is_not(None),
                    FeedbackRecord.final_label.is_not(None),
                ),
            )
            .order_by(FeedbackRecord.created_at.desc())
            .limit(MAX_TRAINING_EXAMPLES)
        )
    ).all()
    for data, answer, label in rows:
        if not answer and config.task_type == "classify" and label and not config.multi_label:
            answer = {"label": label}  # recorded before answers were kept whole
        if not isinstance(answer, dict) or output_errors(config, answer):
            continue
        texts.append(item_text(config, data))
        answers.append(answer)
    return texts, answers


async def available_examples(
    session: AsyncSession, workflow_id: Any, config: WorkflowConfig
) -> int:
    n = await session.scalar(
        sa.select(sa.func.count())
        .select_from(FeedbackRecord)
        .where(
            FeedbackRecord.workflow_id == workflow_id,
            sa.or_(
                FeedbackRecord.final_answer.is_not(None), FeedbackRecord.final_label.is_not(None)
            ),
        )
    )
    return len(config.examples) + int(n or 0)


def train(config: WorkflowConfig, texts: list[str], answers: list[dict[str, Any]]) -> Model:
    task = config.task_type
    if task == "classify" and config.multi_label:
        return LabelSetClassifier.train(
            texts, [label_set(config, a) for a in answers], config.label_names
        )
    if task == "classify":
        descriptions = {label.name: label.description for label in config.labels}
        return TextClassifier.train(
            texts, [str(a["label"]) for a in answers], config.label_names, descriptions
        )
    if task == "score":
        return build(SCORER_NAME, texts, [float(a["score"]) for a in answers])
    if task == "extract":
        return FieldExtractor.train(
            config.output_schema or {},
            [(t, a["fields"]) for t, a in zip(texts, answers, strict=True)],
        )
    return build(DRAFTER_NAME, texts, [str(a["text"]) for a in answers])


def load(blob: bytes) -> Model:
    loaders = (
        TextClassifier.from_bytes,
        LabelSetClassifier.from_bytes,
        FieldExtractor.from_bytes,
        NeighbourModel.from_bytes,
    )
    for loader in loaders:
        try:
            return loader(blob)
        except ValueError:
            continue
    raise ValueError("unknown model format")


class LocalProvider:
    name = "local"

    async def model_for(
        self, session: AsyncSession, runtime: Runtime, workflow_id: Any, config: WorkflowConfig
    ) -> Model:
        cache: dict[Any, LoadedModel] = runtime.state.setdefault("processor.local_models", {})
        loaded = cache.get(workflow_id)
        now = time.monotonic()
        sig = signature(config)
        if (
            loaded is not None
            and now - loaded.checked_at < RECHECK_SECONDS
            and loaded.signature == sig
        ):
            return loaded.model
        available = await available_examples(session, workflow_id, config)
        latest = (
            await session.execute(
                sa.select(ModelSnapshot)
                .where(
                    ModelSnapshot.workflow_id == workflow_id,
                    ModelSnapshot.provider == self.name,
                    ModelSnapshot.signature == sig,
                )
                .order_by(ModelSnapshot.created_at.desc())
                .limit(1)
            )
        ).scalar_one_or_none()
        if latest is not None and not _needs_retrain(latest.examples, available):
            if loaded is None or loaded.snapshot_id != latest.id:
                model = await asyncio.to_thread(load, latest.blob)
                loaded = LoadedModel(latest.id, model, sig, now)
            loaded.checked_at = now
            cache[workflow_id] = loaded
            return loaded.model
        texts, answers = await training_examples(session, workflow_id, config)
        model = await asyncio.to_thread(train, config, texts, answers)
        snapshot = ModelSnapshot(
            workflow_id=workflow_id,
            provider=self.name,
            signature=sig,
            examples=len(texts),
            blob=model.to_bytes(),
        )
        session.add(snapshot)
        await session.flush()
        cache[workflow_id] = LoadedModel(snapshot.id, model, sig, now)
        return model

    async def run(
        self, work: Work, runtime: Runtime, workflow_id: Any, config: WorkflowConfig, text: str
    ) -> AIOutcome:
        start = time.perf_counter()
        model = await self.model_for(work.session, runtime, workflow_id, config)
        output, confidence = await asyncio.to_thread(_answer, model, config, text)
        return AIOutcome(
            output=output,
            raw_confidence=confidence,
            confidence=confidence,
            provider=self.name,
            model=f"{model.model_name} ({model.n_examples} examples)",
            prompt_version="",
            latency_ms=(time.perf_counter() - start) * 1000,
        )


def _answer(model: Model, config: WorkflowConfig, text: str) -> tuple[dict[str, Any], float]:
    if isinstance(model, TextClassifier):
        probs = model.predict_proba([text])[0]
        order = np.argsort(-probs)
        best = int(order[0])
        alternatives = {model.labels[int(i)]: round(float(probs[int(i)]), 4) for i in order[:3]}
        return {"label": model.labels[best], "scores": alternatives}, float(probs[best])
    if isinstance(model, LabelSetClassifier):
        verdict = model.predict([text])[0]
        return {
            "labels": verdict.labels,
            "label_probability": verdict.probabilities,
        }, verdict.confidence
    if isinstance(model, FieldExtractor):
        fields, field_confidence = model.extract(text)
        lowest = min(field_confidence.values()) if field_confidence else 0.0
        kept = {k: v for k, v in fields.items() if v is not None}
        return {"fields": kept, "field_confidence": field_confidence}, lowest
    if model.name == SCORER_NAME:
        scale = config.scale
        assert scale is not None
        answer = predict_score(
            model,
            text,
            scale.min,
            scale.max,
            scale.step,
            scale.tolerance,
            [(c.name, c.description) for c in config.criteria],
        )
        score = scale.snap(answer.score)
        value: float | int = int(score) if float(score).is_integer() else score
        return {"score": value, "rationale": answer.rationale}, answer.confidence
    draft = predict_draft(model, text, [(k.title, k.text) for k in config.knowledge])
    return {"text": draft.text, "sources": draft.sources}, draft.confidence
