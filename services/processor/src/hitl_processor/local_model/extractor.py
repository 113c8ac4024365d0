"""The ``local`` provider for `extract` workflows: fields out of text, learned from reviews.

For each field, candidates are found by the field's type in the output schema (numbers,
dates, e-mail addresses, enum values, the schema's ``pattern``, or the value after a
"Label:" on a line). Each candidate is described by the words just before it on its line
("Total due:", "Invoice no.") and its position. A per-field naive-Bayes model learns, from
every reviewed item, which of those context words precede the right value and which precede
the wrong ones; the field's name and description give the words a small head start, so the
model has a guess before the first review. A field's confidence is the share of the
candidates' probability on the chosen one, shrunk by how few items taught it.

Serialised form: JSON (counts only), prefixed by a magic string.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from hitl_shared.workflows.tasks import normalise

MODEL_NAME = "local-context-extract-v1"
MAGIC = b"HITL-EX1"
CONTEXT_WORDS = 4
PRIOR_WEIGHT = 2.0  # pseudo-counts for words of the field's name and description
SHRINK = 5.0  # confidence *= n / (n + SHRINK) over the items that taught the field

_WORD = re.compile(r"[a-z0-9]+")
_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d{1,3}(?:[,\s]\d{3})+|\d+)(?:\.\d+)?(?![\w])")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_MONTHS = {
    m: i + 1
    for i, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ]
    )
    for m in names
}
_MONTH = r"(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"  # noqa: E501
_DATES = [
    (re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b"), ("y", "m", "d")),
    (re.compile(r"\b(\d{1,2})[./](\d{1,2})[./](\d{4})\b"), ("d", "m", "y")),
    (re.compile(rf"\b(\d{{1,2}})\s+{_MONTH}\.?,?\s+(\d{{4}})\b", re.I), ("d", "M", "y")),
    (re.compile(rf"\b{_MONTH}\.?\s+(\d{{1,2}}),?\s+(\d{{4}})\b", re.I), ("M", "d", "y")),
]
_LABELLED = re.compile(r"^\s*([^:\n]{1,40}):[ \t]*(\S[^\n]{0,200}?)\s*$", re.M)


@dataclass
class Candidate:
    value: Any
    start: int
    context: list[str]


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _context(text: str, start: int) -> list[str]:
    line_start = text.rfind("\n", 0, start) + 1
    before = _words(text[line_start:start])[-CONTEXT_WORDS:]
    if not before:  # the label may be on the line above ("Total\n 118.00")
        prev_start = text.rfind("\n", 0, max(line_start - 1, 0)) + 1
        before = ["^", *_words(text[prev_start:line_start])[-CONTEXT_WORDS:]]
    return before


def candidates(text: str, spec: dict[str, Any]) -> list[Candidate]:
    kind = spec.get("type")
    out: list[Candidate] = []
    seen: set[tuple[int, str]] = set()

    def add(value: Any, start: int) -> None:
        key = (start, str(value))
        if key not in seen:
            seen.add(key)
            out.append(Candidate(value, start, _context(text, start)))

    if kind in ("number", "integer"):
        for m in _NUMBER.finditer(text):
            raw = re.sub(r"[,\s]", "", m.group(0))
            try:
                number = float(raw)
            except ValueError:
                continue
            if kind == "integer":
                if not number.is_integer():
                    continue
                add(int(number), m.start())
            else:
                add(number, m.start())
        return out
    if kind == "boolean":
        return out
    if spec.get("enum"):
        lowered = text.lower()
        for option in spec["enum"]:
            i = lowered.find(str(option).lower())
            if i >= 0:
                add(option, i)
        return out
    fmt = spec.get("format")
    if fmt == "date":
        for pattern, order in _DATES:
            for m in pattern.finditer(text):
                parts = dict(zip(order, m.groups(), strict=True))
                month = int(parts["m"]) if "m" in parts else _MONTHS.get(parts["M"].lower()[:4])
                if month is None and "M" in parts:
                    month = _MONTHS.get(parts["M"].lower()[:3])
                try:
                    value = date(int(parts["y"]), int(month or 0), int(parts["d"]))
                except ValueError:
                    continue
                add(value.isoformat(), m.start())
        return out
    if fmt == "email":
        for m in _EMAIL.finditer(text):
            add(m.group(0), m.start())
        return out
    if spec.get("pattern"):
        compiled: re.Pattern[str] | None
        try:
            compiled = re.compile(str(spec["pattern"]).lstrip("^").rstrip("$"))
        except re.error:
            compiled = None
        if compiled is not None:
            for m in compiled.finditer(text):
                if m.group(0).strip():
                    add(m.group(0).strip(), m.start())
            return out
    for m in _LABELLED.finditer(text):
        add(m.group(2).strip(), m.start(2))
    # Whole short lines too (a letterhead's company name has no label); the line's position
    # is part of its context, so "the first line" can be learnt.
    start = 0
    for number, line in enumerate(text.split("\n")):
        stripped = line.strip()
        if 0 < len(stripped) <= 80 and ":" not in stripped:
            offset = start + line.index(stripped)
            cand = Candidate(stripped, offset, [f"#line{min(number, 3)}"])
            if (offset, stripped) not in seen:
                seen.add((offset, stripped))
                out.append(cand)
        start += len(line) + 1
    return out


@dataclass
class FieldModel:
    """Naive-Bayes counts of context words before right and wrong candidates."""

    good: Counter[str] = field(default_factory=Counter)
    bad: Counter[str] = field(default_factory=Counter)
    taught: int = 0  # items where the right value was among the candidates
    absent: int = 0  # items where the reviewer left the field empty

    def score(self, cand: Candidate, prior: set[str]) -> float:
        total_good = sum(self.good.values()) + 1.0
        total_bad = sum(self.bad.values()) + 1.0
        s = 0.0
        for w in set(cand.context):
            g = self.good.get(w, 0) + (PRIOR_WEIGHT if w in prior else 0.0) + 0.5
            b = self.bad.get(w, 0) + 0.5
            s += math.log(g / total_good) - math.log(b / total_bad)
        return s


def _prior_words(name: str, spec: dict[str, Any]) -> set[str]:
    words = set(_words(name.replace("_", " ")))
    words |= set(_words(str(spec.get("title") or "")))
    words |= {w for w in _words(str(spec.get("description") or "")) if len(w) > 3}
    return words


class FieldExtractor:
    model_name = MODEL_NAME

    def __init__(self, schema: dict[str, Any], fields: dict[str, FieldModel] | None = None):
        self.schema = schema
        self.properties: dict[str, dict[str, Any]] = dict(schema.get("properties") or {})
        self.fields = fields or {name: FieldModel() for name in self.properties}
        self.n_examples = 0

    @classmethod
    def train(
        cls, schema: dict[str, Any], examples: list[tuple[str, dict[str, Any]]]
    ) -> FieldExtractor:
        model = cls(schema)
        model.n_examples = len(examples)
        for text, answer in examples:
            for name, spec in model.properties.items():
                fm = model.fields[name]
                truth = answer.get(name)
                if truth is None:
                    fm.absent += 1
                    continue
                want = normalise(truth)
                cands = candidates(text, spec)
                right = [c for c in cands if normalise(c.value) == want]
                if not right:
                    continue
                fm.taught += 1
                for c in cands:
                    target = fm.good if c is right[0] else fm.bad
                    target.update(set(c.context))
        return model

    def extract(self, text: str) -> tuple[dict[str, Any], dict[str, float]]:
        values: dict[str, Any] = {}
        confidence: dict[str, float] = {}
        for name, spec in self.properties.items():
            fm = self.fields.get(name) or FieldModel()
            cands = candidates(text, spec)
            seen = fm.taught + fm.absent
            if not cands:
                values[name] = None
                # "Nothing here" is right as often as reviewers left the field empty.
                confidence[name] = round((fm.absent + 0.1) / (seen + 1.0), 4)
                continue
            prior = _prior_words(name, spec)
            scores = [fm.score(c, prior) for c in cands]
            top = max(scores)
            exp = [math.exp(s - top) for s in scores]
            best = scores.index(top)
            # The same value found twice is one answer, not two rivals.
            chosen = normalise(cands[best].value)
            same = sum(e for c, e in zip(cands, exp, strict=True) if normalise(c.value) == chosen)
            share = same / sum(exp)
            present = (fm.taught + 1.0) / (seen + 2.0)
            values[name] = cands[best].value
            confidence[name] = round(share * present * fm.taught / (fm.taught + SHRINK), 4)
        return values, confidence

    def to_bytes(self) -> bytes:
        data = {
            "schema": self.schema,
            "n_examples": self.n_examples,
            "fields": {
                name: {
                    "good": dict(fm.good),
                    "bad": dict(fm.bad),
                    "taught": fm.taught,
                    "absent": fm.absent,
                }
                for name, fm in self.fields.items()
            },
        }
        return MAGIC + json.dumps(data, sort_keys=True).encode("utf-8")

    @classmethod
    def from_bytes(cls, blob: bytes) -> FieldExtractor:
        if not blob.startswith(MAGIC):
            raise ValueError("not a serialised field extractor")
        data = json.loads(blob[len(MAGIC) :].decode("utf-8"))
        fields = {
            name: FieldModel(Counter(f["good"]), Counter(f["bad"]), f["taught"], f["absent"])
            for name, f in data["fields"].items()
        }
        model = cls(data["schema"], fields)
        model.n_examples = int(data["n_examples"])
        return model
