"""The calibration map the processor applies to raw AI confidence (fitted by the feedback
service from human decisions), and where the current one is stored."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from hitl_shared.db.models import ModelSnapshot

# Calibration maps are versioned artefacts of a workflow, kept beside its trained models.
CALIBRATION_PROVIDER = "calibration"


@dataclass(frozen=True)
class CalibrationMap:
    method: str  # identity | platt | isotonic
    params: dict[str, Any]
    items: int
    # The model whose confidences it was fitted on; None fits any (identity, or tests).
    model: str | None = None

    def applies_to(self, model: str) -> bool:
        return self.model is None or model_family(self.model) == model_family(model)

    def apply(self, raw: float | np.ndarray) -> np.ndarray:
        p = np.clip(np.asarray(raw, dtype=float), 1e-6, 1 - 1e-6)
        if self.method == "platt":
            z = np.clip(self.params["a"] * logit(p) + self.params["b"], -40, 40)
            return 1.0 / (1.0 + np.exp(-z))
        if self.method == "isotonic":
            return np.interp(p, self.params["x"], self.params["y"])
        return p

    def apply_one(self, raw: float) -> float:
        return float(self.apply(raw))

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "params": self.params,
            "items": self.items,
            "model": self.model,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> CalibrationMap:
        if not data:
            return IDENTITY
        return cls(
            data["method"], data.get("params", {}), int(data.get("items", 0)), data.get("model")
        )


IDENTITY = CalibrationMap("identity", {}, 0)


def model_family(model: str) -> str:
    """The model a calibration map belongs to.

    A provider notes a retrained model's training state in brackets after its name
    ("local-minilm-lr-v1 (512 examples)"). Retrains of one model keep its name and fit their
    own confidence on held-out folds, so their confidences share one map and one decision
    history; a different name (another LLM, a new model version) is a different model.
    """
    return model.split(" (", 1)[0].strip()


def logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


async def current_calibration(session: AsyncSession, workflow_id: uuid.UUID) -> CalibrationMap:
    row = (
        await session.execute(
            sa.select(ModelSnapshot.blob)
            .where(
                ModelSnapshot.workflow_id == workflow_id,
                ModelSnapshot.provider == CALIBRATION_PROVIDER,
            )
            .order_by(ModelSnapshot.created_at.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    return CalibrationMap.from_json(json.loads(row)) if row else IDENTITY


def calibration_snapshot(workflow_id: uuid.UUID, cmap: CalibrationMap) -> ModelSnapshot:
    return ModelSnapshot(
        workflow_id=workflow_id,
        provider=CALIBRATION_PROVIDER,
        examples=cmap.items,
        blob=json.dumps(cmap.to_json()).encode(),
    )
