"""AI output versus the human's final output: a label change, field-level or word-level diff.

Pure functions returning plain data; the template renders every piece as escaped text, so
untrusted item content can never turn into markup.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

SegmentOp = Literal["same", "del", "ins"]
# Past this many tokens a side, SequenceMatcher gets slow (quadratic): show a plain replace.
MAX_DIFF_TOKENS = 20_000
_TOKENS = re.compile(r"\s+|[^\s]+")


@dataclass
class Segment:
    op: SegmentOp
    text: str


@dataclass
class FieldChange:
    name: str
    kind: Literal["same", "changed", "added", "removed"]
    before: Any = None
    after: Any = None
    words: list[Segment] | None = None  # for text values that changed

    @property
    def before_text(self) -> str:
        return show_value(self.before)

    @property
    def after_text(self) -> str:
        return show_value(self.after)


@dataclass
class OutputDiff:
    kind: Literal["label", "fields", "text", "rejected", "no_ai", "pending"]
    changed: bool
    before_label: str | None = None
    after_label: str | None = None
    fields: list[FieldChange] = field(default_factory=list)
    words: list[Segment] = field(default_factory=list)


def show_value(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def word_diff(before: str, after: str) -> list[Segment]:
    """Word-level diff that keeps the original whitespace, with runs of one kind merged."""
    a, b = _TOKENS.findall(before), _TOKENS.findall(after)
    if len(a) > MAX_DIFF_TOKENS or len(b) > MAX_DIFF_TOKENS:
        return _merge([Segment("del", before), Segment("ins", after)])
    out: list[Segment] = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            out.append(Segment("same", "".join(a[i1:i2])))
            continue
        if op in ("replace", "delete"):
            out.append(Segment("del", "".join(a[i1:i2])))
        if op in ("replace", "insert"):
            out.append(Segment("ins", "".join(b[j1:j2])))
    return _merge(out)


def _merge(segments: list[Segment]) -> list[Segment]:
    merged: list[Segment] = []
    for s in segments:
        if not s.text:
            continue
        if merged and merged[-1].op == s.op:
            merged[-1] = Segment(s.op, merged[-1].text + s.text)
        else:
            merged.append(s)
    return merged


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and (len(value) > 40 or any(c.isspace() for c in value))


def field_diff(before: dict[str, Any], after: dict[str, Any]) -> list[FieldChange]:
    names = list(before) + [k for k in after if k not in before]
    out: list[FieldChange] = []
    for name in names:
        if name not in after:
            out.append(FieldChange(name, "removed", before[name], None))
        elif name not in before:
            out.append(FieldChange(name, "added", None, after[name]))
        elif before[name] == after[name]:
            out.append(FieldChange(name, "same", before[name], after[name]))
        else:
            b, a = before[name], after[name]
            words = word_diff(b, a) if _is_text(b) and _is_text(a) else None
            out.append(FieldChange(name, "changed", b, a, words))
    return out


def diff_outputs(
    ai_output: dict[str, Any] | str | None,
    final_output: dict[str, Any] | str | None,
    decided: bool,
) -> OutputDiff:
    """What the human changed. `decided` distinguishes "rejected" (no output) from "pending"."""
    if not decided:
        return OutputDiff("pending", False)
    if final_output is None:
        return OutputDiff("rejected", True)
    if ai_output is None:
        return OutputDiff("no_ai", True)
    if isinstance(ai_output, str) and isinstance(final_output, str):
        return OutputDiff(
            "text", ai_output != final_output, words=word_diff(ai_output, final_output)
        )
    if isinstance(ai_output, dict) and isinstance(final_output, dict):
        # A classification: the AI may add evidence (scores), the human only sets the label.
        if "label" in ai_output and set(final_output) == {"label"}:
            before, after = ai_output["label"], final_output["label"]
            return OutputDiff(
                "label",
                before != after,
                before_label=show_value(before),
                after_label=show_value(after),
            )
        changes = field_diff(ai_output, final_output)
        return OutputDiff("fields", any(c.kind != "same" for c in changes), fields=changes)
    # Different shapes: compare their JSON text word by word.
    before_text, after_text = show_value(ai_output), show_value(final_output)
    return OutputDiff("text", before_text != after_text, words=word_diff(before_text, after_text))
