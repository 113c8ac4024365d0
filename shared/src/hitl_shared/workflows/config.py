"""Workflow configuration: what the AI does, how confident it must be, what an item looks like."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from hitl_shared.workflows.conditions import (
    ConditionError,
    Node,
    evaluate,
    parse_condition,
    structured_condition,
)

NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$"


class Label(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    description: str = ""


class Thresholds(BaseModel):
    """On calibrated confidence: >= light → light review; >= full → full review; else manual."""

    model_config = ConfigDict(extra="forbid")
    light: float = Field(default=0.85, ge=0, le=1)
    full: float = Field(default=0.60, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.full > self.light:
            raise ValueError("thresholds.full must not be above thresholds.light")
        return self


RuleLevel = Literal["full", "manual", "escalated"]


class RiskRule(BaseModel):
    """A declarative risk condition that forces a stricter review level, whatever the
    confidence. Either ``when`` (an expression, see ``conditions``) or the structured
    ``field`` / ``op`` / ``value``."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
    when: str | None = None
    field: str | None = None
    op: str | None = None
    value: Any = None
    level: RuleLevel = "full"
    reason: str = Field(min_length=1, max_length=500)
    _condition: Node | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _compile(self) -> RiskRule:
        if (self.when is None) == (self.field is None):
            raise ValueError("give either `when` (an expression) or `field` with `op` and `value`")
        try:
            if self.when is not None:
                if self.op is not None or self.value is not None:
                    raise ValueError("`op` and `value` belong to the structured form (`field`)")
                self._condition = parse_condition(self.when)
            else:
                if self.op is None:
                    raise ValueError("`field` needs an `op` (eq, ne, gt, ge, lt, le, in, ...)")
                self._condition = structured_condition(self.field or "", self.op, self.value)
        except ConditionError as e:
            raise ValueError(f"invalid condition: {e}") from e
        return self

    @property
    def condition(self) -> Node:
        assert self._condition is not None
        return self._condition

    def matches(self, data: dict[str, Any]) -> bool:
        return evaluate(self.condition, data)


