"""The ``local`` provider's multi-label classifier: which of the labels apply to a text.

One calibrated yes/no ``TextClassifier`` per label (one-vs-rest), all trained on the same
reviewed items and sharing their sentence embeddings, so the encoder runs once per text.
A label whose yes/no answer has always been the same (never applied yet, or applied every
time) gets no model: its probability is the rule of succession over the reviews,
``(applied + 0.5) / (n + 1)``, which says "rare" without claiming "never".

The answer is every label with P(yes) > 0.5 (the most likely one if none reaches it: an
item carries at least one label). Its confidence is the chance that every one of the
label decisions is right, taking them as independent: the product over the labels of
max(P(yes), P(no)). So ten labels each 97% sure make an answer 74% sure, which is what a
reviewer checking all ten decisions should expect. Each label's own P(yes) goes into the
output, so the review page can point at the doubtful ones.

Serialised form: magic, then a compressed ``.npz`` (no pickle) with the per-label models'
bytes and the priors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from hitl_processor.local_model.classifier import TextClassifier, _npz_bytes, _npz_load
from hitl_processor.local_model.encoder import get_encoder

MODEL_NAME = "local-minilm-ovr-v1"
FORMAT_MAGIC = b"HITL-LS1"
NO, YES = "no", "yes"


@dataclass
class LabelVerdict:
    labels: list[str]
    probabilities: dict[str, float]  # P(label applies), per label
    confidence: float  # P(every label decision is right)


class LabelSetClassifier:
    def __init__(
        self,
        labels: list[str],
        models: dict[str, TextClassifier],
        priors: dict[str, float],
        n_examples: int,
        model_name: str = MODEL_NAME,
    ) -> None:
        self.labels = list(labels)
        self.models = models
        self.priors = priors
        self.n_examples = n_examples
        self.model_name = model_name

    @classmethod
    def train(
        cls, texts: list[str], label_sets: list[list[str]], labels: list[str]
    ) -> LabelSetClassifier:
        if len(texts) != len(label_sets):
            raise ValueError(f"{len(texts)} texts but {len(label_sets)} label sets")
        n = len(texts)
        models: dict[str, TextClassifier] = {}
        priors: dict[str, float] = {}
        embeddings: np.ndarray | None = None
        for label in labels:
            answers = [YES if label in chosen else NO for chosen in label_sets]
            applied = answers.count(YES)
            if applied in (0, n):
                priors[label] = (applied + 0.5) / (n + 1)
                continue
            if embeddings is None:
                embeddings = get_encoder().encode(texts).astype(np.float64)
            models[label] = TextClassifier.train(texts, answers, [NO, YES], embeddings=embeddings)
        return cls(labels, models, priors, n)

    def predict(self, texts: list[str]) -> list[LabelVerdict]:
        if not texts:
            return []
        p_yes = np.zeros((len(texts), len(self.labels)))
        embeddings = get_encoder().encode(texts) if self.models else None
        for j, label in enumerate(self.labels):
            model = self.models.get(label)
            if model is None:
                p_yes[:, j] = self.priors.get(label, 0.5)
            else:
                p_yes[:, j] = model.predict_proba(texts, embeddings)[:, 1]
        out = []
        for row in p_yes:
            chosen = row > 0.5
            if not chosen.any():
                chosen[int(np.argmax(row))] = True
            right = np.where(chosen, row, 1.0 - row)
            out.append(
                LabelVerdict(
                    labels=[label for label, c in zip(self.labels, chosen, strict=True) if c],
                    probabilities={
                        label: round(float(p), 4) for label, p in zip(self.labels, row, strict=True)
                    },
                    confidence=float(np.prod(right)),
                )
            )
        return out

    def to_bytes(self) -> bytes:
        meta = {
            "format": 1,
            "model_name": self.model_name,
            "labels": self.labels,
            "priors": self.priors,
            "n_examples": self.n_examples,
            "models": list(self.models),
        }
        arrays = {"meta": np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)}
        for i, model in enumerate(self.models.values()):
            arrays[f"model{i}"] = np.frombuffer(model.to_bytes(), dtype=np.uint8)
        return FORMAT_MAGIC + _npz_bytes(arrays)

    @classmethod
    def from_bytes(cls, data: bytes) -> LabelSetClassifier:
        arrays, meta = _npz_load(data, FORMAT_MAGIC, "LabelSetClassifier")
        models = {
            label: TextClassifier.from_bytes(arrays[f"model{i}"].tobytes())
            for i, label in enumerate(meta["models"])
        }
        return cls(
            list(meta["labels"]),
            models,
            {k: float(v) for k, v in meta["priors"].items()},
            int(meta["n_examples"]),
            str(meta["model_name"]),
        )

    def __repr__(self) -> str:
        return (
            f"LabelSetClassifier({self.model_name}, labels={len(self.labels)}, "
            f"models={len(self.models)}, n_examples={self.n_examples})"
        )
