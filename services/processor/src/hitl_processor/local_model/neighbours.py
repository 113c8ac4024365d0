"""The ``local`` provider for `score` and `draft` workflows: answers from the reviewed items
most like this one.

Both keep every reviewed item's sentence embedding (``encoder.py``) with its final answer.
A new item's answer comes from its nearest neighbours; its confidence is the evidence for it:
how much of the neighbours' (similarity-weighted) vote agrees with the answer, shrunk toward
chance by one pseudo-neighbour, so a handful of examples never gives a confident answer and a
new item unlike anything reviewed gets a low one. The feedback loop calibrates it further.

Serialised form: compressed ``.npz`` (no pickle).
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import lru_cache
from typing import Any

import numpy as np

from hitl_processor.local_model.classifier import _npz_bytes
from hitl_processor.local_model.encoder import ENCODER_NAME, get_encoder

SCORER_NAME = "local-neighbours-score-v1"
DRAFTER_NAME = "local-neighbours-draft-v1"
NEIGHBOURS = 7
SIMILARITY_POWER = 4.0  # weight = similarity**4: 0.9 → 0.66, 0.7 → 0.24, 0.5 → 0.06
SAME_DRAFT = 0.9  # word-level similarity above which two drafts count as the same reply
MAGIC = b"HITL-NB1"


def _weights(similarities: np.ndarray) -> np.ndarray:
    return np.asarray(np.maximum(similarities, 0.0) ** SIMILARITY_POWER)


def _encode(texts: Sequence[str]) -> np.ndarray:
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    return np.asarray(get_encoder().encode(list(texts)), dtype=np.float32)


@lru_cache(maxsize=64)
def _encode_fixed(texts: tuple[str, ...]) -> np.ndarray:
    """Embeddings of a workflow's criteria or knowledge snippets (they rarely change)."""
    return _encode(texts)


@dataclass
class Neighbour:
    index: int
    similarity: float


class NeighbourModel:
    """Embeddings of reviewed items and their answers (a number or a text)."""

    kind = "neighbours"

    def __init__(
        self,
        name: str,
        embeddings: np.ndarray,
        values: list[float] | list[str],
        snippets: list[str] | None = None,
    ) -> None:
        self.name = name
        self.embeddings = embeddings.astype(np.float32)
        self.values: list[Any] = list(values)
        self.snippets = list(snippets or [])  # a short piece of each example's input

    @property
    def n_examples(self) -> int:
        return len(self.values)

    @property
    def model_name(self) -> str:
        return self.name

    def neighbours(self, embedding: np.ndarray, k: int = NEIGHBOURS) -> list[Neighbour]:
        if self.n_examples == 0:
            return []
        sims = self.embeddings @ embedding.astype(np.float32)
        top = np.argsort(-sims)[:k]
        return [Neighbour(int(i), float(sims[i])) for i in top]

    def to_bytes(self) -> bytes:
        meta = {
            "name": self.name,
            "encoder": ENCODER_NAME,
            "values": self.values,
            "snippets": self.snippets,
        }
        arrays: dict[str, np.ndarray] = {
            "meta": np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8),
            "embeddings": self.embeddings.astype(np.float16),
        }
        return MAGIC + _npz_bytes(arrays)

    @classmethod
    def from_bytes(cls, data: bytes) -> NeighbourModel:
        if not data.startswith(MAGIC):
            raise ValueError("not a serialised neighbour model")
        with np.load(io.BytesIO(data[len(MAGIC) :]), allow_pickle=False) as npz:
            meta = json.loads(npz["meta"].tobytes().decode("utf-8"))
            embeddings = npz["embeddings"].astype(np.float32)
        if meta.get("encoder") != ENCODER_NAME:
            raise ValueError(f"model was built on encoder {meta.get('encoder')!r}")
        return cls(meta["name"], embeddings, meta["values"], meta.get("snippets"))


def _snippet(text: str, limit: int = 80) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"


def build(name: str, texts: list[str], values: list[float] | list[str]) -> NeighbourModel:
    return NeighbourModel(name, _encode(texts), values, [_snippet(t) for t in texts])


@dataclass
class ScoreAnswer:
    score: float
    confidence: float
    rationale: str


