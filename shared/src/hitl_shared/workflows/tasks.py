"""What an answer looks like for each task type, and how two answers compare.

Every service speaks about answers through these functions, so a new task type is added
here once. An *answer* is what a reviewer approves and an integration receives:

- classify: ``{"label": "billing"}``; multi-label: ``{"labels": ["billing", "urgent"]}``
- score:    ``{"score": 72, "rationale": "..."}``
- extract:  ``{"fields": {"invoice_number": "INV-1", "total": 118.0, ...}}``
- draft:    ``{"text": "Dear ..."}``

The AI's output carries more (alternatives, per-field confidence, failed rules, sources);
``answer_from_output`` keeps the part that is the answer.
"""

from __future__ import annotations

import math
import re
from datetime import date
from difflib import SequenceMatcher
from typing import TYPE_CHECKING, Any

from jsonschema import Draft202012Validator, FormatChecker

if TYPE_CHECKING:
    from hitl_shared.workflows.config import Example, WorkflowConfig

_SPACES = re.compile(r"\s+")


def example_answer(config: WorkflowConfig, ex: Example) -> dict[str, Any] | None:
    """An operator's worked example as an answer (None when it gives none)."""
    if config.task_type != "classify":
        return ex.output
    if config.multi_label:
        if ex.labels is not None:
            return {"labels": list(ex.labels)}
        if ex.output is not None:
            return ex.output
        return {"labels": [ex.label]} if ex.label is not None else None
    return {"label": ex.label} if ex.label is not None else None


def label_set(config: WorkflowConfig, answer: dict[str, Any] | None) -> list[str]:
    """The labels of a classify answer, in the workflow's label order (one for single-label)."""
    if not answer:
        return []
    raw = answer.get("labels") if config.multi_label else [answer.get("label")]
    chosen = {v for v in raw if isinstance(v, str)} if isinstance(raw, list) else set()
    return [name for name in config.label_names if name in chosen]


def answer_from_output(config: WorkflowConfig, output: dict[str, Any] | None) -> dict[str, Any]:
    """The answer inside an AI output (empty when the AI produced none)."""
    out = output or {}
    task = config.task_type
    if task == "classify" and config.multi_label:
        labels = label_set(config, out)
        return {"labels": labels} if labels else {}
    if task == "classify":
        return {"label": out["label"]} if isinstance(out.get("label"), str) else {}
    if task == "score":
        score = out.get("score")
        if not _is_number(score):
            return {}
        answer: dict[str, Any] = {"score": score}
        if isinstance(out.get("rationale"), str):
            answer["rationale"] = out["rationale"]
        return answer
    if task == "extract":
        fields = out.get("fields")
        return {"fields": dict(fields)} if isinstance(fields, dict) else {}
    text = out.get("text")
    return {"text": text} if isinstance(text, str) and text.strip() else {}


def output_errors(config: WorkflowConfig, answer: dict[str, Any]) -> list[str]:
    """What is wrong with an answer, in words for the person who wrote it (empty: fine)."""
    task = config.task_type
    if not isinstance(answer, dict):
        return ["the answer must be an object"]
    if task == "classify" and config.multi_label:
        raw = answer.get("labels")
        if not isinstance(raw, list) or not raw:
            return [f"choose at least one of the labels: {', '.join(config.label_names)}"]
        unknown = [str(v) for v in raw if v not in config.label_names]
        if unknown:
            return [
                f"{', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not among the "
                f"labels: {', '.join(config.label_names)}"
            ]
        return []
    if task == "classify":
        label = answer.get("label")
        if label not in config.label_names:
            return [f"choose one of the labels: {', '.join(config.label_names)}"]
        return []
    if task == "score":
        assert config.scale is not None
        score = answer.get("score")
        if not _is_number(score):
            return ["the score must be a number"]
        s = config.scale
        if not s.min <= float(score) <= s.max:  # type: ignore[arg-type]
            return [f"the score must be between {_fmt(s.min)} and {_fmt(s.max)}"]
        return []
    if task == "extract":
        fields = answer.get("fields")
        if not isinstance(fields, dict):
            return ['the answer needs "fields", one value per field']
        return [f"{name}: {msg}" for name, msg in field_errors(config, fields).items()]
    text = answer.get("text")
    if not isinstance(text, str) or not text.strip():
        return ["the draft text must not be empty"]
    return []


def field_errors(config: WorkflowConfig, fields: dict[str, Any]) -> dict[str, str]:
    """Per field, what is wrong with its value against the workflow's output schema."""
    schema = config.output_schema or {}
    validator = Draft202012Validator(schema, format_checker=FormatChecker())
    problems: dict[str, str] = {}
    for error in validator.iter_errors(fields):
        if error.path:
            name = str(error.path[0])
        elif error.validator == "required":
            m = re.match(r"'([^']+)'", error.message)
            name = m.group(1) if m else "(fields)"
            problems.setdefault(name, "is required")
            continue
        elif error.validator == "additionalProperties":
            problems.setdefault("(fields)", error.message)
            continue
        else:
            name = "(fields)"
        problems.setdefault(name, _schema_message(error))
    return problems


def _schema_message(error: Any) -> str:
    v = error.validator
    if v == "format":
        return f"{error.instance!r} is not a valid {error.validator_value}"
    if v == "type":
        return f"{error.instance!r} is not a {error.validator_value}"
    if v == "enum":
        return "must be one of " + ", ".join(map(str, error.validator_value))
    if v == "pattern":
        return f"{error.instance!r} does not have the expected form"
    return str(error.message)