class AutoApprove(BaseModel):
    """Completion without a human. Off unless an operator turns it on for a low-risk workflow;
    an audit sample still goes to a human (``audit.auto``)."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
    min_confidence: float = Field(default=0.98, gt=0, le=1)


class AuditSampling(BaseModel):
    """Share of items that could skip a careful look but get a full review anyway, so
    feedback measures the real error rate of each band. Drawn per item from a hash of its id:
    the same item always gets the same verdict."""

    model_config = ConfigDict(extra="forbid")
    auto: float = Field(default=0.05, ge=0, le=1)
    light: float = Field(default=0.0, ge=0, le=1)


class BatchSettings(BaseModel):
    """Low-confidence negative outcomes (declines) that a human approves as a group: the
    decline ``labels`` of a classify workflow (disqualifying a lead), or for a score workflow
    every score at or below ``max_score`` (declining a candidate)."""

    model_config = ConfigDict(extra="forbid")
    labels: list[str] = Field(default_factory=list)
    max_score: float | None = None
    below_confidence: float = Field(default=0.6, gt=0, le=1)
    # How many items one batch page shows at most.
    size: int = Field(default=50, ge=2, le=500)


class CanarySettings(BaseModel):
    """Known-wrong answers placed in the light queue to measure whether reviewers read."""

    model_config = ConfigDict(extra="forbid")
    # Canaries per routed item (0.02: about one for every fifty items).
    rate: float = Field(default=0.0, ge=0, le=0.5)


_DURATION = re.compile(r"^\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+)\s*s)?\s*$")


def _duration(value: Any) -> Any:
    """Accepts "90m", "4h", "1d 12h", seconds as a number, or ISO 8601 ("PT4H")."""
    if isinstance(value, str) and not value.upper().startswith("P"):
        m = _DURATION.match(value)
        if not m or not any(m.groups()):
            raise ValueError(f"{value!r} is not a duration such as 30m, 4h or 1d")
        d, h, mi, se = (int(g or 0) for g in m.groups())
        return timedelta(days=d, hours=h, minutes=mi, seconds=se)
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]


class SLA(BaseModel):
    """How long an item may wait at each level before it is overdue and escalates."""

    model_config = ConfigDict(extra="forbid")
    light: Duration = timedelta(hours=4)
    full: Duration = timedelta(hours=8)
    manual: Duration = timedelta(hours=24)
    batch: Duration = timedelta(hours=24)
    escalated: Duration = timedelta(hours=4)

    @model_validator(mode="after")
    def _positive(self) -> SLA:
        for name in ("light", "full", "manual", "batch", "escalated"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"sla.{name} must be longer than zero")
        return self

    def for_level(self, level: str) -> timedelta | None:
        value = getattr(self, level, None) if level in SLA_LEVELS else None
        return value if isinstance(value, timedelta) else None


SLA_LEVELS = ("light", "full", "manual", "batch", "escalated")


class Routing(BaseModel):
    model_config = ConfigDict(extra="forbid")
    thresholds: Thresholds = Field(default_factory=Thresholds)
    # Risk rules override confidence; the strictest matching rule wins.
    rules: list[RiskRule] = Field(default_factory=list, max_length=200)
    auto_approve: AutoApprove = Field(default_factory=AutoApprove)
    audit: AuditSampling = Field(default_factory=AuditSampling)
    batch: BatchSettings | None = None
    canaries: CanarySettings = Field(default_factory=CanarySettings)
    sla: SLA = Field(default_factory=SLA)
    # Shadow mode: every item gets a full review; the level the policy would have chosen is
    # recorded, so operators see what loosening the thresholds would do.
    shadow: bool = False

    @model_validator(mode="after")
    def _distinct_rule_names(self) -> Routing:
        names = [r.name for r in self.rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"routing.rules names must be distinct: {', '.join(dupes)}")
        return self


class ProviderConfig(BaseModel):
    """Which AI does the work. `openai` is any OpenAI-compatible endpoint (OpenAI, Azure,
    Ollama, vLLM); its key comes from the environment (HITL_OPENAI_API_KEY), never from here."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    name: Literal["local", "openai"] = "local"
    base_url: str | None = Field(default=None, description="e.g. http://localhost:11434/v1")
    model: str | None = None
    temperature: float = Field(default=0.0, ge=0, le=2)
    # Without token log-probabilities, confidence is the agreement between this many samples.
    samples: int = Field(default=5, ge=2, le=10)
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    max_retries: int = Field(default=3, ge=0, le=10)
    # Hard limit on the wall time spent on one item, retries included.
    budget_seconds: float = Field(default=90.0, gt=0, le=1800)
    few_shot: int = Field(default=6, ge=0, le=50)
    # Prices per million tokens, to record the cost of each item.
    input_price_per_mtok: float = Field(default=0.0, ge=0)
    output_price_per_mtok: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _openai_needs_a_model(self) -> ProviderConfig:
        if self.name == "openai" and not self.model:
            raise ValueError("provider.model is required for the openai provider")
        return self


class FeedbackSettings(BaseModel):
    """How the feedback loop tunes this workflow."""

    model_config = ConfigDict(extra="forbid")
    # The operator's target: at most this share of wrong AI answers in the light band, in
    # every period of `target_period_items` light-band items (19 periods in 20: a 95%
    # prediction bound that counts the uncertainty of the measured rate and the chance
    # variation of a period), never on a point estimate.
    target_light_error: float = Field(default=0.02, gt=0, lt=0.5)
    target_period_items: int = Field(default=500, ge=50, le=1_000_000)
    # Refit calibration and recommend thresholds after this many new human decisions.
    recalibrate_every: int = Field(default=50, ge=10)
    # Let the system apply its own threshold recommendations (each one a new, audited
    # workflow version). Off by default: an operator applies them with one action.
    auto_apply_thresholds: bool = False