def predict_score(
    model: NeighbourModel,
    text: str,
    scale_min: float,
    scale_max: float,
    step: float,
    tolerance: float,
    criteria: list[tuple[str, str]] | None = None,
) -> ScoreAnswer:
    """The similarity-weighted median of the nearest reviewed scores."""
    points = max(1, round((scale_max - scale_min) / step) + 1)
    chance = min(1.0, (2 * round(tolerance / step) + 1) / points)
    embedding = _encode([text])[0]
    near = model.neighbours(embedding)
    if not near:
        middle = scale_min + round((scale_max - scale_min) / 2 / step) * step
        return ScoreAnswer(
            middle,
            chance,
            "No reviewed items yet: this is the middle of the scale, not an assessment.",
        )
    scores = np.array([float(model.values[n.index]) for n in near], dtype=float)
    weights = _weights(np.array([n.similarity for n in near]))
    order = np.argsort(scores)
    cumulative = np.cumsum(weights[order])
    if cumulative[-1] <= 0:
        median = float(np.median(scores))
    else:
        median = float(scores[order][np.searchsorted(cumulative, cumulative[-1] / 2)])
    score = scale_min + round((min(max(median, scale_min), scale_max) - scale_min) / step) * step
    agree = float(weights[np.abs(scores - score) <= tolerance + 1e-9].sum())
    confidence = (agree + chance) / (float(weights.sum()) + 1.0)
    shown = ", ".join(
        f"{_num(s)} ({n.similarity:.2f})" for s, n in zip(scores[:3], near[:3], strict=True)
    )
    rationale = f"The most similar reviewed items scored {shown} (similarity in brackets)."
    if criteria:
        crit_emb = _encode_fixed(tuple(f"{name}: {desc}" for name, desc in criteria))
        best = int(np.argmax(crit_emb @ embedding))
        rationale += f" Closest criterion: {criteria[best][0]}."
    return ScoreAnswer(score, float(min(max(confidence, 0.0), 1.0)), rationale)


@dataclass
class DraftAnswer:
    text: str
    confidence: float
    sources: list[dict[str, object]]


def predict_draft(
    model: NeighbourModel, text: str, knowledge: list[tuple[str, str]]
) -> DraftAnswer:
    """The approved reply of the most similar reviewed item, with how many close neighbours
    were answered the same way; the closest knowledge snippet is named as a source, or used
    as the starting point when nothing has been reviewed yet."""
    embedding = _encode([text])[0]
    sources: list[dict[str, object]] = []
    best_snippet: tuple[str, str, float] | None = None
    if knowledge:
        k_emb = _encode_fixed(tuple(f"{title}\n{body}" for title, body in knowledge))
        sims = k_emb @ embedding
        i = int(np.argmax(sims))
        best_snippet = (knowledge[i][0], knowledge[i][1], float(sims[i]))
    near = model.neighbours(embedding)
    if not near:
        if best_snippet is None:
            return DraftAnswer("", 0.0, [])
        title, body, sim = best_snippet
        sources.append({"kind": "knowledge", "title": title, "similarity": round(sim, 3)})
        # Only a starting point: nothing reviewed yet says this is how replies look.
        return DraftAnswer(body, min(0.2, max(sim, 0.0) * 0.2), sources)
    drafts = [str(model.values[n.index]) for n in near]
    weights = _weights(np.array([n.similarity for n in near]))
    chosen = drafts[0]
    words = chosen.split()
    same = np.array(
        [
            SequenceMatcher(None, words, d.split(), autojunk=False).ratio() >= SAME_DRAFT
            for d in drafts
        ]
    )
    confidence = float(weights[same].sum()) / (float(weights.sum()) + 1.0)
    sources.append(
        {
            "kind": "approved_reply",
            "title": model.snippets[near[0].index] if model.snippets else "a past item",
            "similarity": round(near[0].similarity, 3),
        }
    )
    if best_snippet is not None and best_snippet[2] >= 0.3:
        title, _body, sim = best_snippet
        sources.append({"kind": "knowledge", "title": title, "similarity": round(sim, 3)})
    return DraftAnswer(chosen, min(max(confidence, 0.0), 1.0), sources)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