def same_answer(config: WorkflowConfig, ai: dict[str, Any], final: dict[str, Any]) -> bool:
    """Did the reviewer keep the AI's answer? (what makes the AI 'right' for the loop)"""
    task = config.task_type
    if not ai or not final:
        return False
    if task == "classify" and config.multi_label:
        return label_set(config, ai) == label_set(config, final)
    if task == "classify":
        return ai.get("label") == final.get("label")
    if task == "score":
        assert config.scale is not None
        if not (_is_number(ai.get("score")) and _is_number(final.get("score"))):
            return False
        return abs(float(ai["score"]) - float(final["score"])) <= config.scale.tolerance + 1e-9
    if task == "extract":
        a, f = ai.get("fields") or {}, final.get("fields") or {}
        return all(normalise(a.get(name)) == normalise(f.get(name)) for name in config.field_names)
    return _squash(ai.get("text")) == _squash(final.get("text"))


def changes(config: WorkflowConfig, ai: dict[str, Any], final: dict[str, Any]) -> dict[str, Any]:
    """What the reviewer changed, in the terms of the task type (for error patterns)."""
    task = config.task_type
    if not ai or not final:
        return {}
    if task == "classify" and config.multi_label:
        had, has = label_set(config, ai), label_set(config, final)
        added = [n for n in has if n not in had]
        removed = [n for n in had if n not in has]
        return {"labels": {"added": added, "removed": removed}} if added or removed else {}
    if task == "classify":
        if ai.get("label") == final.get("label"):
            return {}
        return {"label": {"from": ai.get("label"), "to": final.get("label")}}
    if task == "score":
        if not (_is_number(ai.get("score")) and _is_number(final.get("score"))):
            return {}
        delta = float(final["score"]) - float(ai["score"])
        return {"score_delta": round(delta, 6)} if delta else {}
    if task == "extract":
        a, f = ai.get("fields") or {}, final.get("fields") or {}
        changed = [n for n in config.field_names if normalise(a.get(n)) != normalise(f.get(n))]
        return (
            {"fields": {n: {"from": a.get(n), "to": f.get(n)} for n in changed}} if changed else {}
        )
    before, after = str(ai.get("text") or ""), str(final.get("text") or "")
    if _squash(before) == _squash(after):
        return {}
    distance = edit_distance(before, after)
    return {
        "edit_distance": distance,
        "edit_ratio": round(distance / max(len(before), len(after), 1), 4),
        "edit_kind": edit_kind(before, after),
    }


def answer_key(config: WorkflowConfig, answer: dict[str, Any] | None) -> str | None:
    """A short string naming the answer, for grouping (label confusions, score values)."""
    if not answer:
        return None
    if config.task_type == "classify" and config.multi_label:
        labels = label_set(config, answer)
        return " + ".join(labels)[:200] if labels else None
    if config.task_type == "classify":
        label = answer.get("label")
        return label if isinstance(label, str) else None
    if config.task_type == "score" and _is_number(answer.get("score")):
        return _fmt(float(answer["score"]))
    return None


def failed_validations(
    config: WorkflowConfig, input_data: dict[str, Any], fields: dict[str, Any]
) -> list[dict[str, Any]]:
    """The workflow's extraction rules that this answer breaks."""
    data = {"input": input_data or {}, "output": {"fields": fields or {}}}
    failed = []
    for rule in config.validations:
        try:
            ok = rule.holds(data)
        except Exception:  # a rule must never crash processing: it simply does not hold
            ok = False
        if not ok:
            failed.append({"name": rule.name, "reason": rule.reason, "fields": rule.fields()})
    return failed


def normalise(value: Any) -> Any:
    """Compare extracted values as a person would: 118 == 118.0 == "118.00", case and
    surrounding spaces of text ignored, dates in any ISO spelling equal."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if _is_number(value):
        return round(float(value), 6)
    text = _squash(str(value)).lower()
    number = text.replace(",", "")
    try:
        f = float(number)
        if math.isfinite(f):
            return round(f, 6)
    except ValueError:
        pass
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        return text


def edit_distance(a: str, b: str, limit: int = 20_000) -> int:
    """Levenshtein distance on characters (word level for very long texts)."""
    if len(a) > limit or len(b) > limit:
        x: list[str] | str = a.split()
        y: list[str] | str = b.split()
    else:
        x, y = a, b
    if len(x) < len(y):
        x, y = y, x
    previous = list(range(len(y) + 1))
    for i, cx in enumerate(x, 1):
        current = [i]
        for j, cy in enumerate(y, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (cx != cy)))
        previous = current
    return previous[-1]


def edit_kind(before: str, after: str) -> str:
    """A rough name for what an edit did to a draft, for grouping corrections."""
    a, b = before.split(), after.split()
    ratio = SequenceMatcher(None, a, b, autojunk=False).ratio() if a or b else 1.0
    if ratio < 0.4:
        return "rewritten"
    if len(b) > len(a) * 1.2:
        return "expanded"
    if len(b) < len(a) * 0.8:
        return "shortened"
    return "reworded"


def _squash(value: Any) -> str:
    return _SPACES.sub(" ", str(value or "")).strip()


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