class Example(BaseModel):
    """A worked example written by the operator; the local model starts from these and the
    LLM sees them as few-shot examples. ``label`` for classify (``labels`` when the workflow
    is multi-label); ``output`` for the other task types, shaped like a reviewer's answer
    ({"score": 80}, {"fields": {...}}, {"text": "..."})."""

    model_config = ConfigDict(extra="forbid")
    text: str
    label: str | None = None
    labels: list[str] | None = None
    output: dict[str, Any] | None = None


TaskType = Literal["classify", "score", "extract", "draft"]
TASK_TYPES: tuple[str, ...] = ("classify", "score", "extract", "draft")


class ScoreScale(BaseModel):
    """The scale a `score` workflow answers on, e.g. 0 to 100 in steps of 1, or 1 to 5."""

    model_config = ConfigDict(extra="forbid")
    min: float = 0.0
    max: float = 100.0
    step: float = Field(default=1.0, gt=0)
    # A score within this distance of the reviewer's final score counts as right.
    tolerance: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> ScoreScale:
        if self.max <= self.min:
            raise ValueError("scale.max must be above scale.min")
        if (self.max - self.min) / self.step > 10_000:
            raise ValueError("scale has more than 10,000 steps: use a larger step")
        return self

    def snap(self, value: float) -> float:
        """The nearest point of the scale (clamped to it)."""
        v = min(max(float(value), self.min), self.max)
        snapped = self.min + round((v - self.min) / self.step) * self.step
        return round(min(snapped, self.max), 6)

    def points(self) -> list[float]:
        n = round((self.max - self.min) / self.step)
        return [round(self.min + i * self.step, 6) for i in range(n + 1)]


class Criterion(BaseModel):
    """One written criterion a `score` answer is judged against."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    description: str = ""
    weight: float = Field(default=1.0, gt=0)


class Validation(BaseModel):
    """A rule an `extract` answer must satisfy. A failed rule lowers the answer's confidence,
    sends it to full review at least, and tells the reviewer which rule failed.

    Either ``when`` (a condition over ``output.fields.*`` and ``input.*`` that must hold, e.g.
    ``output.fields.vendor in ["Acme", "Globex"]``) or ``sum_of`` + ``equals`` (the named
    number fields add up to another one, within ``tolerance``)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
    when: str | None = None
    sum_of: list[str] | None = None
    equals: str | None = None
    tolerance: float = Field(default=0.01, ge=0)
    reason: str = Field(min_length=1, max_length=500)
    _condition: Node | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _compile(self) -> Validation:
        if (self.when is None) == (self.sum_of is None):
            raise ValueError("give either `when` (a condition) or `sum_of` with `equals`")
        if self.sum_of is not None and not (self.sum_of and self.equals):
            raise ValueError("`sum_of` needs at least one field and `equals` the total's field")
        if self.when is not None:
            try:
                self._condition = parse_condition(self.when)
            except ConditionError as e:
                raise ValueError(f"invalid condition: {e}") from e
        return self

    def fields(self) -> list[str]:
        if self.sum_of is not None:
            return [*self.sum_of, self.equals or ""]
        return sorted(set(re.findall(r"output\.fields\.([A-Za-z_][A-Za-z0-9_]*)", self.when or "")))

    def holds(self, data: dict[str, Any]) -> bool:
        """``data`` is {"input": ..., "output": {"fields": ...}}."""
        if self._condition is not None:
            return evaluate(self._condition, data)
        fields = (data.get("output") or {}).get("fields") or {}
        try:
            parts = [_number(fields.get(name)) for name in self.sum_of or []]
            total = _number(fields.get(self.equals or ""))
        except ValueError:
            return False
        return abs(sum(parts) - total) <= self.tolerance


def _number(value: Any) -> float:
    if isinstance(value, bool) or value is None:
        raise ValueError("not a number")
    if isinstance(value, int | float):
        return float(value)
    return float(str(value).replace(",", ""))


class KnowledgeSnippet(BaseModel):
    """Reference text a `draft` workflow may quote from (policies, product facts)."""

    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=200)
    text: str = Field(min_length=1, max_length=20_000)


class WorkflowConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    task_type: TaskType = "classify"
    instructions: str = ""
    # JSON Schema every item's `input` must satisfy.
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    # Which input fields hold the text the AI and the reviewer read, in reading order.
    text_fields: list[str] = Field(min_length=1)
    # classify: the labels (at least two), each with a description.
    labels: list[Label] = Field(default_factory=list)
    # classify: an item can carry several of the labels (tags) instead of exactly one.
    multi_label: bool = False
    # score: the scale and the written criteria.
    scale: ScoreScale | None = None
    criteria: list[Criterion] = Field(default_factory=list)
    # extract: a JSON Schema object whose properties are the fields, and rules they obey.
    output_schema: dict[str, Any] | None = None
    validations: list[Validation] = Field(default_factory=list, max_length=100)
    # draft: reference snippets the draft may use (past approved drafts are used as well).
    knowledge: list[KnowledgeSnippet] = Field(default_factory=list, max_length=500)
    examples: list[Example] = Field(default_factory=list)
    provider: ProviderConfig = Field(default_factory=ProviderConfig)
    routing: Routing = Field(default_factory=Routing)
    feedback: FeedbackSettings = Field(default_factory=FeedbackSettings)
    demo_items: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("input_schema")
    @classmethod
    def _valid_schema(cls, v: dict[str, Any]) -> dict[str, Any]:
        try:
            Draft202012Validator.check_schema(v)
        except SchemaError as e:
            raise ValueError(f"input_schema is not a valid JSON Schema: {e.message}") from e
        return v

    @field_validator("output_schema")
    @classmethod
    def _valid_output_schema(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is None:
            return v
        try:
            Draft202012Validator.check_schema(v)
        except SchemaError as e:
            raise ValueError(f"output_schema is not a valid JSON Schema: {e.message}") from e
        props = v.get("properties")
        if v.get("type") != "object" or not isinstance(props, dict) or not props:
            raise ValueError(
                "output_schema must be an object schema with `properties`, one per field"
            )
        for name, spec in props.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", name):
                raise ValueError(
                    f"output_schema field name {name!r}: use letters, digits and underscores"
                )
            kind = spec.get("type") if isinstance(spec, dict) else None
            if kind not in ("string", "number", "integer", "boolean"):
                raise ValueError(
                    f"output_schema.properties.{name}.type must be string, number, integer "
                    "or boolean"
                )
        return v

    @model_validator(mode="after")
    def _task_shape(self) -> WorkflowConfig:
        task = self.task_type
        if task == "classify" and len(self.labels) < 2:
            raise ValueError("a classify workflow needs `labels`: at least two")
        if task != "classify" and self.labels:
            raise ValueError(f"`labels` belong to classify workflows, not {task}")
        if task != "classify" and self.multi_label:
            raise ValueError(f"`multi_label` belongs to classify workflows, not {task}")
        if task == "score" and self.scale is None:
            raise ValueError("a score workflow needs a `scale` (min, max, step)")
        if task != "score" and (self.scale is not None or self.criteria):
            raise ValueError(f"`scale` and `criteria` belong to score workflows, not {task}")
        if task == "extract" and self.output_schema is None:
            raise ValueError("an extract workflow needs an `output_schema` with the fields")
        if task != "extract" and (self.output_schema is not None or self.validations):
            raise ValueError(
                f"`output_schema` and `validations` belong to extract workflows, not {task}"
            )
        if task != "draft" and self.knowledge:
            raise ValueError(f"`knowledge` belongs to draft workflows, not {task}")
        if task == "extract":
            names = set(self.field_names)
            for i, rule in enumerate(self.validations):
                unknown = [f for f in rule.fields() if f not in names]
                if unknown:
                    raise ValueError(
                        f"validations[{i}] ({rule.name}) uses unknown field(s) "
                        f"{', '.join(unknown)}; the fields are {', '.join(sorted(names))}"
                    )
        batch = self.routing.batch
        if batch is not None:
            if task == "classify" and self.multi_label:
                raise ValueError(
                    "routing.batch works on single-label classify workflows: a multi-label "
                    "answer is not one decline"
                )
            if task == "classify" and (not batch.labels or batch.max_score is not None):
                raise ValueError(
                    "routing.batch needs `labels` (the declines) in a classify workflow"
                )
            if task == "score" and (batch.labels or batch.max_score is None):
                raise ValueError(
                    "routing.batch needs `max_score` (the declines) in a score workflow"
                )
            if task not in ("classify", "score"):
                raise ValueError(f"routing.batch works on classify and score workflows, not {task}")
        from hitl_shared.workflows.tasks import example_answer, output_errors

        for i, ex in enumerate(self.examples):
            if task == "classify" and not self.multi_label and ex.labels is not None:
                raise ValueError(
                    f"examples[{i}]: `labels` is for multi-label workflows; give one `label`"
                )
            answer = example_answer(self, ex)
            if answer is None:
                if task == "classify":
                    want = "`labels` (a list)" if self.multi_label else "a `label`"
                    raise ValueError(f"examples[{i}] needs {want}")
                raise ValueError(f"examples[{i}] needs an `output` (the right answer)")
            problems = output_errors(self, answer)
            if problems:
                raise ValueError(f"examples[{i}]: {problems[0]}")
        return self

    @model_validator(mode="after")
    def _labels_known(self) -> WorkflowConfig:
        names = [label.name for label in self.labels]
        if len(set(names)) != len(names):
            raise ValueError("labels must have distinct names")
        if self.routing.batch is not None:
            unknown = [n for n in self.routing.batch.labels if n not in names]
            if unknown:
                raise ValueError(
                    f"routing.batch.labels: {', '.join(map(repr, unknown))} "
                    "not among the workflow's labels"
                )
        return self

    @property
    def label_names(self) -> list[str]:
        return [label.name for label in self.labels]

    @property
    def field_names(self) -> list[str]:
        return list(((self.output_schema or {}).get("properties") or {}).keys())

    def field_spec(self, name: str) -> dict[str, Any]:
        spec = ((self.output_schema or {}).get("properties") or {}).get(name)
        return spec if isinstance(spec, dict) else {}

    def public_config(self) -> dict[str, Any]:
        """What an item records and a version stores (demo items are not part of behaviour)."""
        return self.model_dump(mode="json", exclude={"demo_items"})


class WorkflowFileError(ValueError):
    pass


def load_workflow_file(path: Path) -> tuple[WorkflowConfig, str]:
    source = path.read_text()
    try:
        data = yaml.safe_load(source)
    except yaml.YAMLError as e:
        raise WorkflowFileError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise WorkflowFileError(f"{path}: the top level must be a mapping of keys")
    try:
        return WorkflowConfig.model_validate(data), source
    except ValidationError as e:
        problems = "; ".join(
            f"{key_path(err['loc'])}: {err['msg'].removeprefix('Value error, ')}"
            for err in e.errors()
        )
        raise WorkflowFileError(f"{path}: {problems}") from e


def key_path(loc: tuple[int | str, ...]) -> str:
    """('routing', 'rules', 0, 'when') → routing.rules[0].when, as the YAML reads."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


DEMO_DIR = Path(__file__).resolve().parent / "demo"


def demo_workflow_files() -> list[Path]:
    return sorted(DEMO_DIR.glob("*.yaml"))
